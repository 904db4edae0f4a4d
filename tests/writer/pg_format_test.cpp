// Unit: the text the writer hands PostgreSQL (COPY fields, array literals, timestamps).
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "webmon/writer/pg_format.hpp"

namespace webmon::writer {
namespace {

TEST(PgFormat, TimestampIsUtcWithMilliseconds) {
  EXPECT_EQ(format_pg_timestamp(SysMillis(std::chrono::milliseconds(1'714'564'800'123))),
            "2024-05-01 12:00:00.123+00");
  EXPECT_EQ(format_pg_timestamp(SysMillis(std::chrono::milliseconds(0))), "1970-01-01 00:00:00.000+00");
  const auto t = parse_rfc3339("2024-02-29T23:59:59.999Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_pg_timestamp(*t), "2024-02-29 23:59:59.999+00");
}

TEST(PgFormat, ArrayLiteralQuotesAndEscapes) {
  EXPECT_EQ(pg_text_array({}), "{}");
  EXPECT_EQ(pg_text_array({"a", "b c", "q\"u\\o", "NULL", ""}), R"({"a","b c","q\"u\\o","NULL",""})");
}

TEST(PgFormat, CopyRowFollowsTheColumns) {
  CheckResult r;
  r.target = "t";
  r.url = "http://t/";
  r.scheduled_at = SysMillis(std::chrono::milliseconds(1'714'564'800'000));
  r.started_at = r.scheduled_at;
  r.timings.total = 0.25;
  r.error = ErrorClass::timeout;
  r.error_detail = "deadline of 10s";
  r.peer = "[::1]:8080";
  r.redirects = 2;
  CopyRow row;
  row.format(r, 7, 3);
  auto col = [&](std::string_view name) {
    for (std::size_t i = 0; i < kCheckColumns.size(); ++i) {
      if (kCheckColumns[i] == name) return row[i];
    }
    ADD_FAILURE() << name;
    return std::optional<std::string_view>();
  };
  EXPECT_EQ(col("scheduled_at"), "2024-05-01 12:00:00.000+00");
  EXPECT_EQ(col("target_id"), "7");
  EXPECT_EQ(col("checker_id"), "3");
  EXPECT_EQ(col("total_time"), "0.25");
  EXPECT_EQ(col("http_status"), std::nullopt);
  EXPECT_EQ(col("http_response_time"), std::nullopt);
  EXPECT_EQ(col("error"), "4");
  EXPECT_EQ(col("error_detail"), "deadline of 10s");
  EXPECT_EQ(col("ok"), "f");
  EXPECT_EQ(col("regexp_match"), std::nullopt);
  EXPECT_EQ(col("peer"), "::1");
  EXPECT_EQ(col("peer_port"), "8080");
  EXPECT_EQ(col("redirects"), "2");
  EXPECT_EQ(col("tls_cert_not_after"), std::nullopt);
}

TEST(PgFormat, DnsCachedIsItsColumnAndNullWhenTheMessageHadNone) {
  CheckResult r;  // the ids stand for target and checker here
  CopyRow row;
  auto col = [&](std::string_view name) {
    const auto* it = std::find_if(kCheckColumns.begin(), kCheckColumns.end(),
                                  [&](const char* c) { return c == name; });
    EXPECT_NE(it, kCheckColumns.end()) << name;
    return row[static_cast<std::size_t>(it - kCheckColumns.begin())];
  };
  row.format(r, 1, 1);
  EXPECT_EQ(col("dns_cached"), std::nullopt);
  r.dns_cached = true;
  row.format(r, 1, 1);
  EXPECT_EQ(col("dns_cached"), "t");
  r.dns_cached = false;
  row.format(r, 1, 1);
  EXPECT_EQ(col("dns_cached"), "f");
  // Every column is named once: a COPY with a column twice would be refused.
  std::set<std::string_view> names(kCheckColumns.begin(), kCheckColumns.end());
  EXPECT_EQ(names.size(), kCheckColumns.size());
}

TEST(PgFormat, LocationIsItsIdAndNullWithoutOne) {
  CheckResult r;
  CopyRow row;
  auto col = [&](std::string_view name) {
    const auto* it = std::find_if(kCheckColumns.begin(), kCheckColumns.end(),
                                  [&](const char* c) { return c == name; });
    EXPECT_NE(it, kCheckColumns.end()) << name;
    return row[static_cast<std::size_t>(it - kCheckColumns.begin())];
  };
  row.format(r, 1, 1);
  EXPECT_EQ(col("location_id"), std::nullopt);
  r.location = "eu-west";
  row.format(r, 1, 1, 12);
  EXPECT_EQ(col("location_id"), "12");
  EXPECT_EQ(col("checker_id"), "1");
  // The buffer is reused: the next row without a location is NULL again.
  r.location.clear();
  row.format(r, 1, 1);
  EXPECT_EQ(col("location_id"), std::nullopt);
}

TEST(PgFormat, ErrorClassIdsMatchTheErrorClassesTable) {
  EXPECT_EQ(error_class_id(ErrorClass::none), std::nullopt);
  EXPECT_EQ(error_class_id(ErrorClass::dns), 1);
  EXPECT_EQ(error_class_id(ErrorClass::too_many_redirects), 6);
}

}  // namespace
}  // namespace webmon::writer
