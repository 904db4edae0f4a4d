// Integration (real Kafka and PostgreSQL from scripts/stack; the real webmon-checker and
// webmon-writer binaries): what the checker sends is what a person reads in check_results.
#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <map>

#include <pqxx/pqxx>

#include "support/database.hpp"
#include "support/http_site.hpp"
#include "support/kafka_topic.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/common/check_result.hpp"

namespace {

using namespace std::chrono_literals;
using webmon::test::ChildProcess;
using webmon::test::TempDir;

std::string key_of(const std::string& target, webmon::SysMillis scheduled_at) {
  return target + "@" + webmon::format_rfc3339_ms(scheduled_at);
}

TEST(EndToEnd, RowsInCheckResultsMatchWhatTheCheckerSent) {
  webmon::test::HttpSite site;
  webmon::test::TestDatabase db;
  TempDir dir;
  const auto topic = webmon::test::unique_name("e2e");
  const auto refused = webmon::test::free_port();
  auto target = [](const std::string& name, const std::string& url, const std::string& extra = "") {
    return "  - name: " + name + "\n    target: \"" + url + "\"\n    check_interval_seconds: 1\n" +
           "    timeout_seconds: 0.8\n" + extra;
  };
  // Host names where users write them: Kafka, PostgreSQL and one site as `localhost`, resolved by
  // librdkafka, libpq and the checker's own resolver (c-ares, /etc/hosts) in the real binaries.
  const auto by_name = [](std::string address) {
    const auto at = address.find("127.0.0.1");
    if (at != std::string::npos) address.replace(at, 9, "localhost");
    return address;
  };
  const auto cfg = dir.write(
      "config.yml",
      "kafka:\n  bootstrap_servers: \"" + by_name(webmon::test::kafka_bootstrap()) + "\"\n  topic: " + topic +
          "\n  topic_partitions: 2\n"
          "postgres:\n  uri: \"" + by_name(db.uri()) + "\"\n"
          "writer:\n  group_id: " + topic + "\n  batch_max_ms: 200\n"
          "checker:\n  instance_id: e2e\n"
          "targets:\n" +
          target("ok-site", by_name(site.url("/ok")), "    regexp: \"hello\"\n") + target("missing", site.url("/missing")) +
          target("refused", "http://127.0.0.1:" + std::to_string(refused) + "/") + target("slow", site.url("/slow")));

  ChildProcess writer({WEBMON_WRITER_BIN, "--config", cfg.string()}, dir.path() / "writer.log");
  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/ok") >= 4 && site.hits("/slow") >= 3; }, 60s))
      << checker.log();
  checker.signal(SIGTERM);
  ASSERT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();

  std::map<std::string, webmon::CheckResult> sent;
  for (const auto& rec : webmon::test::read_topic(topic, 12)) {
    auto decoded = webmon::decode_check_result(rec.value);
    ASSERT_TRUE(std::holds_alternative<webmon::CheckResult>(decoded)) << rec.value;
    auto r = std::get<webmon::CheckResult>(decoded);
    sent.emplace(key_of(r.target, r.scheduled_at), r);
  }
  ASSERT_GE(sent.size(), 12u);

  pqxx::connection conn(db.uri());
  ASSERT_TRUE(webmon::test::eventually([&] {
    pqxx::nontransaction tx(conn);
    return tx.exec1("SELECT count(*) FROM check_results")[0].as<std::size_t>() >= sent.size();
  }, 90s)) << writer.log();

  pqxx::nontransaction tx(conn);
  const auto rows = tx.exec(
      "SELECT target, url, to_char(scheduled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
      "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), http_response_time, "
      "http_status, regexp_match, ok, error, error_detail FROM check_results");
  EXPECT_EQ(rows.size(), sent.size()) << "exactly one row per message";
  for (const auto& row : rows) {
    const auto name = row[0].as<std::string>();
    const auto it = sent.find(name + "@" + row[2].as<std::string>());
    ASSERT_NE(it, sent.end()) << "a row the checker never sent: " << name << " " << row[2].as<std::string>();
    const auto& r = it->second;
    EXPECT_EQ(row[1].as<std::string>(), r.url);
    EXPECT_EQ(row[3].as<std::string>(), webmon::format_rfc3339_ms(r.started_at));
    EXPECT_EQ(row[4].is_null(), !r.http_response_time.has_value());
    if (r.http_response_time) {
      EXPECT_NEAR(row[4].as<double>(), *r.http_response_time, 1e-4);
    }
    EXPECT_EQ(row[5].is_null(), !r.http_status.has_value());
    if (r.http_status) {
      EXPECT_EQ(row[5].as<int>(), *r.http_status);
    }
    EXPECT_EQ(row[6].is_null(), !r.regexp_match.has_value());
    if (r.regexp_match) {
      EXPECT_EQ(row[6].as<bool>(), *r.regexp_match);
    }
    EXPECT_EQ(row[7].as<bool>(), r.ok);
    EXPECT_EQ(row[8].is_null() ? std::string() : row[8].as<std::string>(), std::string(webmon::to_string(r.error)));
    EXPECT_EQ(row[9].is_null() ? std::string() : row[9].as<std::string>(), r.error_detail);
  }
  // What each target's rows say, as a person would query them.
  const auto summary = tx.exec(
      "SELECT target, bool_and(ok), min(coalesce(error, '')), max(http_status) FROM check_results GROUP BY target "
      "ORDER BY target");
  ASSERT_EQ(summary.size(), 4u);
  EXPECT_EQ(summary[0][0].as<std::string>(), "missing");
  EXPECT_EQ(summary[0][3].as<int>(), 404);
  EXPECT_EQ(summary[1][0].as<std::string>(), "ok-site");
  EXPECT_TRUE(summary[1][1].as<bool>());
  EXPECT_EQ(summary[2][2].as<std::string>(), "connect");
  EXPECT_EQ(summary[3][2].as<std::string>(), "timeout");

  writer.signal(SIGTERM);
  EXPECT_EQ(writer.wait_for_exit(60s), std::optional<int>(0)) << writer.log();
}

}  // namespace
