# Test registration: every suite is a ctest test, so `ctest` (and `make test`) runs them all.
# Included when EXPT_TESTS is on; then cmocka is required (scripts/deps --test installs it).
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

# Unit tests: tests/unit/test_<name>.c, each a cmocka program.
file(GLOB UNIT_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src ${UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE expt_oci expt_core PkgConfig::CMOCKA ${ZLIB_LIBRARIES})
  add_test(NAME unit/${name} COMMAND ${name} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/unit)
  set_tests_properties(unit/${name} PROPERTIES ENVIRONMENT "EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR};EXPT_BIN=$<TARGET_FILE:expt>")
endforeach()

# Fuzz targets: tests/fuzz/fuzz_<name>.c define LLVMFuzzerTestOneInput. In this build they are
# linked with a replay driver that runs every file of tests/fuzz/corpus/<name>/; the libFuzzer
# build is tests/fuzz/fuzz.cmake (EXPT_FUZZ=ON, `make fuzz`).
file(GLOB FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
foreach(src ${FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "fuzz_" "" corpus ${name})
  add_executable(${name}_replay ${src} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay.c)
  target_link_libraries(${name}_replay PRIVATE expt_oci expt_core)
  add_test(NAME fuzz/${name} COMMAND ${name}_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${corpus})
endforeach()

# The README's commands on a fresh Debian 12 root file system (tests/fresh/run): minutes, needs
# root and the Debian mirrors; EXPT_TEST_SKIP_FRESH=1 skips it.
add_test(NAME fresh/make-example COMMAND ${CMAKE_SOURCE_DIR}/tests/fresh/run)
set_tests_properties(fresh/make-example PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 2400)

# Black-box CLI tests: tests/cli/t_<name>.sh run the built binary.
file(GLOB CLI_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cli/t_*.sh)
foreach(src ${CLI_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME cli/${name} COMMAND bash ${src})
  set_tests_properties(cli/${name} PROPERTIES
    ENVIRONMENT "EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR};EXPT_BUILD_DIR=${CMAKE_BINARY_DIR}"
    TIMEOUT 600)
endforeach()

# The fixtures' process helpers (tests/lib/harness.sh): start, wait, failure reports.
add_test(NAME harness/t_harness COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lib/t_harness.sh)
set_tests_properties(harness/t_harness PROPERTIES TIMEOUT 120)

# Python binding tests (pytest) against the built libexpt.
if(EXISTS ${CMAKE_SOURCE_DIR}/python/tests AND TARGET libexpt)
  add_test(NAME python/pytest COMMAND python3 -m pytest -q ${CMAKE_SOURCE_DIR}/python/tests)
  set_tests_properties(python/pytest PROPERTIES
    ENVIRONMENT "EXPT_LIBRARY=$<TARGET_FILE:libexpt>;EXPT_BIN=$<TARGET_FILE:expt>;PYTHONPATH=${CMAKE_SOURCE_DIR}/python;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    TIMEOUT 900)
endif()

# Offline images, test registries and Podman (tests/images, tests/registry, tests/podman):
# fixtures images -> registry -> podman, each with its smoke test. Unless
# EXPT_TEST_SKIP_CONTAINERS=1. State in <build>/registry and <build>/podman; the
# images are cached in ${EXPT_TEST_CACHE:-~/.cache/expt-test}/images-<recipe-hash>.
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/registry/up)
  if("$ENV{EXPT_TEST_SKIP_CONTAINERS}" STREQUAL "1")
    message(STATUS "EXPT_TEST_SKIP_CONTAINERS=1: the image, registry and Podman tests are skipped")
    add_test(NAME containers/SKIPPED COMMAND sh -c "echo 'image, registry and Podman tests skipped (EXPT_TEST_SKIP_CONTAINERS=1)'; exit 77")
    set_tests_properties(containers/SKIPPED PROPERTIES SKIP_RETURN_CODE 77)
  else()
    set(REGISTRY_DIR ${CMAKE_BINARY_DIR}/registry)
    set(PODMAN_DIR ${CMAKE_BINARY_DIR}/podman)
    add_test(NAME images/build COMMAND ${CMAKE_SOURCE_DIR}/tests/images/build --print-env)
    set_tests_properties(images/build PROPERTIES FIXTURES_SETUP images TIMEOUT 1800)
    add_test(NAME registry/up COMMAND ${CMAKE_SOURCE_DIR}/tests/registry/up --dir ${REGISTRY_DIR})
    add_test(NAME registry/down COMMAND ${CMAKE_SOURCE_DIR}/tests/registry/down --dir ${REGISTRY_DIR})
    set_tests_properties(registry/up PROPERTIES FIXTURES_SETUP registry FIXTURES_REQUIRED images TIMEOUT 600)
    set_tests_properties(registry/down PROPERTIES FIXTURES_CLEANUP registry)
    add_test(NAME registry/smoke COMMAND bash ${CMAKE_SOURCE_DIR}/tests/registry/smoke --dir ${REGISTRY_DIR})
    set_tests_properties(registry/smoke PROPERTIES FIXTURES_REQUIRED registry TIMEOUT 300 SKIP_RETURN_CODE 77)
    add_test(NAME podman/up COMMAND ${CMAKE_SOURCE_DIR}/tests/podman/up --dir ${PODMAN_DIR} --registry-dir ${REGISTRY_DIR})
    add_test(NAME podman/down COMMAND ${CMAKE_SOURCE_DIR}/tests/podman/down --dir ${PODMAN_DIR})
    set_tests_properties(podman/up PROPERTIES FIXTURES_SETUP podman FIXTURES_REQUIRED registry TIMEOUT 300)
    set_tests_properties(podman/down PROPERTIES FIXTURES_CLEANUP podman)
    add_test(NAME podman/smoke COMMAND bash ${CMAKE_SOURCE_DIR}/tests/podman/smoke --dir ${PODMAN_DIR} --registry-dir ${REGISTRY_DIR})
    set_tests_properties(podman/smoke PROPERTIES FIXTURES_REQUIRED "registry;podman" TIMEOUT 300 SKIP_RETURN_CODE 77)
    # Suites against the test registries (expt build): tests/registry/t_*.sh, with the
    # registries' and Podman's env files (Podman used where it runs).
    file(GLOB REGISTRY_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/registry/t_*.sh)
    foreach(src ${REGISTRY_TESTS})
      get_filename_component(name ${src} NAME_WE)
      add_test(NAME registry/${name} COMMAND bash ${src})
      set_tests_properties(registry/${name} PROPERTIES FIXTURES_REQUIRED "registry;podman" TIMEOUT 900 SKIP_RETURN_CODE 77
        ENVIRONMENT "EXPT_TEST_REGISTRY_ENV=${REGISTRY_DIR}/env;EXPT_TEST_PODMAN_ENV=${PODMAN_DIR}/env;EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
    endforeach()
    # Further suites that need a container engine: tests/podman/t_*.sh, run with the
    # registry and Podman up and EXPT_REGISTRY_DIR / EXPT_PODMAN_DIR set (source their env).
    file(GLOB PODMAN_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/podman/t_*.sh)
    foreach(src ${PODMAN_TESTS})
      get_filename_component(name ${src} NAME_WE)
      add_test(NAME podman/${name} COMMAND bash ${src})
      set_tests_properties(podman/${name} PROPERTIES FIXTURES_REQUIRED "registry;podman" TIMEOUT 900 SKIP_RETURN_CODE 77
        ENVIRONMENT "EXPT_REGISTRY_DIR=${REGISTRY_DIR};EXPT_PODMAN_DIR=${PODMAN_DIR};EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
    endforeach()
  endif()
endif()

# The real Kubernetes control plane (tests/cluster): started once as a fixture, unless
# EXPT_TEST_SKIP_CLUSTER=1, in which case these tests are not registered and the run says so.
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/cluster/up)
  if("$ENV{EXPT_TEST_SKIP_CLUSTER}" STREQUAL "1")
    message(STATUS "EXPT_TEST_SKIP_CLUSTER=1: the cluster tests are skipped")
    add_test(NAME cluster/SKIPPED COMMAND sh -c "echo 'cluster tests skipped (EXPT_TEST_SKIP_CLUSTER=1)'; exit 77")
    set_tests_properties(cluster/SKIPPED PROPERTIES SKIP_RETURN_CODE 77)
  else()
    set(CLUSTER_DIR ${CMAKE_BINARY_DIR}/cluster)
    # The real node (node-real: containerd + kubelet, tests/cluster/realnode.sh) joins
    # unless EXPT_TEST_REAL_NODE=0 or the registry is skipped: it pulls from the test registry.
    set(CLUSTER_UP_ARGS --dir ${CLUSTER_DIR})
    set(CLUSTER_UP_NEEDS "")
    set(CLUSTER_TEST_NEEDS cluster)
    if(NOT "$ENV{EXPT_TEST_REAL_NODE}" STREQUAL "0" AND DEFINED REGISTRY_DIR)
      list(APPEND CLUSTER_UP_ARGS --real-node --registry-dir ${REGISTRY_DIR})
      set(CLUSTER_UP_NEEDS registry)
      # node-real pulls through the registry: keep it up until the cluster tests are done.
      set(CLUSTER_TEST_NEEDS "cluster;registry")
    else()
      list(APPEND CLUSTER_UP_ARGS --no-real-node)
      message(STATUS "the test cluster runs without its real node (EXPT_TEST_REAL_NODE=0 or EXPT_TEST_SKIP_CONTAINERS=1)")
    endif()
    add_test(NAME cluster/up COMMAND ${CMAKE_SOURCE_DIR}/tests/cluster/up ${CLUSTER_UP_ARGS})
    add_test(NAME cluster/down COMMAND ${CMAKE_SOURCE_DIR}/tests/cluster/down --dir ${CLUSTER_DIR})
    set_tests_properties(cluster/up PROPERTIES FIXTURES_SETUP cluster FIXTURES_REQUIRED "${CLUSTER_UP_NEEDS}" TIMEOUT 3600)
    add_test(NAME cluster/smoke-real-node COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cluster/smoke-real-node --dir ${CLUSTER_DIR})
    set_tests_properties(cluster/smoke-real-node PROPERTIES FIXTURES_REQUIRED "${CLUSTER_TEST_NEEDS}" TIMEOUT 600 SKIP_RETURN_CODE 77)
    set_tests_properties(cluster/down PROPERTIES FIXTURES_CLEANUP cluster)
    file(GLOB CLUSTER_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cluster/smoke
      ${CMAKE_SOURCE_DIR}/tests/cluster/t_*.sh)
    foreach(src ${CLUSTER_TESTS})
      get_filename_component(name ${src} NAME_WE)
      add_test(NAME cluster/${name} COMMAND bash ${src})
      if(name STREQUAL "t_kube_restart")
        # It restarts kube-apiserver: nothing else may talk to the cluster meanwhile.
        set_tests_properties(cluster/${name} PROPERTIES RUN_SERIAL TRUE)
      endif()
      set_tests_properties(cluster/${name} PROPERTIES FIXTURES_REQUIRED "${CLUSTER_TEST_NEEDS}" TIMEOUT 900
        ENVIRONMENT "EXPT_CLUSTER_DIR=${CLUSTER_DIR};EXPT_REGISTRY_DIR=${REGISTRY_DIR};EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
    endforeach()
  endif()
endif()

# The container backend against a real engine: tests/container/t_*.sh, on the Podman service and
# test registry started by the "podman" and "registry" fixtures (tests/podman, tests/registry).
# Without those fixtures (EXPT_TEST_SKIP_CONTAINERS=1, or a tree without tests/podman) a test
# runs against EXPT_TEST_DOCKER_HOST / EXPT_TEST_PYTHON_IMAGE from the environment, else it is
# reported skipped (exit 77).
file(GLOB CONTAINER_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/container/t_*.sh)
foreach(src ${CONTAINER_TESTS})
  get_filename_component(name ${src} NAME_WE)
  set(env "EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR};EXPT_BUILD_DIR=${CMAKE_BINARY_DIR}")
  add_test(NAME container/${name} COMMAND bash ${src})
  if(DEFINED PODMAN_DIR AND DEFINED REGISTRY_DIR)
    list(APPEND env "EXPT_TEST_PODMAN_ENV=${PODMAN_DIR}/env" "EXPT_TEST_REGISTRY_ENV=${REGISTRY_DIR}/env")
    set_tests_properties(container/${name} PROPERTIES FIXTURES_REQUIRED "registry;podman")
  endif()
  set_tests_properties(container/${name} PROPERTIES ENVIRONMENT "${env}" TIMEOUT 600 SKIP_RETURN_CODE 77)
endforeach()

# A real MLflow tracking server (tests/mlflow/up: PyPI's mlflow, pinned in
# tests/mlflow/requirements.txt, in ${EXPT_TEST_CACHE:-~/.cache/expt-test}/mlflow-venv; SQLite
# store, artifacts served) as the fixture "mlflow", and the suites tests/mlflow/t_*.sh against it
# (EXPT_MLFLOW_DIR set: source $EXPT_MLFLOW_DIR/env). EXPT_TEST_SKIP_MLFLOW=1 leaves them out;
# without PyPI they report skipped (exit 77).
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/mlflow/up)
  if("$ENV{EXPT_TEST_SKIP_MLFLOW}" STREQUAL "1")
    message(STATUS "EXPT_TEST_SKIP_MLFLOW=1: the MLflow tests are skipped")
    add_test(NAME mlflow/SKIPPED COMMAND sh -c "echo 'MLflow tests skipped (EXPT_TEST_SKIP_MLFLOW=1)'; exit 77")
    set_tests_properties(mlflow/SKIPPED PROPERTIES SKIP_RETURN_CODE 77)
  else()
    set(MLFLOW_DIR ${CMAKE_BINARY_DIR}/mlflow)
    add_test(NAME mlflow/up COMMAND ${CMAKE_SOURCE_DIR}/tests/mlflow/up --dir ${MLFLOW_DIR})
    add_test(NAME mlflow/down COMMAND ${CMAKE_SOURCE_DIR}/tests/mlflow/down --dir ${MLFLOW_DIR})
    # up exits 77 when no venv can be had: the suites then find no env file and skip too.
    set_tests_properties(mlflow/up PROPERTIES FIXTURES_SETUP mlflow TIMEOUT 900 SKIP_RETURN_CODE 77)
    set_tests_properties(mlflow/down PROPERTIES FIXTURES_CLEANUP mlflow)
    file(GLOB MLFLOW_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/mlflow/t_*.sh)
    foreach(src ${MLFLOW_TESTS})
      get_filename_component(name ${src} NAME_WE)
      add_test(NAME mlflow/${name} COMMAND bash ${src})
      set_tests_properties(mlflow/${name} PROPERTIES FIXTURES_REQUIRED mlflow TIMEOUT 900 SKIP_RETURN_CODE 77
        ENVIRONMENT "EXPT_MLFLOW_DIR=${MLFLOW_DIR};EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
    endforeach()
    # The same server on a PostgreSQL store (tests/mlflow/up --db postgres: Debian's PostgreSQL
    # 15, a cluster in <build>/mlflow-pg/pg) as the fixture "mlflow-pg", and the core parts of
    # t_mlflow.sh against it (interop, sink read back by the mlflow client, sync counted on the
    # server, compare). Skipped (77) without PostgreSQL.
    set(MLFLOW_PG_DIR ${CMAKE_BINARY_DIR}/mlflow-pg)
    add_test(NAME mlflow-pg/up COMMAND ${CMAKE_SOURCE_DIR}/tests/mlflow/up --dir ${MLFLOW_PG_DIR} --db postgres)
    add_test(NAME mlflow-pg/down COMMAND ${CMAKE_SOURCE_DIR}/tests/mlflow/down --dir ${MLFLOW_PG_DIR})
    set_tests_properties(mlflow-pg/up PROPERTIES FIXTURES_SETUP mlflow-pg TIMEOUT 900 SKIP_RETURN_CODE 77)
    set_tests_properties(mlflow-pg/down PROPERTIES FIXTURES_CLEANUP mlflow-pg)
    add_test(NAME mlflow-pg/t_mlflow COMMAND bash ${CMAKE_SOURCE_DIR}/tests/mlflow/t_mlflow.sh)
    set_tests_properties(mlflow-pg/t_mlflow PROPERTIES FIXTURES_REQUIRED mlflow-pg TIMEOUT 900 SKIP_RETURN_CODE 77
      ENVIRONMENT "EXPT_MLFLOW_DIR=${MLFLOW_PG_DIR};EXPT_MLFLOW_PARTS=interop sink sync;EXPT_MLFLOW_DB=postgres;EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  endif()
endif()

# A real S3 server (tests/s3/up: SeaweedFS's weed, built once from the Go module proxy by
# tests/s3/build-weed into ${EXPT_TEST_CACHE:-~/.cache/expt-test}/seaweedfs-<version>; long when
# cold) as the fixture "s3", and tests/s3/t_*.sh against it (EXPT_S3_DIR set: source
# $EXPT_S3_DIR/env); they start their own MLflow server on the s3:// artifact root.
# EXPT_TEST_SKIP_S3=1 leaves them out; without a Go toolchain (1.26+) or the module proxy they
# report skipped (exit 77) with the reason.
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/s3/up)
  if("$ENV{EXPT_TEST_SKIP_S3}" STREQUAL "1")
    message(STATUS "EXPT_TEST_SKIP_S3=1: the S3 tests are skipped")
    add_test(NAME s3/SKIPPED COMMAND sh -c "echo 'S3 tests skipped (EXPT_TEST_SKIP_S3=1)'; exit 77")
    set_tests_properties(s3/SKIPPED PROPERTIES SKIP_RETURN_CODE 77)
  else()
    set(S3_DIR ${CMAKE_BINARY_DIR}/s3)
    add_test(NAME s3/up COMMAND ${CMAKE_SOURCE_DIR}/tests/s3/up --dir ${S3_DIR})
    add_test(NAME s3/down COMMAND ${CMAKE_SOURCE_DIR}/tests/s3/down --dir ${S3_DIR})
    # The cold build of weed is most of up's time.
    set_tests_properties(s3/up PROPERTIES FIXTURES_SETUP s3 TIMEOUT 5400 SKIP_RETURN_CODE 77)
    set_tests_properties(s3/down PROPERTIES FIXTURES_CLEANUP s3)
    file(GLOB S3_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/s3/t_*.sh)
    foreach(src ${S3_TESTS})
      get_filename_component(name ${src} NAME_WE)
      add_test(NAME s3/${name} COMMAND bash ${src})
      set_tests_properties(s3/${name} PROPERTIES FIXTURES_REQUIRED s3 TIMEOUT 900 SKIP_RETURN_CODE 77
        ENVIRONMENT "EXPT_S3_DIR=${S3_DIR};EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
    endforeach()
  endif()
endif()

# A real MLflow server deployed by `expt tracking deploy` on the cluster's real node: its image
# is built from the "mlflow" fixture's venv (tests/images/build-mlflow), so it needs that
# fixture too; it skips (77) without the real node or the venv.
if(TEST cluster/t_tracking_real)
  if(TEST mlflow/up)
    set_tests_properties(cluster/t_tracking_real PROPERTIES
      FIXTURES_REQUIRED "${CLUSTER_TEST_NEEDS};mlflow")
  endif()
  set_tests_properties(cluster/t_tracking_real PROPERTIES SKIP_RETURN_CODE 77)
endif()
