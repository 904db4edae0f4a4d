// `webmon migrate` and `webmon stats` run as processes against a fresh database on the stack's
// real PostgreSQL; and every Grafana panel's SQL run against the same data, so that a schema change
// cannot silently break the dashboard.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include "support/database.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/common/check_result.hpp"
#include "webmon/writer/compactor.hpp"
#include "writer_fixture.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

using FreshDatabase = webmon::test::TestDatabase;

struct Row {
  std::string target;
  int minutes_ago;  // scheduled_at = now - minutes_ago
  double lateness_s;
  std::optional<float> response_time;
  std::optional<int> status;
  bool ok;
  std::optional<int> error;  // error_classes.id: 1 dns, 4 timeout
  std::string detail;
};

class CliStats : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.write("config.yml", "postgres:\n  uri: " + db_.uri() + "\n");
    const auto [status, output] = webmon_cli({"migrate"});
    ASSERT_EQ(status, 0) << output;
    ASSERT_NE(output.find("applied 001_init.sql"), std::string::npos) << output;
  }

  std::pair<int, std::string> webmon_cli(std::vector<std::string> args) {
    args.insert(args.begin(), WEBMON_CLI_BIN);
    args.push_back("--config");
    args.push_back(config_.string());
    return webmon::test::run_command(args);
  }

  // Through the pipeline a user's rows take: each row a v1 message on a topic of the stack's
  // Kafka, stored by the real webmon-writer (which also creates the day partitions they need).
  // `locations`: the checker.location of each row, by index (none past its end, or "").
  void insert(const std::vector<Row>& rows, const std::vector<std::string>& locations = {}) {
    using webmon::writer::test::Producer;
    const webmon::writer::test::TestTopic topic("stats_topic");
    Producer producer;
    producer.create_topic(topic.name(), 1);
    const auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    anchor_ = now;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      webmon::CheckResult c;
      if (i < locations.size()) c.location = locations[i];
      c.target = r.target;
      c.url = "https://" + r.target + ".example/";
      c.scheduled_at = now - std::chrono::minutes(r.minutes_ago);
      c.started_at = c.scheduled_at + std::chrono::milliseconds(std::lround(r.lateness_s * 1000));
      if (r.response_time) c.http_response_time = static_cast<double>(*r.response_time);
      c.http_status = r.status;
      c.ok = r.ok;
      if (r.error) c.error = *r.error == 1 ? webmon::ErrorClass::dns : webmon::ErrorClass::timeout;
      c.error_detail = r.detail;
      c.timings.total = 1.0;
      c.checker = "test-checker";
      producer.produce(topic.name(), c.target, webmon::encode_check_result(c));
    }
    producer.flush();
    webmon::writer::test::Writer writer(dir_.path(), "writer", topic.name(), webmon::test::unique_name("stats_group"),
                                        db_.uri());
    const auto stored = [&] { return db_.scalar("SELECT count(*) FROM checks"); };
    ASSERT_TRUE(webmon::test::eventually([&] { return stored() == std::to_string(rows.size()); }, 120s))
        << stored() << " rows of " << rows.size() << "\n" << writer.log();
    ASSERT_EQ(writer.stop(), 0) << writer.log();
  }

  // alpha: 100 checks in the last 50 minutes, response times 0.01..1.00 s, one timeout.
  // beta: one check 2 h ago (outside the default 1 h window), a 503 10 min ago, a DNS error 5 min ago.
  // gamma: only checks 3 h ago.
  void insert_fixture() {
    std::vector<Row> rows;
    for (int i = 1; i <= 100; ++i) {
      Row r{"alpha", 50 - i / 2, 0.001 * i, static_cast<float>(i) / 100.0f, 200, true, std::nullopt, ""};
      if (i == 40) r = {"alpha", 50 - i / 2, 0.5, std::nullopt, std::nullopt, false, 4, "no response within 10 s"};
      rows.push_back(r);
    }
    rows.push_back({"beta", 120, 0.0, 0.05f, 200, true, std::nullopt, ""});
    rows.push_back({"beta", 10, 0.0, 0.2f, 503, false, std::nullopt, ""});
    rows.push_back({"beta", 5, 0.0, std::nullopt, std::nullopt, false, 1, "lookup \"beta.example\"\nNXDOMAIN"});
    rows.push_back({"gamma", 180, 0.0, 0.3f, 200, true, std::nullopt, ""});
    rows.push_back({"gamma", 181, 0.0, 0.4f, 200, true, std::nullopt, ""});
    insert(rows);
  }

  // From two locations and none: alpha probed from eu-west (4 ok checks, 0.1..0.4 s) and us-east
  // (one ok in 0.5 s, then a timeout), beta by a checker without a location, gamma from eu-west
  // (one 503). All within the last 10 minutes.
  void insert_located_fixture() {
    insert({{"alpha", 10, 0.0, 0.1f, 200, true, std::nullopt, ""},
            {"alpha", 9, 0.0, 0.2f, 200, true, std::nullopt, ""},
            {"alpha", 8, 0.0, 0.3f, 200, true, std::nullopt, ""},
            {"alpha", 7, 0.0, 0.4f, 200, true, std::nullopt, ""},
            {"alpha", 6, 0.0, 0.5f, 200, true, std::nullopt, ""},
            {"alpha", 5, 0.0, std::nullopt, std::nullopt, false, 4, "no response within 10 s"},
            {"beta", 4, 0.0, 0.2f, 200, true, std::nullopt, ""},
            {"gamma", 3, 0.0, 0.3f, 503, false, std::nullopt, ""}},
           {"eu-west", "eu-west", "eu-west", "eu-west", "us-east", "us-east", "", "eu-west"});
  }

  // What percentile_cont computes: linear interpolation between the two nearest ranks.
  static double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const double rank = p * static_cast<double>(v.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(rank));
    const auto hi = static_cast<std::size_t>(std::ceil(rank));
    return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
  }

  static std::vector<double> alpha_times() {
    std::vector<double> v;
    for (int i = 1; i <= 100; ++i) {
      if (i != 40) v.push_back(static_cast<double>(static_cast<float>(i) / 100.0f));
    }
    return v;
  }

  // A --since value reaching back `minutes` before the rows' "now", however long the writer took.
  std::string since_before_anchor(double minutes) const {
    const auto late = std::chrono::duration<double>(std::chrono::system_clock::now() - anchor_).count();
    return std::to_string(std::lround(minutes * 60 + late)) + "s";
  }

  FreshDatabase db_;
  webmon::test::TempDir dir_;
  std::chrono::system_clock::time_point anchor_ = std::chrono::system_clock::now();
  fs::path config_;
};

