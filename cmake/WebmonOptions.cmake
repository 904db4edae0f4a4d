# Flags for webmon's own targets only: no global CMAKE_CXX_FLAGS.
set(WEBMON_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2)
# g++ 12 at -O3 (CMAKE_BUILD_TYPE=Release) reports -Wrestrict inside libstdc++'s own string
# concatenation (GCC bug 105651, fixed in 13), which -Werror would turn into a failed build.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND WEBMON_WARNINGS -Wno-restrict)
endif()

# webmon_target_defaults(<target>): C++20, our warnings (-Werror behind WEBMON_WERROR), sanitizers.
function(webmon_target_defaults target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  target_compile_options(${target} PRIVATE ${WEBMON_WARNINGS})
  if(WEBMON_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(WEBMON_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${WEBMON_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PUBLIC -fsanitize=${WEBMON_SANITIZE})
  endif()
endfunction()
