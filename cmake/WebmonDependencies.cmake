# Every dependency is a Debian 12 package (scripts/install-deps), found here with
# find_package or pkg-config. Nothing is fetched or vendored.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS json url)
find_package(OpenSSL 3 REQUIRED)
find_package(yaml-cpp 0.7 REQUIRED CONFIG)
find_package(fmt REQUIRED CONFIG)
find_package(spdlog 1.10 REQUIRED CONFIG)
find_package(prometheus-cpp REQUIRED CONFIG COMPONENTS core)
find_package(PkgConfig REQUIRED)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka>=2.0)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx>=6.4)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8>=10.40)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares>=1.18)
if(WEBMON_BUILD_TESTS)
  find_package(GTest REQUIRED CONFIG)
endif()
if(WEBMON_BUILD_BENCH)
  find_package(benchmark REQUIRED CONFIG)
endif()

# Asio and Beast are compiled once (src/common/asio_impl.cpp) instead of in every translation
# unit that includes them: it roughly halves the build on two cores.
add_library(webmon_asio INTERFACE)
add_library(webmon::asio ALIAS webmon_asio)
target_link_libraries(webmon_asio INTERFACE Boost::headers OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
target_compile_definitions(webmon_asio INTERFACE
  BOOST_ASIO_SEPARATE_COMPILATION BOOST_BEAST_SEPARATE_COMPILATION BOOST_ASIO_NO_DEPRECATED)
