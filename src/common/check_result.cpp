#include "webmon/common/check_result.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace webmon {
namespace {

namespace json = boost::json;
using namespace std::chrono;

// ---------------------------------------------------------------------------------------------
// Encoding. Written straight into one string rather than through a json::value: it runs for every
// probe, and Boost.JSON's serializer prints 0.25 as 2.5E-1, which people reading the topic with
// kcat should not have to decode. Doubles use std::to_chars (shortest text that reads back
// exactly); strings are escaped and made valid UTF-8 (error details may quote a server's bytes).

void append_utf8_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++p;
      continue;
    }
    // A well-formed multi-byte sequence is copied; anything else becomes U+FFFD.
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
    bool good = len != 0 && static_cast<std::size_t>(end - p) >= len;
    for (std::size_t i = 1; good && i < len; ++i) {
      if ((p[i] & 0xc0) != 0x80) good = false;
      else cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (good) {
      // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
      good = !((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
               cp > 0x10ffff);
    }
    if (good) {
      out.append(reinterpret_cast<const char*>(p), len);
      p += len;
    } else {
      out += "\xef\xbf\xbd";
      ++p;
    }
  }
  out += '"';
}

void append_double(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;  // JSON has no NaN/Inf; a duration is never either
  std::array<char, 32> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

template <typename Int>
void append_int(std::string& out, Int v) {
  std::array<char, 24> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

void append_opt_double(std::string& out, const std::optional<double>& v) {
  if (v) append_double(out, *v);
  else out += "null";
}

void append_time(std::string& out, SysMillis t) {
  out += '"';
  out += format_rfc3339_ms(t);
  out += '"';
}

void append_string_or_null(std::string& out, std::string_view s) {
  if (s.empty()) out += "null";
  else append_utf8_escaped(out, s);
}

// ---------------------------------------------------------------------------------------------
// RFC 3339

void put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& value) {
  if (pos + n > s.size()) return false;
  value = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    value = value * 10 + (s[i] - '0');
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Decoding: strict about the types of the fields v1 defines, blind to any other field.

struct Fail {
  std::string reason;
};

const json::value& field(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (!v) throw Fail{"missing field " + std::string(name)};
  return *v;
}

[[noreturn]] void wrong_type(std::string_view name, std::string_view expected) {
  throw Fail{"field " + std::string(name) + ": expected " + std::string(expected)};
}

std::string get_string(const json::object& o, std::string_view name) {
  const auto& v = field(o, name);
  if (!v.is_string()) wrong_type(name, "string");
  return std::string(v.get_string());
}

std::string get_string_or_null(const json::object& o, std::string_view name) {
  const auto& v = field(o, name);
  if (v.is_null()) return {};
  if (!v.is_string()) wrong_type(name, "string or null");
  return std::string(v.get_string());
}

bool get_bool(const json::object& o, std::string_view name) {
  const auto& v = field(o, name);
  if (!v.is_bool()) wrong_type(name, "boolean");
  return v.get_bool();
}

std::optional<bool> get_bool_or_null(const json::object& o, std::string_view name) {
  const auto& v = field(o, name);
  if (v.is_null()) return std::nullopt;
  if (!v.is_bool()) wrong_type(name, "boolean or null");
  return v.get_bool();
}

// An integer in [lo, hi]; JSON numbers written as integers only (200, not 200.0).
std::int64_t as_integer(const json::value& v, std::string_view name, std::int64_t lo, std::int64_t hi,
                        std::string_view expected) {
  std::int64_t n = 0;
  if (v.is_int64()) n = v.get_int64();
  else if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(hi)) n = static_cast<std::int64_t>(v.get_uint64());
  else wrong_type(name, expected);
  if (n < lo || n > hi) throw Fail{"field " + std::string(name) + ": " + std::to_string(n) + " out of range"};
  return n;
}

std::uint64_t get_count(const json::object& o, std::string_view name) {
  const auto& v = field(o, name);
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64()) {
    if (v.get_int64() < 0) throw Fail{"field " + std::string(name) + ": negative"};
    return static_cast<std::uint64_t>(v.get_int64());
  }
  wrong_type(name, "non-negative integer");
}

double as_seconds(const json::value& v, std::string_view name, std::string_view expected) {
  double d = 0;
  if (v.is_double()) d = v.get_double();
  else if (v.is_int64()) d = static_cast<double>(v.get_int64());
  else if (v.is_uint64()) d = static_cast<double>(v.get_uint64());
  else wrong_type(name, expected);
  if (!(d >= 0)) throw Fail{"field " + std::string(name) + ": negative duration"};
  return d;
}

