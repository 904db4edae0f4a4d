// Small text helpers shared by the config, URL, resolver, metrics and batch code (ASCII only:
// host names, keys, addresses).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace webmon {

inline char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Equal but for ASCII case (header names, schemes).
inline bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

inline std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  return out;
}

// An address split by parse_host_port(); views into the parsed text.
struct HostPort {
  std::string_view host;              // brackets removed; empty for ":port"
  std::optional<std::uint16_t> port;  // absent when the text has none (only with port_optional)
  bool bracketed = false;             // written as "[v6]" / "[v6]:port"
};

// The one host:port reader: "host:port", "[v6]:port" and ":port" (an empty host, which callers
// take as "all addresses" or refuse). With `port_optional` also "host", "[v6]" and a bare IPv6
// literal ("::1", more than one colon, hence no port). The port is 0..65535 in decimal (callers
// that cannot use 0 refuse it); the host is not checked beyond that (callers check it is an IP
// address or a name as they need). nullopt for anything else, e.g. "::1:9100" when a port is
// required (a bare IPv6 literal with a port needs brackets), "host:", "[::1]9100" or "".
inline std::optional<HostPort> parse_host_port(std::string_view s, bool port_optional = false) {
  auto port_of = [](std::string_view p) -> std::optional<std::uint16_t> {
    if (p.empty() || p.size() > 5) return std::nullopt;
    unsigned value = 0;
    for (const char c : p) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(value);
  };
  if (s.empty()) return std::nullopt;
  HostPort out;
  if (s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    out.host = s.substr(1, close - 1);
    out.bracketed = true;
    const auto rest = s.substr(close + 1);
    if (rest.empty()) {
      if (!port_optional) return std::nullopt;
      return out;
    }
    if (rest.front() != ':' || !(out.port = port_of(rest.substr(1)))) return std::nullopt;
    return out;
  }
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos) {
    if (!port_optional) return std::nullopt;
    out.host = s;
    return out;
  }
  if (s.find(':') != colon) {  // two colons or more: a bare IPv6 literal, which cannot carry a port
    if (!port_optional) return std::nullopt;
    out.host = s;
    return out;
  }
  out.host = s.substr(0, colon);
  if (!(out.port = port_of(s.substr(colon + 1)))) return std::nullopt;
  return out;
}

}  // namespace webmon