// The stats row of one target from one location (none: the checks without a location).
json::object by_target_at(const json::value& doc, const std::string& target, std::optional<std::string> location) {
  for (const auto& s : doc.at("stats").as_array()) {
    const auto& l = s.at("location");
    const auto here = l.is_null() ? std::nullopt : std::optional<std::string>(l.as_string().c_str());
    if (s.at("target").as_string() == target && here == location) return s.as_object();
  }
  ADD_FAILURE() << "no stats for " << target << " at " << location.value_or("(none)") << " in " << json::serialize(doc);
  return {};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

json::object by_target(const json::value& doc, const std::string& target) {
  for (const auto& s : doc.at("stats").as_array()) {
    if (s.at("target").as_string() == target) return s.as_object();
  }
  ADD_FAILURE() << "no stats for " << target << " in " << json::serialize(doc);
  return {};
}

TEST_F(CliStats, MigrateTwiceIsHarmless) {
  const auto [status, output] = webmon_cli({"migrate"});
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("schema up to date"), std::string::npos) << output;
}

TEST_F(CliStats, EmptyDatabaseGivesEmptyStats) {
  const auto [status, output] = webmon_cli({"stats", "--format", "json"});
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "{\"stats\": []}\n");
  const auto [tstatus, table] = webmon_cli({"stats"});
  EXPECT_EQ(tstatus, 0);
  EXPECT_EQ(table, "no checks in the selected window\n");
}

TEST_F(CliStats, JsonPerTargetWithinTheDefaultHour) {
  insert_fixture();
  const auto [status, output] = webmon_cli({"stats", "--format", "json"});
  ASSERT_EQ(status, 0) << output;
  EXPECT_EQ(output.rfind("{\"stats\": [{\"target\": ", 0), 0u) << output;
  const json::value doc = json::parse(output);
  const auto& stats = doc.at("stats").as_array();
  ASSERT_EQ(stats.size(), 2u) << output;  // gamma is older than 1 h
  EXPECT_EQ(stats[0].at("target").as_string(), "alpha");  // ordered by target
  EXPECT_EQ(stats[1].at("target").as_string(), "beta");
  for (const auto& s : stats) {
    std::vector<std::string> keys;
    for (const auto& kv : s.as_object()) keys.emplace_back(kv.key());
    EXPECT_EQ(keys, (std::vector<std::string>{"target", "checks", "ok_ratio", "p50_s", "p95_s", "p99_s",
                                              "last_status", "last_error"}));
  }

  const auto alpha = by_target(doc, "alpha");
  EXPECT_EQ(alpha.at("checks").as_int64(), 100);
  EXPECT_NEAR(alpha.at("ok_ratio").to_number<double>(), 0.99, 1e-9);
  const auto times = alpha_times();
  EXPECT_NEAR(alpha.at("p50_s").to_number<double>(), percentile(times, 0.50), 1e-6);
  EXPECT_NEAR(alpha.at("p95_s").to_number<double>(), percentile(times, 0.95), 1e-6);
  EXPECT_NEAR(alpha.at("p99_s").to_number<double>(), percentile(times, 0.99), 1e-6);
  EXPECT_EQ(alpha.at("last_status").as_int64(), 200);
  EXPECT_EQ(alpha.at("last_error").as_string(), "timeout: no response within 10 s");

  const auto beta = by_target(doc, "beta");
  EXPECT_EQ(beta.at("checks").as_int64(), 2);
  EXPECT_EQ(beta.at("ok_ratio").to_number<double>(), 0.0);
  EXPECT_NEAR(beta.at("p50_s").to_number<double>(), 0.2, 1e-6);  // the one response in the window
  EXPECT_TRUE(beta.at("last_status").is_null());                 // the last check had no response
  EXPECT_EQ(beta.at("last_error").as_string(), "dns: lookup \"beta.example\"\nNXDOMAIN");
}

