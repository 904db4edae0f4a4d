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
  add_executable(${name} ${T_SOURCES})
  webmon_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${T_LIBS} webmon_testsupport GTest::gtest GTest::gmock GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
  set_tests_properties(${name} PROPERTIES
    LABELS "${T_LABELS}"
    TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "WEBMON_SOURCE_DIR=${PROJECT_SOURCE_DIR};WEBMON_BINARY_DIR=${PROJECT_BINARY_DIR};${T_ENV}")
  if("integration" IN_LIST T_LABELS OR "fault" IN_LIST T_LABELS)
    # Tests that share the one local stack do not run side by side with each other.
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK webmon_stack)
  endif()
endfunction()
