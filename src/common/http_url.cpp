#include "webmon/common/http_url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <boost/url/url_view.hpp>

#include "webmon/common/hex.hpp"
#include "webmon/common/text.hpp"

namespace webmon {
namespace {

namespace urls = boost::urls;

bool set_why(std::string* why, std::string text) {
  if (why) *why = std::move(text);
  return false;
}

std::string_view default_port(bool https) { return https ? "443" : "80"; }

// Servers send Location values with spaces or raw UTF-8 that RFC 3986 does not allow; browsers
// percent-encode those bytes and follow, so we do the same rather than report a protocol error.
std::string percent_encode_unsafe(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' ||
        c == '{' || c == '|' || c == '}') {
      out += '%';
      append_hex_byte(out, u, kHexUpper);
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<HttpUrl> from_view(const urls::url_view_base& u, std::string* why) {
  HttpUrl out;
  if (!u.has_scheme()) {
    set_why(why, "not an absolute URL (no scheme)");
    return std::nullopt;
  }
  switch (u.scheme_id()) {
    case urls::scheme::http: out.https = false; break;
    case urls::scheme::https: out.https = true; break;
    default:
      set_why(why, "scheme '" + std::string(u.scheme()) + "' is not http or https");
      return std::nullopt;
  }
  if (!u.has_authority() || u.encoded_host().empty()) {
    set_why(why, "no host");
    return std::nullopt;
  }
  if (u.has_userinfo()) {
    // Silently dropping credentials would send the probe unauthenticated; say how to do it instead.
    set_why(why, "user:password@ in the URL is not supported; send an Authorization header instead");
    return std::nullopt;
  }
  switch (u.host_type()) {
    case urls::host_type::ipv4:
    case urls::host_type::ipv6:
      out.host = u.host_address();
      break;
    case urls::host_type::name: {
      out.host = u.host_address();
      // A decoded host name must still be a name that needs no percent-encoding (RFC 3986
      // unreserved and sub-delims): nothing that would change the request line or the Host
      // header, and text that parses back to the same host (the base of the next redirect).
      // Non-ASCII names (IDN) are written in their xn-- form.
      const bool bad = std::any_of(out.host.begin(), out.host.end(), [](char c) {
        const auto uc = static_cast<unsigned char>(c);
        const bool alnum = (uc >= '0' && uc <= '9') || (uc >= 'a' && uc <= 'z') || (uc >= 'A' && uc <= 'Z');
        return !alnum && std::string_view("-._~!$&'()*+,;=").find(c) == std::string_view::npos;
      });
      if (bad) {
        set_why(why, "invalid host name '" + std::string(u.encoded_host()) + "'");
        return std::nullopt;
      }
      out.host = ascii_lower(out.host);
      break;
    }
    default:
      set_why(why, "unsupported host '" + std::string(u.encoded_host()) + "'");
      return std::nullopt;
  }
  if (u.has_port() && !u.port().empty()) {
    const auto p = u.port();
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (ec != std::errc{} || end != p.data() + p.size() || value == 0 || value > 65535) {
      set_why(why, "invalid port '" + std::string(p) + "'");
      return std::nullopt;
    }
    out.port = std::to_string(value);  // "080" -> "80"
  } else {
    out.port = default_port(out.https);
  }
  out.target = u.encoded_path();
  if (out.target.empty()) out.target = "/";
  if (out.target.front() != '/') {
    set_why(why, "path must start with '/'");
    return std::nullopt;
  }
  if (u.has_query()) {
    out.target += '?';
    out.target += u.encoded_query();
  }
  return out;
}

}  // namespace

std::string HttpUrl::host_header() const {
  std::string h;
  h.reserve(host.size() + 8);
  if (host.find(':') != std::string::npos) {
    h += '[';
    h += host;
    h += ']';
  } else {
    h += host;
  }
  if (port != default_port(https)) {
    h += ':';
    h += port;
  }
  return h;
}

std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* why) {
  // parse_uri (not parse_absolute_uri) so that a configured URL with a #fragment is accepted;
  // the fragment is never sent.
  auto parsed = urls::parse_uri(url);
  if (!parsed) {
    set_why(why, "malformed URL: " + parsed.error().message());
    return std::nullopt;
  }
  return from_view(*parsed, why);
}

std::optional<HttpUrl> resolve_redirect(const HttpUrl& base, std::string_view location, std::string* why) {
  const auto trimmed_begin = location.find_first_not_of(" \t");
  if (trimmed_begin == std::string_view::npos) {
    set_why(why, "empty Location header");
    return std::nullopt;
  }
  location = location.substr(trimmed_begin, location.find_last_not_of(" \t") - trimmed_begin + 1);

  const std::string base_text = to_string(base);
  auto base_view = urls::parse_uri(base_text);
  if (!base_view) {
    set_why(why, "base URL: " + base_view.error().message());
    return std::nullopt;
  }
  std::string encoded;
  auto ref = urls::parse_uri_reference(location);
  if (!ref) {
    encoded = percent_encode_unsafe(location);
    ref = urls::parse_uri_reference(encoded);
    if (!ref) {
      set_why(why, "malformed Location '" + std::string(location) + "': " + ref.error().message());
      return std::nullopt;
    }
  }
  urls::url dest;
  if (auto r = urls::resolve(*base_view, *ref, dest); !r) {
    set_why(why, "cannot resolve Location '" + std::string(location) + "': " + r.error().message());
    return std::nullopt;
  }
  std::string inner_why;
  auto out = from_view(dest, &inner_why);
  if (!out) set_why(why, "Location '" + std::string(location) + "': " + inner_why);
  return out;
}

std::string to_string(const HttpUrl& url) {
  std::string s = url.https ? "https://" : "http://";
  s += url.host_header();
  s += url.target;
  return s;
}

}  // namespace webmon
