// An absolute http:// or https:// URL split into what a probe needs to connect and ask.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace webmon {

struct HttpUrl {
  bool https = false;
  std::string host;    // without brackets for IPv6 literals
  std::string port;    // "80"/"443" when the URL has none
  std::string target;  // path and query, at least "/"
  bool operator==(const HttpUrl&) const = default;
  std::string host_header() const;  // host[:port] as the Host header wants it
};

// Parses an absolute URL; nullopt with *why set when it is not http(s) or is malformed.
std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* why = nullptr);

// Resolves a Location header value (absolute or relative) against the URL it came from.
std::optional<HttpUrl> resolve_redirect(const HttpUrl& base, std::string_view location,
                                        std::string* why = nullptr);

// Back to text, e.g. for the message's `url` field after redirects.
std::string to_string(const HttpUrl& url);

}  // namespace webmon
