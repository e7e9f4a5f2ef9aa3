# Sanitizer and fuzzing builds (clang): docs/testing.md says how scripts/ci_sanitizers.sh and
# scripts/fuzz.sh use them.
#
#   -DKILN_SANITIZE=address,undefined   ASan + UBSan over the library, tools, tests and examples
#   -DKILN_SANITIZE=thread              TSan
#   -DKILN_BUILD_FUZZ=ON                the libFuzzer targets in fuzz/ (implies address,undefined,
#                                       and coverage instrumentation of everything built)
set(KILN_SANITIZE "" CACHE STRING "Build with these -fsanitize= checks, e.g. address,undefined or thread (clang)")
option(KILN_BUILD_FUZZ "Build the libFuzzer targets in fuzz/ (clang; turns on address,undefined)" OFF)

if(KILN_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "KILN_BUILD_FUZZ needs clang (libFuzzer), e.g. CC=clang-19 CXX=clang++-19")
  endif()
  if(KILN_SANITIZE STREQUAL "")
    set(KILN_SANITIZE "address,undefined" CACHE STRING "" FORCE)
  endif()
endif()

if(NOT KILN_SANITIZE STREQUAL "")
  set(kiln_sanitize_flags -fsanitize=${KILN_SANITIZE} -fno-omit-frame-pointer)
  # A UBSan finding fails the program (and so the test) instead of printing and going on.
  list(APPEND kiln_sanitize_flags -fno-sanitize-recover=all)
  set(kiln_compile_flags ${kiln_sanitize_flags})
  # The fuzzers learn from the coverage of the code they exercise, the library included.
  if(KILN_BUILD_FUZZ)
    list(APPEND kiln_compile_flags -fsanitize=fuzzer-no-link)
  endif()
  add_compile_options(${kiln_compile_flags})
  add_link_options(${kiln_sanitize_flags})
  message(STATUS "Kiln: -fsanitize=${KILN_SANITIZE} (fuzz targets: ${KILN_BUILD_FUZZ})")
endif()

# The static runtime that kiln::aot links into user libraries. In a sanitizer build it is
# compiled without sanitizers: an AOT library is linked with -z defs by the plain C++ driver and
# loaded into programs (the C examples, tests/consumer) that have no sanitizer runtime, so it
# must not reference one. The same runtime sources are checked, instrumented, inside libkiln
# (runtime_aot_model_test) and by the fuzzers.
function(kiln_add_runtime_static)
  if(KILN_SANITIZE STREQUAL "")
    add_library(kiln_runtime_static STATIC $<TARGET_OBJECTS:kiln_runtime>)
    return()
  endif()
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/runtime/*.cpp)
  add_library(kiln_runtime_static STATIC ${sources})
  target_include_directories(kiln_runtime_static PRIVATE ${KILN_INCLUDE_ROOT})
  # -fno-sanitize=all comes after the global flags and turns them (coverage included) off.
  target_compile_options(kiln_runtime_static PRIVATE -fno-sanitize=all)
endfunction()
