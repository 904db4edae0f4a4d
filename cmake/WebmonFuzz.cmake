# libFuzzer targets (WEBMON_FUZZ=ON, clang only; scripts/fuzz configures, builds and runs them).
#
# Only the project sources the targets reach are compiled, once, into webmon_fuzz_core with
# coverage instrumentation and ASan/UBSan (-fsanitize=fuzzer-no-link,...); each target links it
# with -fsanitize=fuzzer,address,undefined, which brings libFuzzer's main (libclang-rt-14-dev).
# The Debian libraries (Boost.URL, yaml-cpp, librdkafka, PCRE2, OpenSSL, c-ares) are used as
# they are, uninstrumented.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "WEBMON_FUZZ needs clang (libFuzzer), e.g. CXX=clang++-14; this is ${CMAKE_CXX_COMPILER_ID}")
endif()
if(WEBMON_SANITIZE)
  message(FATAL_ERROR "WEBMON_FUZZ brings its own sanitizers; leave WEBMON_SANITIZE empty")
endif()

# UB stops the run like a crash (libFuzzer then keeps the input), instead of a line on stderr.
# -fno-sanitize=function: clang 14 cannot emit UBSan's function-type check for coroutines
# ("error in backend: Cannot represent a difference across sections", llvm/llvm-project#49689);
# it only checks calls through mistyped function pointers, which C++ code here does not make.
set(WEBMON_FUZZ_SANITIZE address,undefined)
# -O1 runs a target about twice as fast; -O0 compiles the core in about half the time, which is
# what CI's 30 s per target wants (scripts/test sets FUZZ_OPT=-O0; scripts/fuzz passes it here).
set(WEBMON_FUZZ_OPT -O1 CACHE STRING "Optimisation level of the fuzz build (-O0 or -O1)")
set(WEBMON_FUZZ_COMPILE_FLAGS -fsanitize=fuzzer-no-link,${WEBMON_FUZZ_SANITIZE} -fno-sanitize-recover=all
                              -fno-sanitize=function
                              -fno-omit-frame-pointer ${WEBMON_FUZZ_OPT} -gline-tables-only)

# webmon_common's sources (as src/common/CMakeLists.txt lists them, so a file split off config.cpp
# comes along) without the daemons' process plumbing, and the checker's probe with what it calls.
get_target_property(common_sources webmon_common SOURCES)
list(REMOVE_ITEM common_sources metrics_server.cpp service.cpp daemon_args.cpp)
list(TRANSFORM common_sources PREPEND ${PROJECT_SOURCE_DIR}/src/common/)
set(checker_sources tls.cpp resolver.cpp probe.cpp)
list(TRANSFORM checker_sources PREPEND ${PROJECT_SOURCE_DIR}/src/checker/)

add_library(webmon_fuzz_core STATIC ${common_sources} ${checker_sources})
webmon_target_defaults(webmon_fuzz_core)
target_compile_options(webmon_fuzz_core PRIVATE ${WEBMON_FUZZ_COMPILE_FLAGS})
target_include_directories(webmon_fuzz_core PUBLIC ${PROJECT_SOURCE_DIR}/include)
get_target_property(webmon_common_compile_definitions webmon_common INTERFACE_COMPILE_DEFINITIONS)
target_compile_definitions(webmon_fuzz_core PUBLIC ${webmon_common_compile_definitions})
get_target_property(webmon_common_libs webmon_common LINK_LIBRARIES)
target_link_libraries(webmon_fuzz_core PUBLIC ${webmon_common_libs} PkgConfig::CARES)

# webmon_add_fuzzer(<name> SOURCES <files...>): a libFuzzer executable webmon-fuzz-<name>.
function(webmon_add_fuzzer name)
  cmake_parse_arguments(F "" "" "SOURCES" ${ARGN})
  add_executable(webmon-fuzz-${name} ${F_SOURCES})
  webmon_target_defaults(webmon-fuzz-${name})
  target_compile_options(webmon-fuzz-${name} PRIVATE ${WEBMON_FUZZ_COMPILE_FLAGS})
  target_link_options(webmon-fuzz-${name} PRIVATE -fsanitize=fuzzer,${WEBMON_FUZZ_SANITIZE})
  target_link_libraries(webmon-fuzz-${name} PRIVATE webmon_fuzz_core)
  set_property(GLOBAL APPEND PROPERTY WEBMON_FUZZERS webmon-fuzz-${name})
endfunction()