TEST_F(CliStats, SinceAndTargetFilters) {
  insert_fixture();
  {
    const auto [status, output] = webmon_cli({"stats", "--since", "all", "--format=json"});
    ASSERT_EQ(status, 0) << output;
    const json::value doc = json::parse(output);
    EXPECT_EQ(doc.at("stats").as_array().size(), 3u);
    EXPECT_EQ(by_target(doc, "beta").at("checks").as_int64(), 3);
    const auto gamma = by_target(doc, "gamma");
    EXPECT_EQ(gamma.at("checks").as_int64(), 2);
    EXPECT_EQ(gamma.at("ok_ratio").to_number<double>(), 1.0);
    EXPECT_TRUE(gamma.at("last_error").is_null());
  }
  {
    // 15m30s before the rows' "now" (the messages' times are relative to when they were sent).
    const auto [status, output] =
        webmon_cli({"stats", "--since", since_before_anchor(15.5), "--target", "alpha", "--format", "json"});
    ASSERT_EQ(status, 0) << output;
    const json::value doc = json::parse(output);
    ASSERT_EQ(doc.at("stats").as_array().size(), 1u) << output;
    // alpha's checks at most 15 minutes old (30 s of slack each way): 50 - i/2 <= 15, i.e. i >= 70.
    EXPECT_EQ(by_target(doc, "alpha").at("checks").as_int64(), 31);
    EXPECT_TRUE(by_target(doc, "alpha").at("last_error").is_null());  // the timeout was earlier
  }
  {
    const auto [status, output] = webmon_cli({"stats", "--target", "nosuch", "--format", "json"});
    EXPECT_EQ(status, 0);
    EXPECT_EQ(output, "{\"stats\": []}\n");
  }
}

