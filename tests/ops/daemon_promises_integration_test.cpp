// Promises of the README and docs/operations.md that only the running binaries can keep, checked
// the way an operator meets them: a daemon started on a broken file exits 2 and names the place,
// and `log_format: json` gives one JSON object per line on stderr (librdkafka's lines included).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "support/http_site.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using webmon::test::ChildProcess;
using webmon::test::TempDir;

// Line 3, column 3: a key the kafka section (which every binary reads) does not have.
constexpr const char* kBadFile =
    "kafka:\n"
    "  bootstrap_servers: \"127.0.0.1:9\"\n"
    "  colour: blue\n"
    "postgres:\n"
    "  uri: \"postgresql://webmon:webmon@127.0.0.1:9/webmon\"\n"
    "targets: []\n";

TEST(DaemonPromises, EveryBinaryStartedOnAnInvalidFileExitsTwoAndNamesFileLineColumnAndKey) {
  TempDir dir;
  const auto bad = dir.write("bad.yml", kBadFile);
  const std::vector<std::vector<std::string>> commands = {
      {WEBMON_CHECKER_BIN, "--config", bad.string()},
      {WEBMON_WRITER_BIN, "--config", bad.string()},
      {WEBMON_CLI_BIN, "migrate", "--config", bad.string()},
      {WEBMON_CLI_BIN, "stats", "--config", bad.string()},
  };
  for (const auto& argv : commands) {
    const auto [rc, out] = webmon::test::run_command(argv, 60s);
    EXPECT_EQ(rc, 2) << argv[0] << " " << argv[1] << ":\n" << out;
    EXPECT_NE(out.find("bad.yml:3:3"), std::string::npos) << argv[0] << " " << argv[1] << ":\n" << out;
    EXPECT_NE(out.find("kafka.colour"), std::string::npos) << argv[0] << " " << argv[1] << ":\n" << out;
  }
}

// Each non-empty line of `log` is a JSON object with the documented fields; returns how many.
std::size_t expect_json_lines(const std::string& log, const std::string& who) {
  std::istringstream in(log);
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    boost::system::error_code ec;
    const auto v = json::parse(line, ec);
    EXPECT_FALSE(ec) << who << ": not JSON: " << line;
    if (ec) continue;
    EXPECT_TRUE(v.is_object()) << who << ": " << line;
    if (!v.is_object()) continue;
    const auto& o = v.as_object();
    EXPECT_TRUE(o.contains("ts_ms") && o.at("ts_ms").is_number()) << who << ": " << line;
    EXPECT_TRUE(o.contains("level") && o.at("level").is_string()) << who << ": " << line;
    EXPECT_TRUE(o.contains("msg") && o.at("msg").is_string()) << who << ": " << line;
    ++n;
  }
  return n;
}

TEST(DaemonPromises, LogFormatJsonIsOneObjectPerLineForBothDaemons) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("wmops-json");
  const auto checker_cfg = dir.write(
      "checker.yml", "log_format: json\nkafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() +
                         "\"\n  topic: " + topic + "\n  topic_partitions: 1\n" +
                         "targets:\n  - name: json-site\n    url: \"" + site.url("/ok") +
                         "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.5\n");
  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", checker_cfg.string(), "--log-level", "debug"},
                       dir.path() / "checker.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/ok") >= 2; }, 60s)) << checker.log();
  checker.signal(SIGTERM);
  EXPECT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();
  EXPECT_GE(expect_json_lines(checker.log(), "webmon-checker"), 3u) << checker.log();

  // The writer with a PostgreSQL that is not there: it logs its retries, in JSON too.
  const auto writer_cfg = dir.write(
      "writer.yml", "log_format: json\nkafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() +
                        "\"\n  topic: " + topic + "\npostgres:\n  uri: \"postgresql://webmon:webmon@127.0.0.1:" +
                        std::to_string(webmon::test::free_port()) + "/none\"\nwriter:\n  group_id: " +
                        webmon::test::unique_name("wmops-json") + "\n");
  ChildProcess writer({WEBMON_WRITER_BIN, "--config", writer_cfg.string()}, dir.path() / "writer.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return writer.log().find("retrying") != std::string::npos; }, 60s))
      << writer.log();
  writer.signal(SIGTERM);
  EXPECT_EQ(writer.wait_for_exit(60s), std::optional<int>(0)) << writer.log();
  EXPECT_GE(expect_json_lines(writer.log(), "webmon-writer"), 1u) << writer.log();

  // librdkafka's own lines too (here: a broker that refuses connections), not in its own format.
  const auto dead_cfg = dir.write(
      "dead.yml", "log_format: json\nkafka:\n  bootstrap_servers: \"127.0.0.1:" +
                      std::to_string(webmon::test::free_port()) + "\"\n  topic: " + topic +
                      "\ntargets:\n  - name: json-site\n    url: \"" + site.url("/ok") +
                      "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.5\n");
  ChildProcess lonely({WEBMON_CHECKER_BIN, "--config", dead_cfg.string()}, dir.path() / "lonely.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return lonely.log().find("Connection refused") != std::string::npos; }, 60s))
      << lonely.log();
  lonely.signal(SIGTERM);
  EXPECT_TRUE(lonely.wait_for_exit(60s).has_value()) << lonely.log();
  EXPECT_GE(expect_json_lines(lonely.log(), "webmon-checker without Kafka"), 1u) << lonely.log();
}

}  // namespace
