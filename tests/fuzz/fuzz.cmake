# The libFuzzer build (EXPT_FUZZ=ON, clang; `make fuzz` and scripts/test-all use build-fuzz/):
# the library is compiled with coverage instrumentation too (fuzzer-no-link), so libFuzzer sees
# the edges of the parsers it feeds and not only those of the harness, and with ASan + UBSan, so
# a memory error or undefined behaviour is a crash it reports. Each target is also a ctest test
# that fuzzes for EXPT_FUZZ_SECONDS from tests/fuzz/corpus/<name> (new inputs go to the build
# directory; `make fuzz` merges them into the corpus).
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "EXPT_FUZZ needs clang: cmake -DCMAKE_C_COMPILER=clang -DEXPT_FUZZ=ON")
endif()
set(EXPT_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz target runs as a ctest test")
set(FUZZ_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
  -fno-omit-frame-pointer)
target_compile_options(expt_core PRIVATE -fsanitize=fuzzer-no-link ${FUZZ_FLAGS})
target_compile_options(expt_oci PRIVATE -fsanitize=fuzzer-no-link ${FUZZ_FLAGS})
# The product targets are not part of this build (`cmake --build build-fuzz` builds the fuzzers).
set_target_properties(expt PROPERTIES EXCLUDE_FROM_ALL ON)
if(TARGET libexpt)
  set_target_properties(libexpt PROPERTIES EXCLUDE_FROM_ALL ON)
endif()

enable_testing()
file(GLOB FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
foreach(src ${FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "fuzz_" "" corpus ${name})
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer ${FUZZ_FLAGS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer ${FUZZ_FLAGS})
  target_link_libraries(${name} PRIVATE expt_oci expt_core)
  add_test(NAME fuzz-run/${corpus} COMMAND ${CMAKE_SOURCE_DIR}/tests/fuzz/run $<TARGET_FILE:${name}>
    ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${corpus} ${EXPT_FUZZ_SECONDS} ${CMAKE_BINARY_DIR}/fuzz-out/${corpus})
  set_tests_properties(fuzz-run/${corpus} PROPERTIES TIMEOUT 600)
endforeach()
