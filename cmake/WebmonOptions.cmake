# Flags for webmon's own targets only: no global CMAKE_CXX_FLAGS.
set(WEBMON_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2)
# g++ 12 at -O3 (CMAKE_BUILD_TYPE=Release) reports -Wrestrict inside libstdc++'s own string
# concatenation (GCC bug 105651, fixed in 13), which -Werror would turn into a failed build.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND WEBMON_WARNINGS -Wno-restrict)
endif()

# What the test programs' own code (tests/, not src/) is compiled with. Empty: the same as
# webmon's code. scripts/test's CI run compiles it with ASan only beside WEBMON_SANITIZE's
# address,undefined (UBSan instruments every src/ file the tests drive, and costs a test file
# a third of its compile time), and without optimisation in the release tree.
set(WEBMON_TEST_CODE_SANITIZE "" CACHE STRING
    "Sanitizers for the test programs' own code (empty: WEBMON_SANITIZE's)")
set(WEBMON_TEST_CODE_FLAGS "" CACHE STRING
    "Extra compile flags for the test programs' own code, e.g. -O0")

# webmon_target_defaults(<target> [TEST_CODE]): C++20, our warnings (-Werror behind WEBMON_WERROR),
# sanitizers. TEST_CODE: a test program or test support library (WEBMON_TEST_CODE_* above); it
# still links with WEBMON_SANITIZE's runtimes, which the webmon libraries it links need.
function(webmon_target_defaults target)
  cmake_parse_arguments(D "TEST_CODE" "" "" ${ARGN})
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  target_compile_options(${target} PRIVATE ${WEBMON_WARNINGS})
  if(WEBMON_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  set(sanitize "${WEBMON_SANITIZE}")
  if(D_TEST_CODE AND WEBMON_SANITIZE AND WEBMON_TEST_CODE_SANITIZE)
    set(sanitize "${WEBMON_TEST_CODE_SANITIZE}")
  endif()
  if(sanitize)
    target_compile_options(${target} PRIVATE -fsanitize=${sanitize} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
  endif()
  if(WEBMON_SANITIZE)
    target_link_options(${target} PUBLIC -fsanitize=${WEBMON_SANITIZE})
  endif()
  if(D_TEST_CODE AND WEBMON_TEST_CODE_FLAGS)
    separate_arguments(flags UNIX_COMMAND "${WEBMON_TEST_CODE_FLAGS}")
    target_compile_options(${target} PRIVATE ${flags})
  endif()
endfunction()