std::optional<double> get_seconds_or_null(const json::object& o, std::string_view name) {
  const auto& v = field(o, name);
  if (v.is_null()) return std::nullopt;
  return as_seconds(v, name, "number or null");
}

SysMillis get_time(const json::object& o, std::string_view name) {
  const auto& v = field(o, name);
  if (!v.is_string()) wrong_type(name, "RFC 3339 time string");
  auto t = parse_rfc3339(v.get_string());
  if (!t) throw Fail{"field " + std::string(name) + ": not an RFC 3339 time"};
  return *t;
}

CheckResult decode_object(const json::object& o) {
  // The version first: a v2 message is refused as such, not for whatever field it changed.
  {
    const auto& v = field(o, "schema_version");
    if (!v.is_int64() && !v.is_uint64()) wrong_type("schema_version", "integer");
    if (!(v.is_int64() && v.get_int64() == kSchemaVersion)) {
      throw Fail{"unknown schema_version " + json::serialize(v)};
    }
  }
  CheckResult r;
  r.target = get_string(o, "target");
  if (r.target.empty()) throw Fail{"field target: empty"};
  r.url = get_string(o, "url");
  r.scheduled_at = get_time(o, "scheduled_at");
  r.started_at = get_time(o, "started_at");
  r.http_response_time = get_seconds_or_null(o, "http_response_time");
  if (const auto& v = field(o, "http_status"); !v.is_null()) {
    r.http_status = static_cast<int>(as_integer(v, "http_status", 0, 999, "integer or null"));
  }
  r.regexp_match = get_bool_or_null(o, "regexp_match");
  r.ok = get_bool(o, "ok");
  if (const auto& v = field(o, "error"); !v.is_null()) {
    if (!v.is_string()) wrong_type("error", "string or null");
    const auto e = error_class_from_string(v.get_string());
    if (!e || *e == ErrorClass::none) throw Fail{"field error: unknown class \"" + std::string(v.get_string()) + "\""};
    r.error = *e;
  }
  r.error_detail = get_string_or_null(o, "error_detail");
  {
    const auto& v = field(o, "timings");
    if (!v.is_object()) wrong_type("timings", "object");
    const auto& t = v.get_object();
    r.timings.dns = get_seconds_or_null(t, "dns");
    r.timings.connect = get_seconds_or_null(t, "connect");
    r.timings.tls = get_seconds_or_null(t, "tls");
    r.timings.ttfb = get_seconds_or_null(t, "ttfb");
    r.timings.transfer = get_seconds_or_null(t, "transfer");
    r.timings.total = as_seconds(field(t, "total"), "total", "number");
  }
  r.body_bytes = get_count(o, "body_bytes");
  r.redirects = static_cast<int>(
      as_integer(field(o, "redirects"), "redirects", 0, std::numeric_limits<int>::max(), "non-negative integer"));
  if (const auto& v = field(o, "tls_cert_not_after"); !v.is_null()) {
    if (!v.is_string()) wrong_type("tls_cert_not_after", "RFC 3339 time string or null");
    auto t = parse_rfc3339(v.get_string());
    if (!t) throw Fail{"field tls_cert_not_after: not an RFC 3339 time"};
    r.tls_cert_not_after = floor<seconds>(*t);
  }
  r.peer = get_string_or_null(o, "peer");
  r.checker = get_string(o, "checker");
  return r;
}

}  // namespace

std::string_view to_string(ErrorClass e) noexcept {
  switch (e) {
    case ErrorClass::none: return "";
    case ErrorClass::dns: return "dns";
    case ErrorClass::connect: return "connect";
    case ErrorClass::tls: return "tls";
    case ErrorClass::timeout: return "timeout";
    case ErrorClass::protocol: return "protocol";
    case ErrorClass::too_many_redirects: return "too_many_redirects";
  }
  return "";
}

std::optional<ErrorClass> error_class_from_string(std::string_view s) {
  for (auto e : {ErrorClass::dns, ErrorClass::connect, ErrorClass::tls, ErrorClass::timeout, ErrorClass::protocol,
                 ErrorClass::too_many_redirects}) {
    if (to_string(e) == s) return e;
  }
  return std::nullopt;
}

