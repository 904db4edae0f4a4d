// One probe's result, and its wire form: message schema v1 (docs/message-schema.md,
// docs/message-schema.v1.json). The checker encodes, the writer decodes; both live here so that
// the two cannot drift apart, and both are built from the field table in message_fields.hpp.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "webmon/common/time_text.hpp"

namespace webmon {

inline constexpr int kSchemaVersion = 1;
inline constexpr std::string_view kSchemaHeaderName = "schema";
inline constexpr std::string_view kSchemaHeaderValue = "webmon.check.v1";

// Why a probe failed. `none`: the whole response (status line, headers, body up to the cap)
// arrived within the deadline, whatever the status was.
enum class ErrorClass { none, dns, connect, tls, timeout, protocol, too_many_redirects };

// The one mapping of the classes: their names in message v1 and their ids in the table
// error_classes (sql/001_init.sql; a unit test holds the two together). Every class but none.
struct ErrorClassName {
  ErrorClass value;
  std::string_view name;
  int id;
};
inline constexpr std::array<ErrorClassName, 6> kErrorClasses = {{
    {ErrorClass::dns, "dns", 1},
    {ErrorClass::connect, "connect", 2},
    {ErrorClass::tls, "tls", 3},
    {ErrorClass::timeout, "timeout", 4},
    {ErrorClass::protocol, "protocol", 5},
    {ErrorClass::too_many_redirects, "too_many_redirects", 6},
}};

std::string_view to_string(ErrorClass e) noexcept;                   // "dns", ...; "" for none
std::optional<ErrorClass> error_class_from_string(std::string_view);  // inverse; nullopt if unknown

// Seconds spent in each phase; a phase that was not reached is null.
struct Timings {
  std::optional<double> dns;
  std::optional<double> connect;
  std::optional<double> tls;
  std::optional<double> ttfb;      // request written -> first byte of the response
  std::optional<double> transfer;  // first byte -> body read (up to the cap)
  double total = 0;                // the whole probe
  bool operator==(const Timings&) const = default;
};

struct CheckResult {
  std::string target;                         // target name (also the Kafka key)
  std::string url;                            // the configured URL
  SysMillis scheduled_at{};                   // when the probe was due
  SysMillis started_at{};                     // when it really started
  std::optional<double> http_response_time;   // seconds from probe start to headers in
  std::optional<int> http_status;             // final status, after redirects
  std::optional<bool> regexp_match;           // null without a regexp or without a body
  bool ok = false;
  ErrorClass error = ErrorClass::none;
  std::string error_detail;                   // for a person; empty encodes as null
  Timings timings;
  std::uint64_t body_bytes = 0;
  int redirects = 0;
  std::optional<std::chrono::sys_seconds> tls_cert_not_after;  // https only: leaf cert expiry
  std::string peer;                           // address connected to ("ip:port"), empty: null
  std::string checker;                        // instance id
  // Whether the name was answered from the checker's DNS cache (every lookup of the probe, over
  // redirects); null when no lookup was made (an IP literal, or a probe that ended before one).
  // Added to v1 after its first release: older messages lack it.
  std::optional<bool> dns_cached;
  // Where the checker probes from (its `checker.location`); empty: no location. Added to v1 after
  // its first release, and written only when set: absent, null and "" all read as empty.
  std::string location;

  bool operator==(const CheckResult&) const = default;
};

// Times are written and read by format_rfc3339_ms() and parse_rfc3339() (time_text.hpp).

// The JSON value of a v1 message.
std::string encode_check_result(const CheckResult& r);
// The same into `out` (replacing what it held), so that a caller can reuse one buffer.
void encode_check_result(const CheckResult& r, std::string& out);

// Why a message could not be decoded; it goes to dead_letters with this reason.
struct DecodeError {
  std::string reason;  // e.g. "not JSON: ...", "unknown schema_version 2", "field http_status: expected integer"
};

// Decodes a message value; unknown fields are ignored (v1 may grow), a missing required field or a
// wrong type is an error. Messages over max_bytes are refused without parsing.
std::variant<CheckResult, DecodeError> decode_check_result(std::string_view json,
                                                           std::size_t max_bytes = 1024 * 1024);

}  // namespace webmon
