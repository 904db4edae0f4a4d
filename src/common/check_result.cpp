#include "webmon/common/check_result.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>

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
//
// The writer decodes every message, so this is an event (SAX) parse with Boost.JSON's
// basic_parser: the fields v1 defines are caught as the parser meets them, in one pass, without a
// DOM to build and search. Each lands in a slot with its JSON type; the checks then run in a fixed
// order (the version first), so a message gets the same reason whatever order its fields came in.
// A repeated key keeps its last value, as Boost.JSON's DOM does.

struct Fail {
  std::string reason;
};

enum class Kind : unsigned char { missing, null, boolean, int64, uint64, number, string, object, array };

struct Slot {
  Kind kind = Kind::missing;
  bool boolean = false;
  std::int64_t int64 = 0;
  std::uint64_t uint64 = 0;
  double number = 0;
  std::string text;                 // strings, except times
  std::optional<SysMillis> time;    // time fields: the string parsed as it arrives
};

// The fields of v1: the message's own, then those of `timings`.
enum Field : int {
  f_schema_version, f_target, f_url, f_scheduled_at, f_started_at, f_http_response_time, f_http_status,
  f_regexp_match, f_ok, f_error, f_error_detail, f_timings, f_body_bytes, f_redirects, f_tls_cert_not_after,
  f_peer, f_checker, f_dns_cached,
  t_dns, t_connect, t_tls, t_ttfb, t_transfer, t_total,
  kFieldCount
};
constexpr int kNone = -1;

constexpr std::array<std::string_view, kFieldCount> kFieldNames = {
    "schema_version", "target", "url", "scheduled_at", "started_at", "http_response_time", "http_status",
    "regexp_match", "ok", "error", "error_detail", "timings", "body_bytes", "redirects", "tls_cert_not_after",
    "peer", "checker", "dns_cached",
    "dns", "connect", "tls", "ttfb", "transfer", "total"};

// The field named `key` among [first, last], or kNone.
int find_field(std::string_view key, int first, int last) {
  for (int f = first; f <= last; ++f) {
    if (kFieldNames[static_cast<std::size_t>(f)] == key) return f;
  }
  return kNone;
}

bool is_time_field(int f) { return f == f_scheduled_at || f == f_started_at || f == f_tls_cert_not_after; }

class Collector {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  std::array<Slot, kFieldCount> slots;
  bool root_is_object = false;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }

  bool on_object_begin(boost::system::error_code&) {
    if (depth_ == 0) {
      root_is_object = true;
    } else if (Slot* s = current()) {
      s->kind = Kind::object;
      if (depth_ == 1 && key_ == f_timings) {
        // A repeated "timings" replaces the earlier one as a whole.
        for (int f = t_dns; f <= t_total; ++f) slots[static_cast<std::size_t>(f)] = Slot{};
        in_timings_ = true;
      }
    }
    ++depth_;
    sub_key_ = kNone;
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    --depth_;
    if (depth_ == 1) in_timings_ = false;
    return true;
  }
  bool on_array_begin(boost::system::error_code&) {
    if (Slot* s = current()) s->kind = Kind::array;
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    --depth_;
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, boost::system::error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, boost::system::error_code&) {
    std::string_view key(s.data(), s.size());
    if (!part_.empty()) {
      part_.append(key);
      key = part_;
    }
    if (depth_ == 1) key_ = find_field(key, f_schema_version, f_dns_cached);
    else if (depth_ == 2 && in_timings_) sub_key_ = find_field(key, t_dns, t_total);
    part_.clear();
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, boost::system::error_code&) {
    if (current()) part_.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t, boost::system::error_code&) {
    if (Slot* slot = current()) {
      std::string_view text(s.data(), s.size());
      if (!part_.empty()) {
        part_.append(text);
        text = part_;
      }
      slot->kind = Kind::string;
      if (depth_ == 1 && is_time_field(key_)) slot->time = parse_rfc3339(text);
      else slot->text.assign(text);
      part_.clear();
    }
    return true;
  }

  bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t v, json::string_view, boost::system::error_code&) {
    if (Slot* s = current()) {
      s->kind = Kind::int64;
      s->int64 = v;
    }
    return true;
  }
  bool on_uint64(std::uint64_t v, json::string_view, boost::system::error_code&) {
    if (Slot* s = current()) {
      s->kind = Kind::uint64;
      s->uint64 = v;
    }
    return true;
  }
  bool on_double(double v, json::string_view, boost::system::error_code&) {
    if (Slot* s = current()) {
      s->kind = Kind::number;
      s->number = v;
    }
    return true;
  }
  bool on_bool(bool v, boost::system::error_code&) {
    if (Slot* s = current()) {
      s->kind = Kind::boolean;
      s->boolean = v;
    }
    return true;
  }
  bool on_null(boost::system::error_code&) {
    if (Slot* s = current()) s->kind = Kind::null;
    return true;
  }
  bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(json::string_view, boost::system::error_code&) { return true; }

 private:
  // The slot of the value the parser is at, if it is a field of v1.
  Slot* current() {
    int f = kNone;
    if (depth_ == 1) f = key_;
    else if (depth_ == 2 && in_timings_) f = sub_key_;
    return f == kNone ? nullptr : &slots[static_cast<std::size_t>(f)];
  }

  std::size_t depth_ = 0;
  int key_ = kNone;      // the field at depth 1 (the message's own)
  int sub_key_ = kNone;  // the field at depth 2 inside "timings"
  bool in_timings_ = false;
  std::string part_;     // a key or string that arrived in pieces
};