TEST_F(CliStats, TableIsAlignedForATerminal) {
  insert_fixture();
  const auto [status, output] = webmon_cli({"stats", "--since", "4h"});
  ASSERT_EQ(status, 0) << output;
  std::vector<std::string> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u) << output;  // header + alpha, beta, gamma (the newline in beta's error is flattened)
  const std::string& header = lines[0];
  EXPECT_EQ(header.rfind("TARGET", 0), 0u) << header;

  // Right-aligned numeric columns end where their header ends; text columns start where theirs start.
  for (const char* col : {"CHECKS", "OK", "P50", "P95", "P99", "LAST STATUS"}) {
    const auto end = header.find(col) + std::string(col).size();
    for (std::size_t i = 1; i < lines.size(); ++i) {
      ASSERT_GE(lines[i].size(), end) << lines[i];
      EXPECT_NE(lines[i][end - 1], ' ') << col << " in: " << lines[i];
      EXPECT_EQ(lines[i][end], ' ') << col << " in: " << lines[i];
    }
  }
  const auto error_col = header.find("LAST ERROR");
  for (std::size_t i = 1; i < lines.size(); ++i) EXPECT_NE(lines[i][error_col], ' ') << lines[i];

  // The cells a person reads.
  EXPECT_NE(lines[1].find("alpha"), std::string::npos);
  EXPECT_NE(lines[1].find(" 100 "), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("99.0%"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(" 200 "), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("timeout: no response within 10 s"), std::string::npos) << lines[1];
  EXPECT_EQ(lines[2].rfind("beta", 0), 0u);
  EXPECT_NE(lines[2].find("33.3%"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("dns: lookup \"beta.example\" NXDOMAIN"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("100.0%"), std::string::npos) << lines[3];
}

TEST_F(CliStats, OneRowPerTargetAndLocationWithTheLocationLast) {
  insert_located_fixture();
  const auto [status, output] = webmon_cli({"stats", "--format", "json"});
  ASSERT_EQ(status, 0) << output;
  const json::value doc = json::parse(output);
  const auto& stats = doc.at("stats").as_array();
  ASSERT_EQ(stats.size(), 4u) << output;
  // By target, then location (none first); every row has the same keys, location added last.
  std::vector<std::string> order;
  for (const auto& s : stats) {
    order.push_back(std::string(s.at("target").as_string()) + "@" +
                    (s.at("location").is_null() ? "-" : std::string(s.at("location").as_string())));
    std::vector<std::string> keys;
    for (const auto& kv : s.as_object()) keys.emplace_back(kv.key());
    EXPECT_EQ(keys, (std::vector<std::string>{"target", "checks", "ok_ratio", "p50_s", "p95_s", "p99_s",
                                              "last_status", "last_error", "location"}));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"alpha@eu-west", "alpha@us-east", "beta@-", "gamma@eu-west"}));
  const auto eu = by_target_at(doc, "alpha", "eu-west");
  EXPECT_EQ(eu.at("checks").as_int64(), 4);
  EXPECT_EQ(eu.at("ok_ratio").to_number<double>(), 1.0);
  EXPECT_NEAR(eu.at("p50_s").to_number<double>(), percentile({0.1f, 0.2f, 0.3f, 0.4f}, 0.5), 1e-6);
  EXPECT_TRUE(eu.at("last_error").is_null());
  const auto us = by_target_at(doc, "alpha", "us-east");
  EXPECT_EQ(us.at("checks").as_int64(), 2);
  EXPECT_EQ(us.at("ok_ratio").to_number<double>(), 0.5);
  EXPECT_NEAR(us.at("p50_s").to_number<double>(), static_cast<double>(0.5f), 1e-6);
  EXPECT_TRUE(us.at("last_status").is_null());
  EXPECT_EQ(us.at("last_error").as_string(), "timeout: no response within 10 s");
  EXPECT_EQ(by_target_at(doc, "beta", std::nullopt).at("checks").as_int64(), 1);
  EXPECT_EQ(by_target_at(doc, "gamma", "eu-west").at("last_status").as_int64(), 503);

  // The table: the same rows, LOCATION the last column, "-" for none.
  const auto [tstatus, table] = webmon_cli({"stats"});
  ASSERT_EQ(tstatus, 0) << table;
  const auto lines = lines_of(table);
  ASSERT_EQ(lines.size(), 5u) << table;
  EXPECT_EQ(lines[0].rfind("TARGET", 0), 0u) << lines[0];
  EXPECT_TRUE(lines[0].ends_with(" LOCATION")) << lines[0];
  const auto location_col = lines[0].find("LOCATION");
  EXPECT_LT(lines[0].find("LAST ERROR"), location_col) << lines[0];
  const std::vector<std::string> located = {"eu-west", "us-east", "-", "eu-west"};
  for (std::size_t i = 1; i < lines.size(); ++i) {
    ASSERT_GE(lines[i].size(), location_col) << lines[i];
    EXPECT_EQ(lines[i].substr(location_col), located[i - 1]) << lines[i];
  }
  EXPECT_EQ(lines[2].rfind("alpha", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find("timeout: no response within 10 s"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("50.0%"), std::string::npos) << lines[2];
}

TEST_F(CliStats, LocationFilter) {
  insert_located_fixture();
  {
    const auto [status, output] = webmon_cli({"stats", "--location", "eu-west", "--format", "json"});
    ASSERT_EQ(status, 0) << output;
    const json::value doc = json::parse(output);
    ASSERT_EQ(doc.at("stats").as_array().size(), 2u) << output;
    EXPECT_EQ(by_target_at(doc, "alpha", "eu-west").at("checks").as_int64(), 4);
    EXPECT_EQ(by_target_at(doc, "gamma", "eu-west").at("checks").as_int64(), 1);
  }
  {
    const auto [status, output] =
        webmon_cli({"stats", "--location=us-east", "--target", "alpha", "--format", "json"});
    ASSERT_EQ(status, 0) << output;
    const json::value doc = json::parse(output);
    ASSERT_EQ(doc.at("stats").as_array().size(), 1u) << output;
    EXPECT_EQ(by_target_at(doc, "alpha", "us-east").at("checks").as_int64(), 2);
  }
  {
    // '' selects the checks without a location; no row then has one, so there is no location column.
    const auto [status, output] = webmon_cli({"stats", "--location", "", "--format", "json"});
    ASSERT_EQ(status, 0) << output;
    const json::value doc = json::parse(output);
    ASSERT_EQ(doc.at("stats").as_array().size(), 1u) << output;
    EXPECT_EQ(by_target(doc, "beta").at("checks").as_int64(), 1);
    EXPECT_EQ(output.find("location"), std::string::npos) << output;
    const auto [tstatus, table] = webmon_cli({"stats", "--location", ""});
    ASSERT_EQ(tstatus, 0) << table;
    EXPECT_EQ(table.find("LOCATION"), std::string::npos) << table;
    EXPECT_EQ(lines_of(table).size(), 2u) << table;
  }
  {
    const auto [status, table] = webmon_cli({"stats", "--location", "us-east"});
    ASSERT_EQ(status, 0) << table;
    const auto lines = lines_of(table);
    ASSERT_EQ(lines.size(), 2u) << table;
    EXPECT_TRUE(lines[0].ends_with("  LOCATION")) << lines[0];
    EXPECT_TRUE(lines[1].ends_with("  us-east")) << lines[1];
  }
  {
    const auto [status, output] = webmon_cli({"stats", "--location", "nowhere", "--format", "json"});
    EXPECT_EQ(status, 0) << output;
    EXPECT_EQ(output, "{\"stats\": []}\n");
  }
  EXPECT_EQ(webmon_cli({"migrate", "--location", "eu-west"}).first, 2);
}

TEST_F(CliStats, UsageErrorsAndAnUnreachableDatabase) {
  EXPECT_EQ(webmon_cli({"stats", "--since", "soon"}).first, 2);
  EXPECT_EQ(webmon_cli({"stats", "--format", "xml"}).first, 2);
  EXPECT_EQ(webmon_cli({"frobnicate"}).first, 2);
  const auto [hstatus, help] = webmon::test::run_command({WEBMON_CLI_BIN, "--help"});
  EXPECT_EQ(hstatus, 0);
  EXPECT_NE(help.find("webmon <command>"), std::string::npos);
  const auto [vstatus, version] = webmon::test::run_command({WEBMON_CLI_BIN, "--version"});
  EXPECT_EQ(vstatus, 0);
  EXPECT_EQ(version.rfind("webmon ", 0), 0u);

  // Nothing listens on a port that was just free: a clear failure, exit 1, and no password.
  const auto port = webmon::test::free_port();
  const auto bad = dir_.write("bad.yml", "postgres:\n  uri: postgresql://webmon:s3cretpw@127.0.0.1:" +
                                             std::to_string(port) + "/webmon\n");
  const auto [status, output] =
      webmon::test::run_command({WEBMON_CLI_BIN, "stats", "--config", bad.string()});
  EXPECT_EQ(status, 1) << output;
  EXPECT_NE(output.find("cannot connect to PostgreSQL"), std::string::npos) << output;
  EXPECT_EQ(output.find("s3cretpw"), std::string::npos) << output;
}

// Hourly rollups (sql/006_rollups.sql): a compacted day (rolled up at compaction) and the last
// four closed hours (rolled up by the writer's pass, Compactor::roll_up) of three targets, one at
// a location, with spread response times, timeouts and 503s. `webmon stats` then reads the closed
// hours from the rollups and the open hour from the rows: counts, ok ratios, last status and
// error exactly as check_results gives them, p50/p95/p99 within 1 % of percentile_cont on the same
// rows. Late rows for a rolled-up hour and for the compacted day are counted once rolled up again.
// p50, p95 and p99 by percentile_cont over check_results' http_response_time, as three columns.
const std::string kExactPercentiles =
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY http_response_time), "
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY http_response_time), "
    "percentile_cont(0.99) WITHIN GROUP (ORDER BY http_response_time)";

