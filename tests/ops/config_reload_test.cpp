// SIGHUP as an operator sends it to the real binaries: every changed key is either applied or
// logged as needing a restart (the key tables' reload column), and log_format changes the lines
// that follow. Neither daemon needs its servers for this: Kafka and PostgreSQL are unreachable
// addresses here, and both daemons keep running (retrying) without them.
#include <csignal>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

bool logged(webmon::test::ChildProcess& p, const std::string& text) {
  return webmon::test::eventually([&] { return p.log().find(text) != std::string::npos; });
}

// The lines logged after `marker`'s first occurrence.
std::string after(const std::string& log, const std::string& marker) {
  const auto at = log.find(marker);
  return at == std::string::npos ? std::string() : log.substr(at + marker.size());
}

TEST(ConfigReload, CheckerAppliesOrLogsEveryChangedKey) {
  webmon::test::TempDir dir;
  const std::string before = "kafka:\n  bootstrap_servers: 127.0.0.1:1\n  topic: first.topic\ntargets: []\n";
  const auto config = dir.write("config.yml", before);
  webmon::test::ChildProcess checker({WEBMON_CHECKER_BIN, "--config", config.string()}, dir.path() / "checker.log");
  ASSERT_TRUE(logged(checker, "webmon-checker started")) << checker.log();

  dir.write("config.yml",
            "log_format: json\n"
            "kafka:\n  bootstrap_servers: 127.0.0.1:1\n  topic: second.topic\n  topic_partitions: 3\n"
            "checker:\n  per_target_metrics: true\n  dns:\n    cache: false\n"
            "writer:\n  batch_max_rows: 10\n"
            "targets: []\n");
  checker.signal(SIGHUP);
  ASSERT_TRUE(logged(checker, "reloaded: 0 targets")) << checker.log();
  const std::string reload = after(checker.log(), "SIGHUP: reloading");
  EXPECT_THAT(reload, HasSubstr("reload: kafka.topic changed: needs a restart to take effect"));
  EXPECT_THAT(reload, HasSubstr("reload: kafka.topic_partitions changed: needs a restart to take effect"));
  EXPECT_THAT(reload, HasSubstr("reload: checker.per_target_metrics changed: needs a restart to take effect"));
  EXPECT_THAT(reload, HasSubstr("reload: checker.dns.cache changed: applied"));
  EXPECT_THAT(reload, HasSubstr("reload: log_format changed: applied"));
  EXPECT_THAT(reload, Not(HasSubstr("writer.batch_max_rows")));  // not the checker's key
  // From the reload on, one JSON object per line.
  EXPECT_THAT(after(reload, "reload: log_format changed: applied"), HasSubstr("{\"ts_ms\":"));
  EXPECT_THAT(after(reload, "reload: log_format changed: applied"), HasSubstr("\"msg\":\"reloaded: 0 targets"));

  // A key that needs a restart keeps its old value: the next reload says so again; what was
  // applied is not reported twice.
  checker.signal(SIGHUP);
  ASSERT_TRUE(webmon::test::eventually([&] {
    const auto log = checker.log();
    const auto first = log.find("reloaded: 0 targets");
    return first != std::string::npos && log.find("reloaded: 0 targets", first + 1) != std::string::npos;
  })) << checker.log();
  const std::string second = after(after(checker.log(), "reloaded: 0 targets"), "SIGHUP: reloading");
  EXPECT_THAT(second, HasSubstr("reload: kafka.topic changed: needs a restart to take effect"));
  EXPECT_THAT(second, Not(HasSubstr("log_format changed")));
  EXPECT_THAT(second, Not(HasSubstr("checker.dns.cache changed")));

  checker.signal(SIGTERM);
  EXPECT_EQ(checker.wait_for_exit(std::chrono::seconds(60)), 0) << checker.log();
}

TEST(ConfigReload, WriterAppliesLogFormatAndLogsTheRest) {
  webmon::test::TempDir dir;
  const std::string sections =
      "kafka:\n  bootstrap_servers: 127.0.0.1:1\n"
      "postgres:\n  uri: \"postgresql://webmon@127.0.0.1:1/webmon\"\n  connect_timeout_seconds: 1\n";
  const auto config = dir.write("config.yml", sections);
  webmon::test::ChildProcess writer({WEBMON_WRITER_BIN, "--config", config.string()}, dir.path() / "writer.log");
  ASSERT_TRUE(logged(writer, "webmon-writer: topic")) << writer.log();

  dir.write("config.yml", sections + "writer:\n  batch_max_rows: 10\nchecker:\n  max_in_flight: 5\nlog_format: json\n");
  writer.signal(SIGHUP);
  ASSERT_TRUE(logged(writer, "reloaded " + config.string())) << writer.log();
  const std::string reload = after(writer.log(), "SIGHUP: reloading");
  EXPECT_THAT(reload, HasSubstr("reload: writer.batch_max_rows changed: needs a restart to take effect"));
  EXPECT_THAT(reload, HasSubstr("reload: log_format changed: applied"));
  EXPECT_THAT(reload, Not(HasSubstr("checker.max_in_flight")));
  EXPECT_THAT(after(reload, "reload: log_format changed: applied"), HasSubstr("{\"ts_ms\":"));

  // A bad file changes nothing and says where it is wrong.
  dir.write("config.yml", sections + "writer:\n  batch_max_rows: 0\n");
  writer.signal(SIGHUP);
  ASSERT_TRUE(logged(writer, "reload failed: 1 error(s)")) << writer.log();
  EXPECT_THAT(writer.log(), HasSubstr("writer.batch_max_rows: 0 is out of range"));

  writer.signal(SIGTERM);
  EXPECT_EQ(writer.wait_for_exit(std::chrono::seconds(60)), 0) << writer.log();
}

}  // namespace
