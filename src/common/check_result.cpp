#include "webmon/common/check_result.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <type_traits>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>

#include "webmon/common/hex.hpp"
#include "webmon/common/message_fields.hpp"

namespace webmon {
namespace {

namespace json = boost::json;
using namespace std::chrono;
using v1::Json;
using v1::kFieldCount;
using v1::kFieldInfo;
using v1::Null;

// ---------------------------------------------------------------------------------------------
// The field table (message_fields.hpp) as the codec uses it, worked out at compile time.

constexpr int kNone = -1;

// Every field is at the top level or inside an object field at the top level, listed right after
// that object (with its other fields).
static_assert([] {
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    const auto parent = kFieldInfo[i].parent();
    if (parent.empty()) continue;
    if (parent.find('.') != std::string_view::npos) return false;
    if (v1::field_index(parent) == kFieldCount || kFieldInfo[v1::field_index(parent)].json != Json::object) return false;
    if (kFieldInfo[i - 1].name != parent && kFieldInfo[i - 1].parent() != parent) return false;
  }
  return kFieldInfo[0].json == Json::version;  // judged first, so written first
}());

// A field written only when set is left out whole, its key with it: its key text must start with
// the comma, so it is never the first of its level, and it sits at the top level.
static_assert([] {
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    if (kFieldInfo[i].null == Null::when_set && (i == 0 || !kFieldInfo[i].parent().empty())) return false;
  }
  return true;
}());

// The object field each field is in, or kNone.
constexpr std::array<int, kFieldCount> kParent = [] {
  std::array<int, kFieldCount> out{};
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    out[i] = kFieldInfo[i].parent().empty() ? kNone : static_cast<int>(v1::field_index(kFieldInfo[i].parent()));
  }
  return out;
}();

// Each field's JSON key ("dns" for "timings.dns").
constexpr std::array<std::string_view, kFieldCount> kKey = [] {
  std::array<std::string_view, kFieldCount> out{};
  for (std::size_t i = 0; i < kFieldCount; ++i) out[i] = kFieldInfo[i].key();
  return out;
}();

// The top-level fields, which the parser looks keys up in (the fields of an object follow it).
constexpr std::size_t kTopCount = [] {
  std::size_t n = 0;
  for (int p : kParent) n += p == kNone;
  return n;
}();
constexpr std::array<int, kTopCount> kTop = [] {
  std::array<int, kTopCount> out{};
  std::size_t n = 0;
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    if (kParent[i] == kNone) out[n++] = static_cast<int>(i);
  }
  return out;
}();

// The field after each one at its own level (past an object's fields); kFieldCount: none.
constexpr std::array<int, kFieldCount> kNextSibling = [] {
  std::array<int, kFieldCount> out{};
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    std::size_t j = i + 1;
    while (j < kFieldCount && kParent[j] != kParent[i]) ++j;
    out[i] = static_cast<int>(j);
  }
  return out;
}();

constexpr std::array<std::string_view, kTopCount> kTopKey = [] {
  std::array<std::string_view, kTopCount> out{};
  for (std::size_t n = 0; n < kTopCount; ++n) out[n] = kKey[static_cast<std::size_t>(kTop[n])];
  return out;
}();

// `,"key":`, or `"key":` for the first field of its object: what the encoder writes before a value.
struct KeyText {
  std::array<char, 40> text{};
  std::size_t size = 0;
};
constexpr std::array<KeyText, kFieldCount> kKeyText = [] {
  std::array<KeyText, kFieldCount> out{};
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    auto& k = out[i];
    const bool first = i == 0 || (kParent[i] != kNone && kParent[i] == static_cast<int>(i) - 1);
    if (!first) k.text[k.size++] = ',';
    k.text[k.size++] = '"';
    for (char c : kFieldInfo[i].key()) k.text[k.size++] = c;
    k.text[k.size++] = '"';
    k.text[k.size++] = ':';
  }
  return out;
}();

// Whether the object a field is in ends after it.
constexpr bool closes_object(std::size_t i) {
  return kParent[i] != kNone && (i + 1 == kFieldCount || kParent[i + 1] != kParent[i]);
}

// ---------------------------------------------------------------------------------------------
// Encoding. Written straight into one string rather than through a json::value: it runs for every
// probe, and Boost.JSON's serializer prints 0.25 as 2.5E-1, which people reading the topic with
// kcat should not have to decode. Doubles use std::to_chars (shortest text that reads back
// exactly); strings are escaped and made valid UTF-8 (error details may quote a server's bytes).