// The JSON object's p50_s, p95_s and p99_s within 1 % of the row's columns first .. first + 2.
void expect_percentiles_near(const json::value& got, const pqxx::row& want, int first) {
  for (const auto& [key, offset] : {std::pair{"p50_s", 0}, {"p95_s", 1}, {"p99_s", 2}}) {
    const double exact = want[first + offset].as<double>();
    EXPECT_LE(std::abs(got.at(key).to_number<double>() / exact - 1.0), 0.01)
        << key << " " << got.at(key).to_number<double>() << " against percentile_cont " << exact;
  }
}

TEST_F(CliStats, RollupsGiveExactCountsAndPercentilesWithinOnePercent) {
  const auto old_day = db_.scalar("SELECT ((now() AT TIME ZONE 'UTC')::date - 3)::text");
  db_.exec("INSERT INTO checkers (name) VALUES ('c'); INSERT INTO locations (name) VALUES ('eu')");
  db_.exec("INSERT INTO targets (name, url, first_seen, last_seen) SELECT 'r' || i, 'https://r' || i || '.example/', "
           "now(), now() FROM generate_series(1, 3) i");
  db_.exec("SELECT webmon_ensure_checks_partition((now() AT TIME ZONE 'UTC')::date - k) FROM generate_series(0, 3) k");
  // Every 20 s from four hours before the current hour until now, and every 60 s on old_day.
  const std::string insert =
      "SELECT setseed(0.13); "
      "INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, http_response_time, body_bytes, "
      "http_status, redirects, error, ok, error_detail, location_id) "
      "SELECT ts, ts + interval '3 ms', t.id, 1, 1.0, CASE WHEN x.u < 0.03 THEN NULL ELSE x.rt END, 0, "
      "CASE WHEN x.u < 0.03 THEN NULL WHEN x.u < 0.06 THEN 503 ELSE 200 END, 0, CASE WHEN x.u < 0.03 THEN 4 END, "
      "x.u >= 0.06, CASE WHEN x.u < 0.03 THEN 'no answer ' || to_char(ts, 'HH24:MI:SS') END, "
      "CASE WHEN t.name = 'r2' THEN 1 END "
      "FROM targets t CROSS JOIN LATERAL (SELECT ts FROM generate_series(%s) ts) g "
      "CROSS JOIN LATERAL (SELECT random() AS u, (exp(random() * 7 - 6) * t.id)::real AS rt, ts AS k) x";
  const auto with = [&](const std::string& series) {
    std::string sql = insert;
    sql.replace(sql.find("%s"), 2, series);
    db_.exec(sql);
  };
  with("date_trunc('hour', now()) - interval '4 hours', now(), interval '20 seconds'");
  with("'" + old_day + " 00:00+00'::timestamptz, '" + old_day + " 23:59+00'::timestamptz, interval '60 seconds'");

  const auto [cs, co] = webmon_cli({"compact", "--day", old_day});
  ASSERT_EQ(cs, 0) << co;
  const std::string after_old_day = "(('" + old_day + "'::date + 1)::timestamp AT TIME ZONE 'UTC')";
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM check_rollups WHERE hour < " + after_old_day), "72");
  webmon::writer::Compactor compactor(db_.uri(), {});
  const auto rolled = compactor.roll_up(std::chrono::system_clock::now() - 24h, std::chrono::system_clock::now(), true);
  EXPECT_GE(rolled.hours, 4);  // 5 if the current hour closed meanwhile
  EXPECT_EQ(rolled.days, 0);     // the compacted day was rolled up at compaction
  EXPECT_EQ(db_.scalar("SELECT count(DISTINCT hour) FROM check_rollups WHERE hour >= " + after_old_day),
            std::to_string(rolled.hours));

  // What check_results gives for the same rows, per target and location, scheduled since `since`.
  const auto expect_like_check_results = [&](const std::string& since_arg, const std::string& since_sql) {
    const auto [status, out] = webmon_cli({"stats", "--since", since_arg, "--format", "json"});
    ASSERT_EQ(status, 0) << out;
    const json::value doc = json::parse(out);
    pqxx::connection c(db_.uri());
    pqxx::nontransaction nt(c);
    const auto want = nt.exec(
        "SELECT target, location, count(*), avg(CASE WHEN ok THEN 1.0 ELSE 0.0 END)::float8, "
        + kExactPercentiles + ", "
        "(array_agg(http_status ORDER BY scheduled_at DESC))[1], "
        "(array_agg(error || ': ' || error_detail ORDER BY scheduled_at DESC) FILTER (WHERE error IS NOT NULL))[1] "
        "FROM check_results WHERE scheduled_at >= " + since_sql + " GROUP BY 1, 2 ORDER BY 1, 2");
    ASSERT_EQ(want.size(), 3u);
    ASSERT_EQ(doc.at("stats").as_array().size(), 3u) << out;
    for (const auto& w : want) {
      const std::string target = w[0].c_str();
      SCOPED_TRACE(target + " since " + since_arg);
      const auto got = by_target_at(doc, target, w[1].is_null() ? std::nullopt : std::optional<std::string>(w[1].c_str()));
      EXPECT_EQ(got.at("checks").as_int64(), w[2].as<long long>());
      EXPECT_NEAR(got.at("ok_ratio").to_number<double>(), w[3].as<double>(), 1e-12);
      expect_percentiles_near(got, w, 4);
      if (w[7].is_null()) {
        EXPECT_TRUE(got.at("last_status").is_null());
      } else {
        EXPECT_EQ(got.at("last_status").as_int64(), w[7].as<long long>());
      }
      EXPECT_EQ(got.at("last_error").as_string(), w[8].c_str());
    }
  };
  expect_like_check_results("all", "'-infinity'");

  // `webmon report --period day`: the compacted day is one daily rollup row per target, which the
  // report takes as it is, with the percentiles stored in it (sql/008); today's rolled-up hours and
  // the open hour's rows are merged. Every day of every target as check_results has it: the same
  // checks, p50/p95/p99 within 1 % of percentile_cont.
  const auto expect_report_like_check_results = [&] {
    const auto [status, out] = webmon_cli({"report", "--period", "day", "--since", "all", "--format", "json"});
    ASSERT_EQ(status, 0) << out;
    const json::value doc = json::parse(out);
    pqxx::connection c(db_.uri());
    pqxx::nontransaction nt(c);
    const auto want = nt.exec(
        "SELECT target, to_char(scheduled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*), "
        + kExactPercentiles + " "
        "FROM check_results GROUP BY 1, 2 ORDER BY 1, 2");
    ASSERT_GE(want.size(), 6u);  // 3 targets, on old_day and today (and yesterday before 04:00 UTC)
    ASSERT_EQ(doc.at("report").as_array().size(), want.size()) << out;
    for (const auto& w : want) {
      SCOPED_TRACE(std::string(w[0].c_str()) + " on " + w[1].c_str());
      const json::value* got = nullptr;
      for (const auto& r : doc.at("report").as_array()) {
        if (r.at("target").as_string() == w[0].c_str() && r.at("period").as_string() == w[1].c_str()) got = &r;
      }
      ASSERT_NE(got, nullptr) << out;
      EXPECT_EQ(got->at("checks").as_int64(), w[2].as<long long>());
      expect_percentiles_near(*got, w, 3);
    }
  };
  expect_report_like_check_results();
  // From 10 s past the start of the hour two hours before the current one: that hour's rollups
  // are left out and its rows after the 10 s are read instead.
  const auto h2 = std::stoll(db_.scalar("SELECT extract(epoch FROM date_trunc('hour', now()) - interval '2 hours')::bigint"));
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  expect_like_check_results(std::to_string(now_s - h2 - 10) + "s", "to_timestamp(" + std::to_string(h2 + 10) + ")");

  // Late rows: one for a rolled-up hour, one for the compacted day (into checks_default).
  const std::string late =
      "INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, http_response_time, body_bytes, "
      "http_status, redirects, ok) SELECT %s, %s, t.id, 1, 1.0, 0.5, 0, 200, 0, true FROM targets t WHERE t.name = 'r1'";
  for (const std::string& at : {std::string("date_trunc('hour', now()) - interval '2 hours' + interval '7 seconds'"),
                               "'" + old_day + " 12:00:07+00'::timestamptz"}) {
    std::string sql = late;
    sql.replace(sql.find("%s"), 2, at);
    sql.replace(sql.find("%s"), 2, at);
    db_.exec(sql);
  }
  const auto now = std::chrono::system_clock::now();
  EXPECT_GE(compactor.roll_up(now - 3h, now, false).hours, 1);  // that hour (and one just closed meanwhile)
  EXPECT_EQ(db_.scalar("SELECT sum(checks) FROM check_rollups WHERE hour = date_trunc('hour', now()) - interval '2 hours' "
                       "AND target_id = (SELECT id FROM targets WHERE name = 'r1')"),
            "181");  // 180 every 20 s, and the late one
  const auto [rs, ro] = webmon_cli({"compact", "--day", old_day});
  ASSERT_EQ(rs, 0) << ro;
  expect_like_check_results("all", "'-infinity'");
  expect_report_like_check_results();
}

