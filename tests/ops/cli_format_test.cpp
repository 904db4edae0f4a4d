// `webmon stats` renderings and --since parsing, without a database.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "stats.hpp"

namespace {

using webmon::cli::TargetStats;
using namespace std::chrono_literals;

TEST(ParseDuration, UnitsAndCombinations) {
  EXPECT_EQ(webmon::cli::parse_duration("90s"), 90s);
  EXPECT_EQ(webmon::cli::parse_duration("15m"), 15min);
  EXPECT_EQ(webmon::cli::parse_duration("1h30m"), 90min);
  EXPECT_EQ(webmon::cli::parse_duration("7d"), std::chrono::seconds(7 * 86400));
  EXPECT_EQ(webmon::cli::parse_duration("2w"), std::chrono::seconds(14 * 86400));
  EXPECT_EQ(webmon::cli::parse_duration("all"), 0s);
  EXPECT_EQ(webmon::cli::parse_duration("0"), 0s);
  for (const char* bad : {"", "10", "h", "1x", "-1h", "1h-", "1.5h", "0h", "999999999999d"}) {
    EXPECT_FALSE(webmon::cli::parse_duration(bad).has_value()) << bad;
  }
}

TEST(FormatJson, EmptyAndNulls) {
  EXPECT_EQ(webmon::cli::format_json({}), "{\"stats\": []}\n");
  TargetStats s;
  s.target = "a\"b";
  s.checks = 3;
  s.ok_ratio = 0.5;
  s.p50_s = 0.123;
  s.last_error = "tls: bad\ncert";
  const std::string text = webmon::cli::format_json({s});
  EXPECT_EQ(text,
            "{\"stats\": [{\"target\": \"a\\\"b\", \"checks\": 3, \"ok_ratio\": 0.5, \"p50_s\": 0.123, "
            "\"p95_s\": null, \"p99_s\": null, \"last_status\": null, \"last_error\": \"tls: bad\\ncert\"}]}\n");
  const auto doc = boost::json::parse(text);
  EXPECT_EQ(doc.at("stats").at(0).at("last_error").as_string(), "tls: bad\ncert");
}

TEST(FormatTable, NullsAsDashesAndOneLinePerTarget) {
  EXPECT_EQ(webmon::cli::format_table({}), "no checks in the selected window\n");
  TargetStats a{"a-long-target-name", 1200, 0.995, 0.0123, 0.5, 1.25, 200, std::nullopt, std::nullopt};
  TargetStats b{"b", 7, 0, std::nullopt, std::nullopt, std::nullopt, std::nullopt, "dns: no\nsuch host", std::nullopt};
  const std::string table = webmon::cli::format_table({a, b});
  EXPECT_EQ(table,
            "TARGET              CHECKS     OK     P50     P95     P99  LAST STATUS  LAST ERROR\n"
            "a-long-target-name    1200  99.5%  0.012s  0.500s  1.250s          200  -\n"
            "b                        7   0.0%       -       -       -            -  dns: no such host\n");
}

TEST(FormatTable, ALocationColumnComesLastOnlyWhenSomeRowHasALocation) {
  TargetStats a{"a", 10, 1, 0.01, 0.02, 0.03, 200, std::nullopt, "eu-west"};
  TargetStats a2{"a", 9, 0.5, 0.01, 0.02, 0.03, 503, "timeout: slow", "us-east-1"};
  TargetStats b{"b", 7, 0, std::nullopt, std::nullopt, std::nullopt, std::nullopt, "dns: nx", std::nullopt};
  EXPECT_EQ(webmon::cli::format_table({b, a, a2}),
            "TARGET  CHECKS      OK     P50     P95     P99  LAST STATUS  LAST ERROR     LOCATION\n"
            "b            7    0.0%       -       -       -            -  dns: nx        -\n"
            "a           10  100.0%  0.010s  0.020s  0.030s          200  -              eu-west\n"
            "a            9   50.0%  0.010s  0.020s  0.030s          503  timeout: slow  us-east-1\n");
  // Without any location the table is the one of before locations existed.
  b.location.reset();
  EXPECT_EQ(webmon::cli::format_table({b}),
            "TARGET  CHECKS    OK  P50  P95  P99  LAST STATUS  LAST ERROR\n"
            "b            7  0.0%    -    -    -            -  dns: nx\n");
}

TEST(FormatJson, LocationIsTheLastKeyOnlyWhenSomeRowHasOne) {
  TargetStats a;
  a.target = "a";
  a.checks = 1;
  a.ok_ratio = 1;
  a.location = "eu \"west\"";
  TargetStats b;
  b.target = "b";
  b.checks = 2;
  const std::string text = webmon::cli::format_json({a, b});
  EXPECT_EQ(text,
            "{\"stats\": [{\"target\": \"a\", \"checks\": 1, \"ok_ratio\": 1, \"p50_s\": null, \"p95_s\": null, "
            "\"p99_s\": null, \"last_status\": null, \"last_error\": null, \"location\": \"eu \\\"west\\\"\"}, "
            "{\"target\": \"b\", \"checks\": 2, \"ok_ratio\": 0, \"p50_s\": null, \"p95_s\": null, "
            "\"p99_s\": null, \"last_status\": null, \"last_error\": null, \"location\": null}]}\n");
  const auto doc = boost::json::parse(text);
  EXPECT_EQ(doc.at("stats").at(0).at("location").as_string(), "eu \"west\"");
  EXPECT_TRUE(doc.at("stats").at(1).at("location").is_null());
  EXPECT_EQ(webmon::cli::format_json({b}).find("location"), std::string::npos);
}

}  // namespace
