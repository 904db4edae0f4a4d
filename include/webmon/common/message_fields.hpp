// Message schema v1 declared once: each field's JSON name and type, whether it may be null, where
// PostgreSQL stores it, and the CheckResult member that holds it. The encoder and the decoder
// (check_result.cpp), the storability checks (writer/batch.cpp) and the COPY row
// (writer/pg_format.cpp) are built from this table at compile time; a unit test holds
// docs/message-schema.v1.json and sql/ to it. Adding a field to v1 is a CheckResult member, one
// row at the end of kFields, and a migration for its column.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <tuple>
#include <utility>

#include "webmon/common/check_result.hpp"

namespace webmon::v1 {

// The field's JSON type, as the decoder checks it.
enum class Json : unsigned char {
  version,      // integer, kSchemaVersion and nothing else
  name,         // non-empty string
  string,
  time,         // RFC 3339 date-time string
  seconds,      // number >= 0
  status,       // integer 0..999
  count,        // integer >= 0 (bounded by its member's type)
  boolean,
  error_class,  // one of kErrorClasses' names
  object,       // holds the fields named "<this name>.<key>", listed right after it
};

enum class Null : unsigned char {
  no,     // always present, never null
  yes,    // always present, null when it does not apply (an empty string member encodes as null)
  added,  // added to v1 after its first release: null, or absent in older messages (read as null)
  // Added to v1 after its first release, and written only when it has a value (a string member:
  // non-empty), so that a message without one is the same bytes as before the field existed.
  // Absent, null and "" all read as none. Only at the top level, never first.
  when_set,
};

// Whether older (or value-less) messages may lack the field, so that the JSON Schema cannot
// require it.
constexpr bool may_be_absent(Null n) { return n == Null::added || n == Null::when_set; }

// How the value is stored: the type of its column in `checks`, which says what PostgreSQL accepts.
enum class Sql : unsigned char {
  none,         // not stored (schema_version: implied by the migrations; timings: its fields are)
  timestamptz,  // years 1 to 9999
  real,         // float4 seconds: finite, >= 0, < 1e9
  smallint,     // 0 to 32767
  integer,      // 0 to 2^31 - 1
  boolean,
  text,         // no NUL character
  inet,         // peer: the IP address in the column, its port in the second column (integer)
  target_id,    // integer id of targets.name (text)
  target_url,   // targets.url (text), the latest one seen; no column in checks
  checker_id,   // integer id of checkers.name (text)
  location_id,  // smallint id of locations.name (text), NULL for none (an empty string)
  error_id,     // smallint id in error_classes, NULL for none
};

// Everything about a field but its member, for code that iterates at run time (tests, docs).
struct FieldInfo {
  std::string_view name;  // JSON name; "timings.dns" is the key "dns" inside the object "timings"
  Json json;
  Null null;
  Sql sql;
  std::array<const char*, 2> columns;  // its columns in `checks` ({nullptr, nullptr}: none)
  bool in_view;                        // a column of the view check_results, under its JSON name