// A multi-value variable as Grafana's PostgreSQL data source writes it: 'a','b'.
std::string quoted_list(const std::vector<std::string>& values) {
  std::string list;
  for (const auto& v : values) list += (list.empty() ? "'" : ",'") + v + "'";
  return list;
}

// Grafana's PostgreSQL macros, expanded as Grafana does for the dashboard's queries. `location`:
// what $location becomes, the variable's allValue as it stands (Grafana inserts a custom all
// value unquoted) or a quoted list of the locations chosen.
std::string expand_grafana(std::string sql, const std::vector<std::string>& targets, const std::string& location) {
  sql = std::regex_replace(sql, std::regex(R"(\$__timeGroupAlias\((\w+),\s*\$__interval\))"),
                           "floor(extract(epoch from $1)/60)*60 AS \"time\"");
  sql = std::regex_replace(sql, std::regex(R"(\$__timeFilter\((\w+)\))"),
                           "$1 BETWEEN now() - interval '6 hours' AND now()");
  sql = std::regex_replace(sql, std::regex(R"(\$__timeFrom\(\))"), "(now() - interval '6 hours')");
  sql = std::regex_replace(sql, std::regex(R"(\$target\b)"), quoted_list(targets));
  sql = std::regex_replace(sql, std::regex(R"(\$location\b)"), location);
  return sql;
}