// The checks, on the collected slots.

// "field <name>: <what>", the reason a field is refused.
[[noreturn]] void fail(int f, std::string_view what) {
  throw Fail{"field " + std::string(kFieldNames[static_cast<std::size_t>(f)]) + ": " + std::string(what)};
}

[[noreturn]] void wrong_type(int f, std::string_view expected) { fail(f, "expected " + std::string(expected)); }

class Checks {
 public:
  explicit Checks(std::array<Slot, kFieldCount>& slots) : slots_(slots) {}

  Slot& at(int f) {
    auto& s = slots_[static_cast<std::size_t>(f)];
    if (s.kind == Kind::missing) throw Fail{"missing field " + std::string(kFieldNames[static_cast<std::size_t>(f)])};
    return s;
  }

  std::string string(int f) {
    auto& v = at(f);
    if (v.kind != Kind::string) wrong_type(f, "string");
    return std::move(v.text);
  }
  std::string string_or_null(int f) {
    auto& v = at(f);
    if (v.kind == Kind::null) return {};
    if (v.kind != Kind::string) wrong_type(f, "string or null");
    return std::move(v.text);
  }
  bool boolean(int f) {
    auto& v = at(f);
    if (v.kind != Kind::boolean) wrong_type(f, "boolean");
    return v.boolean;
  }
  // A field added to v1 after its first release: absent in older messages, read as null.
  std::optional<bool> added_boolean_or_null(int f) {
    if (slots_[static_cast<std::size_t>(f)].kind == Kind::missing) return std::nullopt;
    return boolean_or_null(f);
  }
  std::optional<bool> boolean_or_null(int f) {
    auto& v = at(f);
    if (v.kind == Kind::null) return std::nullopt;
    if (v.kind != Kind::boolean) wrong_type(f, "boolean or null");
    return v.boolean;
  }
  // An integer in [lo, hi]; JSON numbers written as integers only (200, not 200.0).
  std::int64_t integer(int f, std::int64_t lo, std::int64_t hi, std::string_view expected) {
    auto& v = at(f);
    std::int64_t n = 0;
    if (v.kind == Kind::int64) n = v.int64;
    else if (v.kind == Kind::uint64 && v.uint64 <= static_cast<std::uint64_t>(hi)) n = static_cast<std::int64_t>(v.uint64);
    else wrong_type(f, expected);
    if (n < lo || n > hi) {
      fail(f, std::to_string(n) + " out of range");
    }
    return n;
  }
  std::uint64_t count(int f) {
    auto& v = at(f);
    if (v.kind == Kind::uint64) return v.uint64;
    if (v.kind == Kind::int64) {
      if (v.int64 < 0) fail(f, "negative");
      return static_cast<std::uint64_t>(v.int64);
    }
    wrong_type(f, "non-negative integer");
  }
  double seconds(int f, std::string_view expected = "number") {
    auto& v = at(f);
    double d = 0;
    if (v.kind == Kind::number) d = v.number;
    else if (v.kind == Kind::int64) d = static_cast<double>(v.int64);
    else if (v.kind == Kind::uint64) d = static_cast<double>(v.uint64);
    else wrong_type(f, expected);
    if (!(d >= 0)) fail(f, "negative duration");
    return d;
  }
  std::optional<double> seconds_or_null(int f) {
    if (at(f).kind == Kind::null) return std::nullopt;
    return seconds(f, "number or null");
  }
  SysMillis time(int f, std::string_view expected = "RFC 3339 time string") {
    auto& v = at(f);
    if (v.kind != Kind::string) wrong_type(f, expected);
    if (!v.time) fail(f, "not an RFC 3339 time");
    return *v.time;
  }

