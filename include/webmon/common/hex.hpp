// Bytes as hexadecimal digits, for every place that writes them: JSON \u escapes, SHA-256
// digests, bytea literals, URL percent-encoding. Header-only: it sits in per-character loops.
#pragma once

#include <string>
#include <string_view>

namespace webmon {

inline constexpr std::string_view kHexLower = "0123456789abcdef";
inline constexpr std::string_view kHexUpper = "0123456789ABCDEF";

// Appends the two digits of one byte (lower case unless `digits` is kHexUpper).
inline void append_hex_byte(std::string& out, unsigned char byte, std::string_view digits = kHexLower) {
  out += digits[byte >> 4];
  out += digits[byte & 0xf];
}

// Appends every byte of `bytes` as two lower-case digits.
inline void append_hex(std::string& out, std::string_view bytes) {
  out.reserve(out.size() + bytes.size() * 2);
  for (const char c : bytes) append_hex_byte(out, static_cast<unsigned char>(c));
}

inline std::string to_hex(std::string_view bytes) {
  std::string out;
  append_hex(out, bytes);
  return out;
}

}  // namespace webmon