struct Dashboard {
  json::value doc;
  // Each variable's query and, for those with one, the custom value standing for All.
  std::map<std::string, std::string> queries;
  std::map<std::string, std::string> all_values;
};

Dashboard read_dashboard() {
  std::ifstream in(fs::path(WEBMON_SOURCE_DIR) / "docker/grafana/dashboards/webmon.json");
  std::stringstream text;
  text << in.rdbuf();
  Dashboard d;
  d.doc = json::parse(text.str());
  for (const auto& v : d.doc.at("templating").at("list").as_array()) {
    const std::string name(v.at("name").as_string());
    d.queries[name] = std::string(v.at("query").as_string());
    if (const auto* all = v.as_object().if_contains("allValue")) d.all_values[name] = std::string(all->as_string());
  }
  return d;
}

std::vector<std::string> variable_values(pqxx::connection& c, const Dashboard& d, const std::string& name) {
  std::vector<std::string> out;
  pqxx::nontransaction nt(c);
  for (const auto& row : nt.exec(d.queries.at(name))) out.push_back(row[0].c_str());
  return out;
}

TEST_F(CliStats, EveryGrafanaPanelQueryRunsOnTheSchema) {
  insert_fixture();
  const Dashboard d = read_dashboard();
  const json::value& dash = d.doc;
  pqxx::connection c(db_.uri());

  // The target variable's query.
  const std::vector<std::string> targets = variable_values(c, d, "target");
  EXPECT_EQ(targets, (std::vector<std::string>{"alpha", "beta", "gamma"}));
  // The location variable: none here (the fixture's checkers have no location); All is its allValue.
  EXPECT_EQ(variable_values(c, d, "location"), std::vector<std::string>{});
  const std::string all_locations = d.all_values.at("location");

  int queries = 0;
  for (const auto& p : dash.at("panels").as_array()) {
    const std::string title(p.at("title").as_string());
    for (const auto& t : p.at("targets").as_array()) {
      SCOPED_TRACE(title);
      const std::string sql = expand_grafana(std::string(t.at("rawSql").as_string()), targets, all_locations);
      ASSERT_EQ(sql.find('$'), std::string::npos) << "unexpanded macro in: " << sql;
      pqxx::nontransaction nt(c);
      pqxx::result r;
      ASSERT_NO_THROW(r = nt.exec(sql)) << sql;
      EXPECT_GT(r.size(), 0u) << "no rows from: " << sql;  // the fixture has data for every panel
      ++queries;
      if (title == "Availability") {
        std::map<std::string, double> availability;
        for (const auto& row : r) availability[row[0].c_str()] = row[1].as<double>();
        EXPECT_NEAR(availability["alpha"], 99.0, 1e-9);
        EXPECT_NEAR(availability["gamma"], 100.0, 1e-9);
      }
      if (title == "Errors by class") {
        std::set<std::string> classes;
        for (const auto& row : r) classes.insert(row[1].c_str());
        EXPECT_EQ(classes, (std::set<std::string>{"dns", "timeout"}));
      }
      // beta's 503 and DNS error in a row open an incident, still open; alpha's one timeout none.
      if (title == "Open incidents" || title == "Incident history") {
        ASSERT_EQ(r.size(), 1u);
        EXPECT_EQ(std::string(r[0]["target"].c_str()), "beta");
        EXPECT_TRUE(r[0]["location"].is_null());
        EXPECT_EQ(r[0]["failed checks"].as<int>(), 2);
        EXPECT_EQ(std::string(r[0]["first error"].c_str()), "HTTP 503");
        if (title == "Incident history") {
          EXPECT_TRUE(r[0]["ended"].is_null());
        }
      }
      if (title == "Availability per day") {
        std::map<std::string, std::vector<double>> days;
        for (const auto& row : r) days[row[1].c_str()].push_back(row[2].as<double>());
        EXPECT_EQ(days.size(), 3u);
        if (days["alpha"].size() == 1) {  // unless it spans midnight
          EXPECT_NEAR(days["alpha"][0], 99.0, 1e-9);
        }
        EXPECT_EQ(days["gamma"], std::vector<double>{100.0});
      }
    }
  }
  EXPECT_GE(queries, 5);
}

