# Test registration: every suite is a ctest test, so `ctest` (and `make test`) runs them all.
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

# Unit tests: tests/unit/test_<name>.c, each a cmocka program.
file(GLOB UNIT_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src ${UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE expt_core PkgConfig::CMOCKA)
  add_test(NAME unit/${name} COMMAND ${name} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/unit)
  set_tests_properties(unit/${name} PROPERTIES ENVIRONMENT "EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR};EXPT_BIN=$<TARGET_FILE:expt>")
endforeach()

# Fuzz targets: tests/fuzz/fuzz_<name>.c define LLVMFuzzerTestOneInput. In the normal build they
# are linked with a replay driver that runs every file of tests/fuzz/corpus/<name>/.
file(GLOB FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
foreach(src ${FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "fuzz_" "" corpus ${name})
  if(EXPT_FUZZ)
    add_executable(${name} ${src})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${name} PRIVATE expt_core)
  else()
    add_executable(${name}_replay ${src} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay.c)
    target_link_libraries(${name}_replay PRIVATE expt_core)
    add_test(NAME fuzz/${name} COMMAND ${name}_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${corpus})
  endif()
endforeach()

# Black-box CLI tests: tests/cli/t_<name>.sh run the built binary.
file(GLOB CLI_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cli/t_*.sh)
foreach(src ${CLI_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME cli/${name} COMMAND bash ${src})
  set_tests_properties(cli/${name} PROPERTIES
    ENVIRONMENT "EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR};EXPT_BUILD_DIR=${CMAKE_BINARY_DIR}"
    TIMEOUT 600)
endforeach()

# Python binding tests (pytest) against the built libexpt.
if(EXISTS ${CMAKE_SOURCE_DIR}/python/tests AND TARGET libexpt)
  add_test(NAME python/pytest COMMAND python3 -m pytest -q ${CMAKE_SOURCE_DIR}/python/tests)
  set_tests_properties(python/pytest PROPERTIES
    ENVIRONMENT "EXPT_LIBRARY=$<TARGET_FILE:libexpt>;EXPT_BIN=$<TARGET_FILE:expt>;PYTHONPATH=${CMAKE_SOURCE_DIR}/python;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    TIMEOUT 900)
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
    add_test(NAME cluster/up COMMAND ${CMAKE_SOURCE_DIR}/tests/cluster/up --dir ${CLUSTER_DIR})
    add_test(NAME cluster/down COMMAND ${CMAKE_SOURCE_DIR}/tests/cluster/down --dir ${CLUSTER_DIR})
    set_tests_properties(cluster/up PROPERTIES FIXTURES_SETUP cluster TIMEOUT 3600)
    set_tests_properties(cluster/down PROPERTIES FIXTURES_CLEANUP cluster)
    file(GLOB CLUSTER_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cluster/smoke
      ${CMAKE_SOURCE_DIR}/tests/cluster/t_*.sh)
    foreach(src ${CLUSTER_TESTS})
      get_filename_component(name ${src} NAME_WE)
      add_test(NAME cluster/${name} COMMAND bash ${src})
      set_tests_properties(cluster/${name} PROPERTIES FIXTURES_REQUIRED cluster TIMEOUT 900
        ENVIRONMENT "EXPT_CLUSTER_DIR=${CLUSTER_DIR};EXPT_BIN=$<TARGET_FILE:expt>;EXPT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
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