  // The JSON key inside its object: "dns" for "timings.dns".
  constexpr std::string_view key() const { return name.substr(name.rfind('.') + 1); }
  // The object holding it ("timings"), or "" at the top level.
  constexpr std::string_view parent() const {
    const auto dot = name.rfind('.');
    return dot == std::string_view::npos ? std::string_view() : name.substr(0, dot);
  }
};

// A member of CheckResult, as a path of member pointers: Member<&CheckResult::timings, &Timings::dns>.
template <auto... Path>
struct Member {
  template <typename R>
  static constexpr auto& of(R& r) noexcept {
    return (r.*....*Path);
  }
};

template <typename M>
struct Field : FieldInfo {
  M member;
};

template <auto... Path>
inline constexpr Member<Path...> at{};

template <typename M>
constexpr Field<M> field(std::string_view name, Json json, Null null, Sql sql, std::array<const char*, 2> columns,
                         bool in_view, M member) {
  return {{name, json, null, sql, columns, in_view}, member};
}

namespace detail {
using R = CheckResult;
using T = Timings;
constexpr std::array<const char*, 2> kNoColumn{nullptr, nullptr};

// The fields of v1 in the order they are encoded and checked. New fields go at the end (a view
// column that is added goes last there too).
inline constexpr auto kFields = std::tuple{
    //    JSON name             JSON               null        storage          columns in checks             view
    field("schema_version",     Json::version,     Null::no,   Sql::none,        kNoColumn,                   false, at<>),
    field("target",             Json::name,        Null::no,   Sql::target_id,   {"target_id"},               true,  at<&R::target>),
    field("url",                Json::string,      Null::no,   Sql::target_url,  kNoColumn,                   true,  at<&R::url>),
    field("scheduled_at",       Json::time,        Null::no,   Sql::timestamptz, {"scheduled_at"},            true,  at<&R::scheduled_at>),
    field("started_at",         Json::time,        Null::no,   Sql::timestamptz, {"started_at"},              true,  at<&R::started_at>),
    field("http_response_time", Json::seconds,     Null::yes,  Sql::real,        {"http_response_time"},      true,  at<&R::http_response_time>),
    field("http_status",        Json::status,      Null::yes,  Sql::smallint,    {"http_status"},             true,  at<&R::http_status>),
    field("regexp_match",       Json::boolean,     Null::yes,  Sql::boolean,     {"regexp_match"},            true,  at<&R::regexp_match>),
    field("ok",                 Json::boolean,     Null::no,   Sql::boolean,     {"ok"},                      true,  at<&R::ok>),
    field("error",              Json::error_class, Null::yes,  Sql::error_id,    {"error"},                   true,  at<&R::error>),
    field("error_detail",       Json::string,      Null::yes,  Sql::text,        {"error_detail"},            true,  at<&R::error_detail>),
    field("timings",            Json::object,      Null::no,   Sql::none,        kNoColumn,                   false, at<&R::timings>),
    field("timings.dns",        Json::seconds,     Null::yes,  Sql::real,        {"dns_time"},                false, at<&R::timings, &T::dns>),
    field("timings.connect",    Json::seconds,     Null::yes,  Sql::real,        {"connect_time"},            false, at<&R::timings, &T::connect>),
    field("timings.tls",        Json::seconds,     Null::yes,  Sql::real,        {"tls_time"},                false, at<&R::timings, &T::tls>),
    field("timings.ttfb",       Json::seconds,     Null::yes,  Sql::real,        {"ttfb_time"},               false, at<&R::timings, &T::ttfb>),
    field("timings.transfer",   Json::seconds,     Null::yes,  Sql::real,        {"transfer_time"},           false, at<&R::timings, &T::transfer>),
    field("timings.total",      Json::seconds,     Null::no,   Sql::real,        {"total_time"},              false, at<&R::timings, &T::total>),
    field("body_bytes",         Json::count,       Null::no,   Sql::integer,     {"body_bytes"},              false, at<&R::body_bytes>),
    field("redirects",          Json::count,       Null::no,   Sql::smallint,    {"redirects"},               false, at<&R::redirects>),
    field("tls_cert_not_after", Json::time,        Null::yes,  Sql::timestamptz, {"tls_cert_not_after"},      false, at<&R::tls_cert_not_after>),
    field("peer",               Json::string,      Null::yes,  Sql::inet,        {"peer", "peer_port"},       false, at<&R::peer>),
    field("checker",            Json::string,      Null::no,   Sql::checker_id,  {"checker_id"},              false, at<&R::checker>),
    field("dns_cached",         Json::boolean,     Null::added, Sql::boolean,    {"dns_cached"},              true,  at<&R::dns_cached>),
    field("location",           Json::string,      Null::when_set, Sql::location_id, {"location_id"},         true,  at<&R::location>),
};
}  // namespace detail
using detail::kFields;

inline constexpr std::size_t kFieldCount = std::tuple_size_v<decltype(kFields)>;

// Calls f(std::integral_constant<std::size_t, I>{}) for every field in order, so that the callee
// can take `constexpr auto& field = std::get<I>(kFields)` and branch with `if constexpr`.
template <typename F>
constexpr void for_each_field(F&& f) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (f(std::integral_constant<std::size_t, I>{}), ...);
  }(std::make_index_sequence<kFieldCount>{});
}

inline constexpr std::array<FieldInfo, kFieldCount> kFieldInfo =
    std::apply([](const auto&... f) { return std::array<FieldInfo, kFieldCount>{static_cast<const FieldInfo&>(f)...}; },
               kFields);

// The index of the field named `name`, or kFieldCount.
constexpr std::size_t field_index(std::string_view name) {
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    if (kFieldInfo[i].name == name) return i;
  }
  return kFieldCount;
}

// The columns of `checks` a COPY fills, in the order of the fields.
inline constexpr std::size_t kColumnCount = [] {
  std::size_t n = 0;
  for (const auto& f : kFieldInfo) n += (f.columns[0] != nullptr) + (f.columns[1] != nullptr);
  return n;
}();

inline constexpr std::array<const char*, kColumnCount> kColumns = [] {
  std::array<const char*, kColumnCount> out{};
  std::size_t n = 0;
  for (const auto& f : kFieldInfo) {
    for (const char* c : f.columns) {
      if (c) out[n++] = c;
    }
  }
  return out;
}();

// Where field i's first column is in kColumns (its second, if any, follows); kColumnCount: none.
inline constexpr std::array<std::size_t, kFieldCount> kFirstColumn = [] {
  std::array<std::size_t, kFieldCount> out{};
  std::size_t n = 0;
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    out[i] = kFieldInfo[i].columns[0] ? n : kColumnCount;
    n += (kFieldInfo[i].columns[0] != nullptr) + (kFieldInfo[i].columns[1] != nullptr);
  }
  return out;
}();

}  // namespace webmon::v1