std::string format_rfc3339_ms(SysMillis t) {
  const auto day = floor<days>(t);
  const year_month_day ymd(day);
  const hh_mm_ss<milliseconds> tod(t - day);
  // 2024-05-01T12:00:00.123Z, written by hand: this runs twice per message.
  char buf[25] = "0000-00-00T00:00:00.000Z";
  int y = static_cast<int>(ymd.year());
  if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999;  // RFC 3339 has four-digit years only
  buf[0] = static_cast<char>('0' + y / 1000);
  buf[1] = static_cast<char>('0' + y / 100 % 10);
  put2(buf + 2, static_cast<unsigned>(y % 100));
  put2(buf + 5, static_cast<unsigned>(ymd.month()));
  put2(buf + 8, static_cast<unsigned>(ymd.day()));
  put2(buf + 11, static_cast<unsigned>(tod.hours().count()));
  put2(buf + 14, static_cast<unsigned>(tod.minutes().count()));
  put2(buf + 17, static_cast<unsigned>(tod.seconds().count()));
  const auto ms = static_cast<unsigned>(tod.subseconds().count());
  buf[20] = static_cast<char>('0' + ms / 100);
  put2(buf + 21, ms % 100);
  return std::string(buf, 24);
}

std::optional<SysMillis> parse_rfc3339(std::string_view s) {
  // date-time = full-date "T" full-time; full-time = HH:MM:SS [.frac] (Z | +HH:MM | -HH:MM)
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 20 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t pos = 19;
  int ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (pos - start < 3) ms = ms * 10 + (s[pos] - '0');  // finer than ms is truncated
      ++pos;
    }
    if (pos == start) return std::nullopt;
    for (std::size_t n = pos - start; n < 3; ++n) ms *= 10;
  }
  if (pos >= s.size()) return std::nullopt;
  minutes offset{0};
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh = 0, om = 0;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om) ||
        oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = hours{oh} + minutes{om};
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  // A leap second (:60) lands on the next second, which is what a UTC clock without them shows.
  return SysMillis{sys_days{ymd}.time_since_epoch() + hours{h} + minutes{mi} + seconds{sec} + milliseconds{ms} -
                   offset};
}

std::string encode_check_result(const CheckResult& r) {
  std::string out;
  out.reserve(512 + r.target.size() + r.url.size() + r.error_detail.size());
  out += "{\"schema_version\":1,\"target\":";
  append_utf8_escaped(out, r.target);
  out += ",\"url\":";
  append_utf8_escaped(out, r.url);
  out += ",\"scheduled_at\":";
  append_time(out, r.scheduled_at);
  out += ",\"started_at\":";
  append_time(out, r.started_at);
  out += ",\"http_response_time\":";
  append_opt_double(out, r.http_response_time);
  out += ",\"http_status\":";
  if (r.http_status) append_int(out, *r.http_status);
  else out += "null";
  out += ",\"regexp_match\":";
  out += r.regexp_match ? (*r.regexp_match ? "true" : "false") : "null";
  out += ",\"ok\":";
  out += r.ok ? "true" : "false";
  out += ",\"error\":";
  if (r.error == ErrorClass::none) {
    out += "null";
  } else {
    out += '"';
    out += to_string(r.error);
    out += '"';
  }
  out += ",\"error_detail\":";
  append_string_or_null(out, r.error_detail);
  out += ",\"timings\":{\"dns\":";
  append_opt_double(out, r.timings.dns);
  out += ",\"connect\":";
  append_opt_double(out, r.timings.connect);
  out += ",\"tls\":";
  append_opt_double(out, r.timings.tls);
  out += ",\"ttfb\":";
  append_opt_double(out, r.timings.ttfb);
  out += ",\"transfer\":";
  append_opt_double(out, r.timings.transfer);
  out += ",\"total\":";
  append_double(out, r.timings.total);
  out += "},\"body_bytes\":";
  append_int(out, r.body_bytes);
  out += ",\"redirects\":";
  append_int(out, r.redirects < 0 ? 0 : r.redirects);
  out += ",\"tls_cert_not_after\":";
  if (r.tls_cert_not_after) append_time(out, SysMillis{*r.tls_cert_not_after});
  else out += "null";
  out += ",\"peer\":";
  append_string_or_null(out, r.peer);
  out += ",\"checker\":";
  append_utf8_escaped(out, r.checker);
  out += '}';
  return out;
}

std::variant<CheckResult, DecodeError> decode_check_result(std::string_view text, std::size_t max_bytes) {
  if (text.size() > max_bytes) {
    return DecodeError{"message of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                       std::to_string(max_bytes) + " bytes"};
  }
  // Parsed into a stack buffer (a v1 message is well under 4 KiB), so that decoding a batch of
  // thousands does not go through the heap for every node.
  std::array<unsigned char, 4096> buffer;
  json::monotonic_resource mr(buffer.data(), buffer.size());
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec, &mr);
  if (ec) return DecodeError{"not JSON: " + ec.message()};
  if (!v.is_object()) return DecodeError{"not a JSON object"};
  try {
    return decode_object(v.get_object());
  } catch (const Fail& f) {
    return DecodeError{f.reason};
  }
}

}  // namespace webmon