 private:
  std::array<Slot, kFieldCount>& slots_;
};

CheckResult decode_slots(std::array<Slot, kFieldCount>& slots) {
  Checks c(slots);
  // The version first: a v2 message is refused as such, not for whatever field it changed.
  {
    const auto& v = c.at(f_schema_version);
    if (v.kind == Kind::int64) {
      if (v.int64 != kSchemaVersion) throw Fail{"unknown schema_version " + std::to_string(v.int64)};
    } else if (v.kind == Kind::uint64) {
      throw Fail{"unknown schema_version " + std::to_string(v.uint64)};
    } else {
      wrong_type(f_schema_version, "integer");
    }
  }
  CheckResult r;
  r.target = c.string(f_target);
  if (r.target.empty()) fail(f_target, "empty");
  r.url = c.string(f_url);
  r.scheduled_at = c.time(f_scheduled_at);
  r.started_at = c.time(f_started_at);
  r.http_response_time = c.seconds_or_null(f_http_response_time);
  if (c.at(f_http_status).kind != Kind::null) {
    r.http_status = static_cast<int>(c.integer(f_http_status, 0, 999, "integer or null"));
  }
  r.regexp_match = c.boolean_or_null(f_regexp_match);
  r.ok = c.boolean(f_ok);
  if (auto& v = c.at(f_error); v.kind != Kind::null) {
    if (v.kind != Kind::string) wrong_type(f_error, "string or null");
    const auto e = error_class_from_string(v.text);
    if (!e || *e == ErrorClass::none) fail(f_error, "unknown class \"" + v.text + "\"");
    r.error = *e;
  }
  r.error_detail = c.string_or_null(f_error_detail);
  if (c.at(f_timings).kind != Kind::object) wrong_type(f_timings, "object");
  r.timings.dns = c.seconds_or_null(t_dns);
  r.timings.connect = c.seconds_or_null(t_connect);
  r.timings.tls = c.seconds_or_null(t_tls);
  r.timings.ttfb = c.seconds_or_null(t_ttfb);
  r.timings.transfer = c.seconds_or_null(t_transfer);
  r.timings.total = c.seconds(t_total);
  r.body_bytes = c.count(f_body_bytes);
  r.redirects = static_cast<int>(c.integer(f_redirects, 0, std::numeric_limits<int>::max(), "non-negative integer"));
  if (c.at(f_tls_cert_not_after).kind != Kind::null) {
    r.tls_cert_not_after = floor<seconds>(c.time(f_tls_cert_not_after, "RFC 3339 time string or null"));
  }
  r.peer = c.string_or_null(f_peer);
  r.checker = c.string(f_checker);
  r.dns_cached = c.added_boolean_or_null(f_dns_cached);
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
  out += ",\"dns_cached\":";
  out += r.dns_cached ? (*r.dns_cached ? "true" : "false") : "null";
  out += '}';
  return out;
}

std::variant<CheckResult, DecodeError> decode_check_result(std::string_view text, std::size_t max_bytes) {
  if (text.size() > max_bytes) {
    return DecodeError{"message of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                       std::to_string(max_bytes) + " bytes"};
  }
  json::basic_parser<Collector> parser{json::parse_options{}};
  boost::system::error_code ec;
  const auto used = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && used != text.size()) ec = json::error::extra_data;
  if (ec) return DecodeError{"not JSON: " + ec.message()};
  auto& collected = parser.handler();
  if (!collected.root_is_object) return DecodeError{"not a JSON object"};
  try {
    return decode_slots(collected.slots);
  } catch (const Fail& f) {
    return DecodeError{f.reason};
  }
}

}  // namespace webmon