// The location variable: All (its allValue) keeps every check, those without a location too;
// one or several locations keep theirs only; per-target panels split by location.
TEST_F(CliStats, GrafanaPanelsFilterByTheLocationVariable) {
  insert_located_fixture();
  const Dashboard d = read_dashboard();
  pqxx::connection c(db_.uri());
  const auto targets = variable_values(c, d, "target");
  EXPECT_EQ(variable_values(c, d, "location"), (std::vector<std::string>{"eu-west", "us-east"}));
  const std::map<std::string, std::string> choices = {{"all", d.all_values.at("location")},
                                                      {"us-east", quoted_list({"us-east"})},
                                                      {"both", quoted_list({"eu-west", "us-east"})}};
  std::map<std::string, std::map<std::string, double>> availability;  // by choice, then series
  std::map<std::string, std::size_t> latest_rows;
  for (const auto& [choice, location] : choices) {
    for (const auto& p : d.doc.at("panels").as_array()) {
      const std::string title(p.at("title").as_string());
      for (const auto& t : p.at("targets").as_array()) {
        SCOPED_TRACE(title + ", location " + choice);
        const std::string sql = expand_grafana(std::string(t.at("rawSql").as_string()), targets, location);
        ASSERT_EQ(sql.find('$'), std::string::npos) << "unexpanded macro in: " << sql;
        pqxx::nontransaction nt(c);
        pqxx::result r;
        ASSERT_NO_THROW(r = nt.exec(sql)) << sql;
        // Every choice has data for every panel but the incidents' (no two failures in a row here).
        if (title != "Open incidents" && title != "Incident history") {
          EXPECT_GT(r.size(), 0u) << "no rows from: " << sql;
        }
        if (title == "Availability") {
          for (const auto& row : r) availability[choice][row[0].c_str()] = row[1].as<double>();
        }
        if (title == "Latest check per target") {
          latest_rows[choice] = r.size();
          ASSERT_GT(r.columns(), 0u);
          EXPECT_EQ(std::string(r.column_name(r.columns() - 1)), "location");
        }
      }
    }
  }
  using Series = std::map<std::string, double>;
  EXPECT_EQ(availability["all"],
            (Series{{"alpha (eu-west)", 100.0}, {"alpha (us-east)", 50.0}, {"beta", 100.0}, {"gamma (eu-west)", 0.0}}));
  EXPECT_EQ(availability["us-east"], (Series{{"alpha (us-east)", 50.0}}));
  EXPECT_EQ(availability["both"],
            (Series{{"alpha (eu-west)", 100.0}, {"alpha (us-east)", 50.0}, {"gamma (eu-west)", 0.0}}));
  EXPECT_EQ(latest_rows["all"], 4u);
  EXPECT_EQ(latest_rows["us-east"], 1u);
  EXPECT_EQ(latest_rows["both"], 3u);
}

}  // namespace
