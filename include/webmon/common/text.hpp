// Small text helpers shared by the config, URL and resolver code (ASCII only: host names, keys).
#pragma once

#include <string>
#include <string_view>

namespace webmon {

inline char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

}  // namespace webmon
