// Text forms PostgreSQL reads fast and exactly: timestamps for COPY, array literals for the
// targets upsert, and one check as the fields of a COPY row in the column order of `checks`.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webmon/common/check_result.hpp"

namespace webmon::writer {

// "2024-05-01 12:00:00.123+00"
std::string format_pg_timestamp(SysMillis t);
// {"a","b\"c"}: every element quoted, `"` and `\` escaped.
std::string pg_text_array(const std::vector<std::string_view>& items);

// The columns of `checks` that the writer fills, in table order.
inline constexpr std::array<const char*, 21> kCheckColumns = {
    "scheduled_at", "started_at", "tls_cert_not_after", "target_id", "checker_id", "total_time",
    "http_response_time", "dns_time", "connect_time", "tls_time", "ttfb_time", "transfer_time",
    "body_bytes", "peer_port", "http_status", "redirects", "error", "ok", "regexp_match", "peer",
    "error_detail"};

// One check as the fields of a COPY row, in the column order of kCheckColumns. The fields are
// written into one buffer that the next row reuses, and handed to pqxx::stream_to as C strings
// (nullptr: NULL), so a row costs no allocation of its own. The result must have passed classify()
// (no NUL in its text).
class CopyRow {
 public:
  using Fields = std::array<const char*, kCheckColumns.size()>;

  const Fields& format(const CheckResult& r, int target_id, int checker_id);
  const Fields& fields() const { return fields_; }
  // Field i as text; nullopt for NULL.
  std::optional<std::string_view> operator[](std::size_t i) const;

 private:
  std::string buffer_;
  Fields fields_{};
};

// checks.error: NULL for none, else the id in error_classes.
std::optional<int> error_class_id(ErrorClass e);

}  // namespace webmon::writer
