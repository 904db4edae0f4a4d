// What the fuzz targets share: a check that stops the run (libFuzzer keeps the input as a crash)
// when a property of the code under test does not hold.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace webmon::fuzz {

[[noreturn]] inline void property_failed(const char* what, const std::string& detail, const char* file, int line) {
  std::fprintf(stderr, "\n==webmon-fuzz== property failed at %s:%d: %s\n%s\n", file, line, what, detail.c_str());
  std::abort();
}

inline std::string_view as_text(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace webmon::fuzz

// WEBMON_FUZZ_CHECK(condition, detail): abort with `detail` (a std::string) when it is false.
#define WEBMON_FUZZ_CHECK(cond, detail) \
  do {                                  \
    if (!(cond)) ::webmon::fuzz::property_failed(#cond, (detail), __FILE__, __LINE__); \
  } while (0)
