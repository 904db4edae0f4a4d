# webmon_add_test(<name> SOURCES <files...> [LIBS <targets...>] LABELS <unit|integration|fault...>
#                 [TIMEOUT <seconds>] [ENV <VAR=value...>])
# Registers a GoogleTest executable with ctest, the same way for every test. Integration and fault
# tests find the local stack (scripts/stack) through WEBMON_TEST_* environment variables.
function(webmon_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS;ENV" ${ARGN})
  if(NOT T_LABELS)
    message(FATAL_ERROR "webmon_add_test(${name}): LABELS is required")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  webmon_test_skipped(_webmon_skip "${T_LABELS}")
  add_executable(${name} ${T_SOURCES})
  webmon_target_defaults(${name} TEST_CODE)
  target_link_libraries(${name} PRIVATE ${T_LIBS} webmon_testsupport GTest::gtest GTest::gmock GTest::gtest_main)
  webmon_test_name(test_name ${name})
  if(_webmon_skip)
    # Another tree of the same run builds and runs it (scripts/test); `ninja <name>` still builds it.
    set_target_properties(${name} PROPERTIES EXCLUDE_FROM_ALL TRUE)
    return()
  endif()
  if(WEBMON_SANITIZE)
    # Sanitized code runs a few times slower; the tests' own waits are bounds, not expectations.
    math(EXPR T_TIMEOUT "${T_TIMEOUT} * 3")
    list(APPEND T_LABELS sanitize)
    # Inherited by the daemons the tests start, so a leak or UB in them fails the test too.
    list(APPEND T_ENV "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp"
                      "UBSAN_OPTIONS=print_stacktrace=1")
  endif()
  if("fault" IN_LIST T_LABELS)
    # The fault tests stop, freeze and restart the servers: they run on a stack of their own
    # (fixture webmon_fault_stack, tests/CMakeLists.txt), one at a time, beside the tests that
    # share the default stack.
    add_test(NAME ${test_name} COMMAND ${WEBMON_FAULT_STACK} run ${WEBMON_FAULT_STACK_DIR}
             $<TARGET_FILE:${name}> --gtest_color=no)
    set_tests_properties(${test_name} PROPERTIES FIXTURES_REQUIRED ${WEBMON_FAULT_STACK_FIXTURE}
                         RESOURCE_LOCK ${WEBMON_FAULT_STACK_FIXTURE})
  else()
    add_test(NAME ${test_name} COMMAND ${name} --gtest_color=no)
  endif()
  set_tests_properties(${test_name} PROPERTIES
    LABELS "${T_LABELS}"
    TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "WEBMON_SOURCE_DIR=${PROJECT_SOURCE_DIR};WEBMON_BINARY_DIR=${PROJECT_BINARY_DIR};${T_ENV}")
  if("integration" IN_LIST T_LABELS)
    # Tests that share the one local stack do not run side by side with each other (also across
    # the build trees of one ctest run: see WEBMON_CTEST_ALSO).
    set_tests_properties(${test_name} PROPERTIES RESOURCE_LOCK webmon_stack)
  endif()
endfunction()

# webmon_add_command_test(<name> LABELS <labels...> [TIMEOUT <seconds>] COMMAND <command...>):
# a test that is a command (a script driving our binaries) rather than a GoogleTest executable,
# named, labelled and given the sanitizer settings the same way as webmon_add_test's.
function(webmon_add_command_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "LABELS;COMMAND" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  webmon_test_skipped(_webmon_skip "${T_LABELS}")
  if(_webmon_skip)
    return()
  endif()
  webmon_test_name(test_name ${name})
  set(env "WEBMON_SOURCE_DIR=${PROJECT_SOURCE_DIR}" "WEBMON_BINARY_DIR=${PROJECT_BINARY_DIR}")
  if(WEBMON_SANITIZE)
    math(EXPR T_TIMEOUT "${T_TIMEOUT} * 3")
    list(APPEND T_LABELS sanitize)
    list(APPEND env "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp" "UBSAN_OPTIONS=print_stacktrace=1")
  endif()
  add_test(NAME ${test_name} COMMAND ${T_COMMAND})
  set_tests_properties(${test_name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT} ENVIRONMENT "${env}")
endfunction()

# webmon_test_name(<out> <name>): the name ctest shows. A sanitizer build's tests are
# `sanitize:<name>`, so that one ctest run can hold both trees' tests (WEBMON_CTEST_ALSO).
function(webmon_test_name out name)
  if(WEBMON_SANITIZE)
    set(${out} "sanitize:${name}" PARENT_SCOPE)
  else()
    set(${out} "${name}" PARENT_SCOPE)
  endif()
endfunction()

# webmon_test_skipped(<out> <labels>): TRUE when one of the labels is in WEBMON_TEST_SKIP_LABELS.
function(webmon_test_skipped out labels)
  set(skip FALSE)
  foreach(label IN LISTS labels)
    if(label IN_LIST WEBMON_TEST_SKIP_LABELS)
      set(skip TRUE)
    endif()
  endforeach()
  set(${out} ${skip} PARENT_SCOPE)
endfunction()

# WEBMON_TEST_SKIP_LABELS: tests with one of these labels are neither registered with ctest nor
# built by default (`ninja <test>` builds one). scripts/test runs each test in one tree only, to keep
# the whole run within CI's time: the sanitized tree skips `fault`, the release tree `unit` and
# `integration` (so every test runs once: unit and integration under ASan+UBSan, fault and package
# on the release build that ships).
set(WEBMON_TEST_SKIP_LABELS "" CACHE STRING "Labels whose tests are neither built by default nor registered")

# The fault tests' own stack (tests/support/private_stack): its directory, and the ctest fixture
# that starts it before the first fault test and stops it after the last.
set(WEBMON_FAULT_STACK ${PROJECT_SOURCE_DIR}/tests/support/private_stack)
set(WEBMON_FAULT_STACK_DIR ${PROJECT_BINARY_DIR}/fault-stack)
if(WEBMON_SANITIZE)
  set(WEBMON_FAULT_STACK_FIXTURE webmon_fault_stack_sanitize)
else()
  set(WEBMON_FAULT_STACK_FIXTURE webmon_fault_stack)
endif()
function(webmon_add_fault_stack)
  webmon_test_skipped(skip fault)
  if(skip)
    return()
  endif()
  webmon_test_name(up fault_stack_up)
  webmon_test_name(down fault_stack_down)
  add_test(NAME ${up} COMMAND ${WEBMON_FAULT_STACK} up ${WEBMON_FAULT_STACK_DIR})
  set_tests_properties(${up} PROPERTIES LABELS fault TIMEOUT 300 FIXTURES_SETUP ${WEBMON_FAULT_STACK_FIXTURE}
                       RESOURCE_LOCK ${WEBMON_FAULT_STACK_FIXTURE})
  add_test(NAME ${down} COMMAND ${WEBMON_FAULT_STACK} down ${WEBMON_FAULT_STACK_DIR})
  set_tests_properties(${down} PROPERTIES LABELS fault TIMEOUT 120 FIXTURES_CLEANUP ${WEBMON_FAULT_STACK_FIXTURE}
                       RESOURCE_LOCK ${WEBMON_FAULT_STACK_FIXTURE})
endfunction()

# WEBMON_CTEST_ALSO: other build trees (absolute paths) whose tests this tree's ctest runs too, in
# the same run. scripts/test points it at build-sanitize/, so that one `ctest -j 2` overlaps the
# sanitized suite with the package tests and the stack's RESOURCE_LOCK holds across both trees.
set(WEBMON_CTEST_ALSO "" CACHE STRING "Other build trees whose tests this tree's ctest also runs")
set(_webmon_ctest_also_file ${PROJECT_BINARY_DIR}/webmon_ctest_also.cmake)
set(_webmon_ctest_also "# Written by cmake/WebmonTest.cmake from WEBMON_CTEST_ALSO.\n")
foreach(_dir IN LISTS WEBMON_CTEST_ALSO)
  string(APPEND _webmon_ctest_also "if(EXISTS \"${_dir}/CTestTestfile.cmake\")\n  subdirs(\"${_dir}\")\n"
         "else()\n  message(FATAL_ERROR \"WEBMON_CTEST_ALSO: ${_dir} is not a build tree with tests\")\nendif()\n")
endforeach()
file(WRITE ${_webmon_ctest_also_file} "${_webmon_ctest_also}")
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY TEST_INCLUDE_FILES ${_webmon_ctest_also_file})
