// Unit: the text the writer hands PostgreSQL (COPY fields, array literals, timestamps).
#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

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

// The fields of one binary COPY tuple as PostgreSQL reads them: a 16-bit count, then per field a
// 32-bit length (-1: NULL) and the bytes, in network byte order. `pos` moves past the tuple.
std::vector<std::optional<std::string>> read_binary_tuple(const std::string& data, std::size_t& pos) {
  auto take = [&](std::size_t n) {
    if (pos + n > data.size()) throw std::runtime_error("tuple cut short");
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(data[pos + i]);
    pos += n;
    return v;
  };
  const auto count = static_cast<std::int16_t>(take(2));
  std::vector<std::optional<std::string>> out;
  for (int i = 0; i < count; ++i) {
    const auto length = static_cast<std::int32_t>(take(4));
    if (length < 0) {
      out.emplace_back();
      continue;
    }
    if (pos + static_cast<std::size_t>(length) > data.size()) throw std::runtime_error("field cut short");
    out.emplace_back(data.substr(pos, static_cast<std::size_t>(length)));
    pos += static_cast<std::size_t>(length);
  }
  return out;
}

std::int64_t be_int(const std::string& bytes) {
  std::uint64_t v = 0;
  for (unsigned char c : bytes) v = (v << 8) | c;
  const auto bits = 8 * bytes.size();
  if (bits < 64 && (v >> (bits - 1)) != 0) v |= ~std::uint64_t{0} << bits;  // sign-extend
  return static_cast<std::int64_t>(v);
}

// What the binary COPY row holds is what the text COPY row says, column by column, in the width
// of each column's type (sql/001_init.sql and after).
void expect_binary_matches_text(const CheckResult& r, int target_id, int checker_id, std::optional<int> location_id) {
  CopyRow text;
  text.format(r, target_id, checker_id, location_id);
  std::string binary;
  append_copy_binary_row(binary, r, target_id, checker_id, location_id);
  std::size_t pos = 0;
  const auto fields = read_binary_tuple(binary, pos);
  EXPECT_EQ(pos, binary.size());
  ASSERT_EQ(fields.size(), kCheckColumns.size());
  const std::set<std::string_view> int2 = {"http_status", "redirects", "error", "location_id"};
  const std::set<std::string_view> int4 = {"target_id", "checker_id", "body_bytes", "peer_port"};
  const std::set<std::string_view> float4 = {"http_response_time", "dns_time",  "connect_time", "tls_time",
                                             "ttfb_time",          "transfer_time", "total_time"};
  const std::set<std::string_view> stamps = {"scheduled_at", "started_at", "tls_cert_not_after"};
  const std::set<std::string_view> bools = {"ok", "regexp_match", "dns_cached"};
  for (std::size_t i = 0; i < kCheckColumns.size(); ++i) {
    const std::string_view name = kCheckColumns[i];
    SCOPED_TRACE(std::string(name));
    const auto t = text[i];
    ASSERT_EQ(fields[i].has_value(), t.has_value());
    if (!t) continue;
    const std::string& b = *fields[i];
    const std::string tv(*t);
    if (int2.count(name)) {
      ASSERT_EQ(b.size(), 2u);
      EXPECT_EQ(be_int(b), std::stoll(tv));
    } else if (int4.count(name)) {
      ASSERT_EQ(b.size(), 4u);
      EXPECT_EQ(be_int(b), std::stoll(tv));
    } else if (float4.count(name)) {
      ASSERT_EQ(b.size(), 4u);
      EXPECT_EQ(std::bit_cast<float>(static_cast<std::uint32_t>(be_int(b))), std::strtof(tv.c_str(), nullptr));
    } else if (stamps.count(name)) {
      // Microseconds since 2000-01-01 against the text's "YYYY-MM-DD HH:MM:SS.mmm+00".
      ASSERT_EQ(b.size(), 8u);
      const auto us = be_int(b);
      const SysMillis t2000(std::chrono::milliseconds(946'684'800'000));
      EXPECT_EQ(us % 1000, 0);
      EXPECT_EQ(format_pg_timestamp(t2000 + std::chrono::milliseconds(us / 1000)), tv);
    } else if (bools.count(name)) {
      ASSERT_EQ(b.size(), 1u);
      EXPECT_EQ(b[0] == 1 ? "t" : "f", tv);
    } else if (name == "peer") {
      const bool v6 = tv.find(':') != std::string::npos;
      unsigned char addr[16];
      ASSERT_EQ(::inet_pton(v6 ? AF_INET6 : AF_INET, tv.c_str(), addr), 1);
      std::string want;
      want += static_cast<char>(v6 ? 3 : 2);     // PGSQL_AF_INET6 / PGSQL_AF_INET
      want += static_cast<char>(v6 ? 128 : 32);  // bits
      want += '\0';                              // not cidr
      want += static_cast<char>(v6 ? 16 : 4);
      want.append(reinterpret_cast<const char*>(addr), v6 ? 16 : 4);
      EXPECT_EQ(b, want);
    } else {
      EXPECT_EQ(name, "error_detail");
      EXPECT_EQ(b, tv);
    }
  }
}

TEST(PgFormat, BinaryCopyRowHoldsWhatTheTextRowSays) {
  CheckResult r;
  r.target = "t";
  r.url = "https://t/";
  r.scheduled_at = SysMillis(std::chrono::milliseconds(1'714'564'800'123));
  r.started_at = r.scheduled_at + std::chrono::milliseconds(4);
  r.http_response_time = 0.123456;
  r.http_status = 503;
  r.regexp_match = false;
  r.ok = false;
  r.error = ErrorClass::protocol;
  r.error_detail = "tab\there, back\\slash, ünïcode";
  r.timings = {0.001, 0.002, 0.0031, 0.1, 0.01, 0.2};
  r.body_bytes = 2'000'000'000;
  r.redirects = 3;
  r.tls_cert_not_after = std::chrono::sys_seconds(std::chrono::seconds(1'900'000'000));
  r.peer = "192.0.2.7:8443";
  r.checker = "c";
  r.dns_cached = true;
  r.location = "eu";
  expect_binary_matches_text(r, 2'000'000'000, 70'000, 32'000);

  // Mostly NULLs, an IPv6 peer without a port, a time before 2000 (negative microseconds).
  CheckResult bare;
  bare.scheduled_at = SysMillis(std::chrono::milliseconds(-1'500));
  bare.started_at = SysMillis(std::chrono::milliseconds(915'148'800'999));
  bare.ok = true;
  bare.peer = "2001:db8::1";
  expect_binary_matches_text(bare, 1, 1, std::nullopt);

  // Rows follow each other in one buffer, each a whole tuple.
  std::string two;
  append_copy_binary_row(two, r, 1, 1, 1);
  append_copy_binary_row(two, bare, 1, 1);
  std::size_t pos = 0;
  EXPECT_EQ(read_binary_tuple(two, pos).size(), kCheckColumns.size());
  EXPECT_EQ(read_binary_tuple(two, pos).size(), kCheckColumns.size());
  EXPECT_EQ(pos, two.size());
  EXPECT_EQ(kCopyBinaryHeader.size(), 19u);
  EXPECT_EQ(kCopyBinaryHeader.substr(0, 11), std::string_view("PGCOPY\n\377\r\n\0", 11));
}

}  // namespace
}  // namespace webmon::writer