// Bytes written as they are: printable ASCII but the quote and the backslash.
constexpr bool plain_byte(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

void append_utf8_escaped(std::string& out, std::string_view s) {
  out += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // A run of plain bytes (names, URLs, addresses: usually the whole string) in one append.
    const auto* run = p;
    while (run < end && plain_byte(*run)) ++run;
    if (run != p) {
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(run - p));
      p = run;
      continue;
    }
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
            append_hex_byte(out, c);
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

// One value of each member type, chosen by overload; `nullable`: an empty string is null.
void append_value(std::string& out, const std::string& s, bool nullable) {
  if (nullable && s.empty()) out += "null";
  else append_utf8_escaped(out, s);
}

void append_value(std::string& out, double v, bool) {
  if (!std::isfinite(v)) v = 0;  // JSON has no NaN/Inf; a duration is never either
  std::array<char, 32> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

template <typename Int>
  requires std::is_integral_v<Int>
void append_value(std::string& out, Int v, bool) {
  if constexpr (std::is_same_v<Int, bool>) {
    out += v ? "true" : "false";
  } else {
    std::array<char, 24> buf{};
    const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    out.append(buf.data(), r.ptr);
  }
}

template <typename Duration>
void append_value(std::string& out, sys_time<Duration> t, bool) {
  char buf[2 + kMaxTimestampText];
  char* p = buf;
  *p++ = '"';
  p = write_rfc3339_ms(p, time_point_cast<milliseconds>(t));
  *p++ = '"';
  out.append(buf, p);
}

void append_value(std::string& out, ErrorClass e, bool) {
  if (e == ErrorClass::none) {
    out += "null";
  } else {
    out += '"';
    out += to_string(e);  // names need no escaping
    out += '"';
  }
}

template <typename V>
void append_value(std::string& out, const std::optional<V>& v, bool nullable) {
  if (v) append_value(out, *v, nullable);
  else out += "null";
}

template <std::size_t I>
void encode_field(std::string& out, const CheckResult& r) {
  constexpr auto& f = std::get<I>(v1::kFields);
  constexpr auto& key = kKeyText[I];
  [[maybe_unused]] const auto& m = f.member.of(r);
  using Value = std::remove_cvref_t<decltype(m)>;
  if constexpr (f.null == Null::when_set) {
    static_assert(std::is_same_v<Value, std::string>, "when_set is for strings, empty = not set");
    if (m.empty()) return;
  }
  out.append(key.text.data(), key.size);
  if constexpr (f.json == Json::version) append_value(out, kSchemaVersion, false);
  else if constexpr (f.json == Json::object) out += '{';
  else if constexpr (f.json == Json::count && std::is_signed_v<Value>) append_value(out, m < 0 ? Value{0} : m, false);
  else append_value(out, m, f.null != Null::no);
  if constexpr (closes_object(I)) out += '}';
}

// ---------------------------------------------------------------------------------------------
// Decoding: strict about the types of the fields v1 defines, blind to any other field.
//
// The writer decodes every message, so this is an event (SAX) parse with Boost.JSON's
// basic_parser: the fields v1 defines are caught as the parser meets them, in one pass, without a
// DOM to build and search. Each lands in a slot with its JSON type; the checks then run in the
// table's order (the version first), so a message gets the same reason whatever order its fields
// came in. A repeated key keeps its last value, as Boost.JSON's DOM does.

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

using Slots = std::array<Slot, kFieldCount>;

// The top-level field named `key`, or kNone.
int find_top(std::string_view key) {
  for (std::size_t n = 0; n < kTopCount; ++n) {
    if (kTopKey[n] == key) return kTop[n];
  }
  return kNone;
}

// The field named `key` inside the object field `object`, or kNone.
int find_child(std::string_view key, int object) {
  for (int f = object + 1; f < static_cast<int>(kFieldCount) && kParent[static_cast<std::size_t>(f)] == object; ++f) {
    if (kKey[static_cast<std::size_t>(f)] == key) return f;
  }
  return kNone;
}

// Whether field `f` (maybe past the end) is named `key` inside `parent`.
bool is_key(int f, std::string_view key, int parent) {
  return f < static_cast<int>(kFieldCount) && kParent[static_cast<std::size_t>(f)] == parent &&
         kKey[static_cast<std::size_t>(f)] == key;
}

bool is_time_field(int f) { return f != kNone && kFieldInfo[static_cast<std::size_t>(f)].json == Json::time; }
bool is_object_field(int f) { return f != kNone && kFieldInfo[static_cast<std::size_t>(f)].json == Json::object; }

class Collector {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  Slots slots;
  bool root_is_object = false;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }

  bool on_object_begin(boost::system::error_code&) {
    if (depth_ == 0) {
      root_is_object = true;
    } else if (Slot* s = current()) {
      s->kind = Kind::object;
      if (depth_ == 1 && is_object_field(key_)) {
        // A repeated object (e.g. "timings") replaces the earlier one as a whole.
        for (std::size_t f = 0; f < kFieldCount; ++f) {
          if (kParent[f] == key_) slots[f] = Slot{};
        }
        object_ = key_;
        next_sub_key_ = key_ + 1;
      }
    }
    ++depth_;
    sub_key_ = kNone;
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    --depth_;
    if (depth_ == 1) object_ = kNone;
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
    // Messages list the fields in the table's order (the encoder writes them so): the field after
    // the previous one is tried first, which makes a key one comparison instead of a search.
    if (depth_ == 1) {
      key_ = is_key(next_key_, key, kNone) ? next_key_ : find_top(key);
      if (key_ != kNone) next_key_ = kNextSibling[static_cast<std::size_t>(key_)];
    } else if (depth_ == 2 && object_ != kNone) {
      sub_key_ = is_key(next_sub_key_, key, object_) ? next_sub_key_ : find_child(key, object_);
      if (sub_key_ != kNone) next_sub_key_ = sub_key_ + 1;
    }
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
      if (is_time_field(current_field())) slot->time = parse_rfc3339(text);
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
  // The field of the value the parser is at, if it is a field of v1.
  int current_field() const {
    if (depth_ == 1) return key_;
    if (depth_ == 2 && object_ != kNone) return sub_key_;
    return kNone;
  }
  Slot* current() {
    const int f = current_field();
    return f == kNone ? nullptr : &slots[static_cast<std::size_t>(f)];
  }

  std::size_t depth_ = 0;
  int key_ = kNone;      // the field at depth 1 (the message's own)
  int sub_key_ = kNone;  // the field at depth 2 inside object_
  int object_ = kNone;   // the object field the parser is inside, if any
  int next_key_ = 0;     // the field expected next at depth 1
  int next_sub_key_ = kNone;  // and at depth 2
  std::string part_;     // a key or string that arrived in pieces
};

// The checks, on the collected slots.

// "field <key>: <what>", the reason a field is refused.
[[noreturn]] void fail(int f, std::string_view what) {
  throw Fail{"field " + std::string(kKey[static_cast<std::size_t>(f)]) + ": " + std::string(what)};
}

[[noreturn]] void wrong_type(int f, std::string_view expected) { fail(f, "expected " + std::string(expected)); }

class Checks {
 public:
  explicit Checks(Slots& slots) : slots_(slots) {}

  bool missing(int f) const { return slots_[static_cast<std::size_t>(f)].kind == Kind::missing; }

  Slot& at(int f) {
    auto& s = slots_[static_cast<std::size_t>(f)];
    if (s.kind == Kind::missing) throw Fail{"missing field " + std::string(kKey[static_cast<std::size_t>(f)])};
    return s;
  }

  std::string string(int f, std::string_view expected) {
    auto& v = at(f);
    if (v.kind != Kind::string) wrong_type(f, expected);
    return std::move(v.text);
  }
  bool boolean(int f, std::string_view expected) {
    auto& v = at(f);
    if (v.kind != Kind::boolean) wrong_type(f, expected);
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
  std::uint64_t count(int f, std::string_view expected) {
    auto& v = at(f);
    if (v.kind == Kind::uint64) return v.uint64;
    if (v.kind == Kind::int64) {
      if (v.int64 < 0) fail(f, "negative");
      return static_cast<std::uint64_t>(v.int64);
    }
    wrong_type(f, expected);
  }
  double seconds(int f, std::string_view expected) {
    auto& v = at(f);
    double d = 0;
    if (v.kind == Kind::number) d = v.number;
    else if (v.kind == Kind::int64) d = static_cast<double>(v.int64);
    else if (v.kind == Kind::uint64) d = static_cast<double>(v.uint64);
    else wrong_type(f, expected);
    if (!(d >= 0)) fail(f, "negative duration");
    return d;
  }
  SysMillis time(int f, std::string_view expected) {
    auto& v = at(f);
    if (v.kind != Kind::string) wrong_type(f, expected);
    if (!v.time) fail(f, "not an RFC 3339 time");
    return *v.time;
  }

 private:
  Slots& slots_;
};

// What a refusal for the wrong type says it expected.
constexpr std::string_view expected_text(Json json) {
  switch (json) {
    case Json::version: return "integer";
    case Json::name:
    case Json::string:
    case Json::error_class: return "string";
    case Json::time: return "RFC 3339 time string";
    case Json::seconds: return "number";
    case Json::status: return "integer";
    case Json::count: return "non-negative integer";
    case Json::boolean: return "boolean";
    case Json::object: return "object";
  }
  return "";
}

template <std::size_t N>
struct Text {
  std::array<char, N> text{};
  std::size_t size = 0;
  constexpr operator std::string_view() const { return {text.data(), size}; }
};
// "number", or "number or null" for a field that may be null.
template <std::size_t I>
constexpr Text<40> kExpected = [] {
  Text<40> out;
  const auto& f = kFieldInfo[I];
  for (char c : expected_text(f.json)) out.text[out.size++] = c;
  if (f.null != Null::no) {
    for (char c : std::string_view(" or null")) out.text[out.size++] = c;
  }
  return out;
}();

template <typename V>
struct Unwrap {
  using type = V;
};
template <typename V>
struct Unwrap<std::optional<V>> {
  using type = V;
};

template <std::size_t I>
void decode_field(Checks& c, CheckResult& r) {
  constexpr auto& f = std::get<I>(v1::kFields);
  constexpr int i = static_cast<int>(I);
  constexpr std::string_view expected = kExpected<I>;
  if constexpr (f.json == Json::version) {
    return;  // judged before every other field
  } else {
    [[maybe_unused]] auto& m = f.member.of(r);
    using Value = typename Unwrap<std::remove_cvref_t<decltype(m)>>::type;
    if constexpr (v1::may_be_absent(f.null)) {
      if (c.missing(i)) return;
    }
    if constexpr (f.null != Null::no) {
      if (c.at(i).kind == Kind::null) return;  // the member's default: nullopt, "" or none
    }
    if constexpr (f.json == Json::name || f.json == Json::string) {
      m = c.string(i, expected);
      if (f.json == Json::name && m.empty()) fail(i, "empty");
    } else if constexpr (f.json == Json::time) {
      m = floor<typename Value::duration>(c.time(i, expected));
    } else if constexpr (f.json == Json::seconds) {
      m = c.seconds(i, expected);
    } else if constexpr (f.json == Json::status) {
      m = static_cast<Value>(c.integer(i, 0, 999, expected));
    } else if constexpr (f.json == Json::count && std::is_unsigned_v<Value>) {
      m = c.count(i, expected);
    } else if constexpr (f.json == Json::count) {
      m = static_cast<Value>(c.integer(i, 0, std::numeric_limits<Value>::max(), expected));
    } else if constexpr (f.json == Json::boolean) {
      m = c.boolean(i, expected);
    } else if constexpr (f.json == Json::error_class) {
      auto& v = c.at(i);
      if (v.kind != Kind::string) wrong_type(i, expected);
      const auto e = error_class_from_string(v.text);
      if (!e || *e == ErrorClass::none) fail(i, "unknown class \"" + v.text + "\"");
      m = *e;
    } else if constexpr (f.json == Json::object) {
      if (c.at(i).kind != Kind::object) wrong_type(i, expected);
    }
  }
}

CheckResult decode_slots(Slots& slots) {
  Checks c(slots);
  // The version first: a v2 message is refused as such, not for whatever field it changed.
  {
    const auto& v = c.at(0);
    if (v.kind == Kind::int64) {
      if (v.int64 != kSchemaVersion) throw Fail{"unknown schema_version " + std::to_string(v.int64)};
    } else if (v.kind == Kind::uint64) {
      throw Fail{"unknown schema_version " + std::to_string(v.uint64)};
    } else {
      wrong_type(0, kExpected<0>);
    }
  }
  CheckResult r;
  v1::for_each_field([&](auto i) { decode_field<i>(c, r); });
  return r;
}

}  // namespace

std::string_view to_string(ErrorClass e) noexcept {
  for (const auto& c : kErrorClasses) {
    if (c.value == e) return c.name;
  }
  return "";
}

std::optional<ErrorClass> error_class_from_string(std::string_view s) {
  for (const auto& c : kErrorClasses) {
    if (c.name == s) return c.value;
  }
  return std::nullopt;
}

std::string encode_check_result(const CheckResult& r) {
  std::string out;
  encode_check_result(r, out);
  return out;
}

void encode_check_result(const CheckResult& r, std::string& out) {
  out.clear();
  out.reserve(512 + r.target.size() + r.url.size() + r.error_detail.size() + r.location.size());
  out += '{';
  v1::for_each_field([&](auto i) { encode_field<i>(out, r); });
  out += '}';
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
