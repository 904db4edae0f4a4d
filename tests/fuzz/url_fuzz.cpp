// Fuzz target: URL parsing and redirect resolution. The input is "<url>\n<Location value>": the
// URL as a config would give it (or, when it is not a usable http(s) URL, a fixed one) and a
// Location header a server sent. Every URL that comes out, parsed or resolved, can be sent as it
// is (no byte that would break the request line or the Host header) and survives the round trip
// through its text, which is how the next redirect and the message's url field see it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "webmon/common/http_url.hpp"

namespace {

using namespace webmon;

std::string show(const HttpUrl& u) {
  return std::string(u.https ? "https" : "http") + " host '" + u.host + "' port '" + u.port + "' target '" + u.target +
         "' -> " + to_string(u);
}

// No control character or space: nothing that ends a request line or a header field.
bool sendable(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// The request target is ASCII (percent-encoded).
bool ascii(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

void check_url(const HttpUrl& u, std::string_view from) {
  const std::string where = show(u) + "\nfrom: " + std::string(from);
  WEBMON_FUZZ_CHECK(!u.host.empty(), where);
  WEBMON_FUZZ_CHECK(sendable(u.host), where);
  WEBMON_FUZZ_CHECK(sendable(u.target) && ascii(u.target) && !u.target.empty() && u.target.front() == '/', where);
  WEBMON_FUZZ_CHECK(u.target.find('#') == std::string::npos, where);  // a fragment is never sent
  const bool port_ok = !u.port.empty() && u.port.size() <= 5 && u.port.front() != '0' &&
                       std::all_of(u.port.begin(), u.port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                       std::stoi(u.port) <= 65535;
  WEBMON_FUZZ_CHECK(port_ok, where);
  WEBMON_FUZZ_CHECK(sendable(u.host_header()), where);
  std::string why;
  const auto again = parse_http_url(to_string(u), &why);
  WEBMON_FUZZ_CHECK(again.has_value(), where + "\nits text does not parse: " + why);
  WEBMON_FUZZ_CHECK(*again == u, where + "\nits text parses to " + show(*again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = webmon::fuzz::as_text(data, size);
  const auto newline = input.find('\n');
  const std::string_view url_text = input.substr(0, newline);
  const std::string_view location = newline == std::string_view::npos ? input : input.substr(newline + 1);

  std::string why;
  auto base = parse_http_url(url_text, &why);
  if (base) {
    check_url(*base, url_text);
  } else {
    WEBMON_FUZZ_CHECK(!why.empty(), "refused without a reason: " + std::string(url_text));
    base = parse_http_url("https://www.example.com:8443/a/b/c?x=1");
  }

  why.clear();
  const auto next = resolve_redirect(*base, location, &why);
  if (next) {
    check_url(*next, std::string(location) + " (against " + to_string(*base) + ")");
  } else {
    WEBMON_FUZZ_CHECK(!why.empty(), "Location refused without a reason: " + std::string(location));
  }
  return 0;
}
