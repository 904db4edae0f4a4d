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
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include "support/database.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/common/check_result.hpp"
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
  void insert(const std::vector<Row>& rows) {
    using webmon::writer::test::Producer;
    const webmon::writer::test::TestTopic topic("stats_topic");
    Producer producer;
    producer.create_topic(topic.name(), 1);
    const auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    anchor_ = now;
    for (const auto& r : rows) {
      webmon::CheckResult c;
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

// Grafana's PostgreSQL macros, expanded as Grafana does for the dashboard's queries.
std::string expand_grafana(std::string sql, const std::vector<std::string>& targets) {
  sql = std::regex_replace(sql, std::regex(R"(\$__timeGroupAlias\((\w+),\s*\$__interval\))"),
                           "floor(extract(epoch from $1)/60)*60 AS \"time\"");
  sql = std::regex_replace(sql, std::regex(R"(\$__timeFilter\((\w+)\))"),
                           "$1 BETWEEN now() - interval '6 hours' AND now()");
  std::string list;
  for (const auto& t : targets) list += (list.empty() ? "'" : ",'") + t + "'";
  sql = std::regex_replace(sql, std::regex(R"(\$target\b)"), list);
  return sql;
}

TEST_F(CliStats, EveryGrafanaPanelQueryRunsOnTheSchema) {
  insert_fixture();
  std::ifstream in(fs::path(WEBMON_SOURCE_DIR) / "docker/grafana/dashboards/webmon.json");
  std::stringstream text;
  text << in.rdbuf();
  const json::value dash = json::parse(text.str());
  pqxx::connection c(db_.uri());

  // The target variable's query.
  std::vector<std::string> targets;
  for (const auto& v : dash.at("templating").at("list").as_array()) {
    pqxx::nontransaction nt(c);
    for (const auto& row : nt.exec(std::string(v.at("query").as_string()))) targets.push_back(row[0].c_str());
  }
  EXPECT_EQ(targets, (std::vector<std::string>{"alpha", "beta", "gamma"}));

  int queries = 0;
  for (const auto& p : dash.at("panels").as_array()) {
    const std::string title(p.at("title").as_string());
    for (const auto& t : p.at("targets").as_array()) {
      SCOPED_TRACE(title);
      const std::string sql = expand_grafana(std::string(t.at("rawSql").as_string()), targets);
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
    }
  }
  EXPECT_GE(queries, 5);
}

}  // namespace
