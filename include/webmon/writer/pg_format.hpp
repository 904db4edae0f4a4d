// Text forms PostgreSQL reads fast and exactly: timestamps for COPY, array literals for the
// targets upsert, and one check as the fields of a COPY row into `checks`, built from the
// message's field table (webmon/common/message_fields.hpp).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webmon/common/check_result.hpp"
#include "webmon/common/message_fields.hpp"
#include "webmon/common/time_text.hpp"

namespace webmon::writer {

// "2024-05-01 12:00:00.123+00"
using webmon::format_pg_timestamp;
// {"a","b\"c"}: every element quoted, `"` and `\` escaped.
std::string pg_text_array(const std::vector<std::string_view>& items);

// The columns of `checks` that the writer fills, in the order of the message's fields.
inline constexpr std::array<const char*, v1::kColumnCount> kCheckColumns = v1::kColumns;

// One check as the fields of a COPY row, in the column order of kCheckColumns. The fields are
// written into one buffer that the next row reuses, and handed to pqxx::stream_to as C strings
// (nullptr: NULL), so a row costs no allocation of its own. The result must have passed classify()
// (no NUL in its text).
class CopyRow {
 public:
  using Fields = std::array<const char*, kCheckColumns.size()>;

  // `location_id`: the id of r.location in the table locations; none for no location.
  const Fields& format(const CheckResult& r, int target_id, int checker_id,
                       std::optional<int> location_id = std::nullopt);
  const Fields& fields() const { return fields_; }
  // Field i as text; nullopt for NULL.
  std::optional<std::string_view> operator[](std::size_t i) const;

 private:
  std::string buffer_;
  Fields fields_{};
};

// One check as a tuple of binary COPY (`COPY checks (kCheckColumns) FROM STDIN (FORMAT binary)`),
// appended to `out`: the same columns and values as CopyRow's text, in PostgreSQL's binary send
// format (network byte order; timestamptz as microseconds since 2000-01-01, real as float4, inet
// as family/bits/is_cidr/length/bytes). The server then skips parsing every field's text, which
// is a fifth of what a COPY row costs it. The result must have passed classify() (values in their
// columns' ranges, `peer` an IP address).
void append_copy_binary_row(std::string& out, const CheckResult& r, int target_id, int checker_id,
                            std::optional<int> location_id = std::nullopt);
// What a binary COPY stream starts with (signature, flags 0, no header extension) and ends with.
inline constexpr std::string_view kCopyBinaryHeader{"PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19};
inline constexpr std::string_view kCopyBinaryTrailer{"\377\377", 2};

// checks.error: NULL for none, else the id in error_classes.
std::optional<int> error_class_id(ErrorClass e);

}  // namespace webmon::writer
