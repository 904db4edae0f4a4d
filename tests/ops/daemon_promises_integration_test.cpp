// Promises of the README and docs/operations.md that only the running binaries can keep, checked
// the way an operator meets them: a daemon started on a broken file exits 2 and names the place,
// `log_format: json` gives one JSON object per line on stderr (librdkafka's lines included), the
// log level comes from --log-level, else $WEBMON_LOG_LEVEL, else info, and secret values from
// the config never reach a log line.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "support/http_client.hpp"
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

// --help (and -h) of each daemon: exit 0, and the usage names every flag with its argument.
TEST(DaemonPromises, EachDaemonsHelpExitsZeroWithAUsageNamingEveryFlag) {
  for (const std::string bin : {WEBMON_CHECKER_BIN, WEBMON_WRITER_BIN}) {
    const auto program = bin.substr(bin.rfind('/') + 1);
    for (const std::string flag : {"--help", "-h"}) {
      const auto [rc, out] = webmon::test::run_command({bin, flag}, 60s);
      EXPECT_EQ(rc, 0) << program << " " << flag << ":\n" << out;
      EXPECT_EQ(out.rfind("usage: " + program + " ", 0), 0u) << program << " " << flag << ":\n" << out;
      for (const char* named : {"--config PATH", "--check-config", "--log-level LEVEL", "--version", "--help"}) {
        EXPECT_NE(out.find(named), std::string::npos) << program << " " << flag << " lacks " << named << ":\n" << out;
      }
    }
  }
}

// The checker's /readyz says 503 "not ready" while its Kafka refuses connections (a loopback port
// nobody listens on), once librdkafka has tried and failed; /healthz says it is alive; SIGTERM
// still stops it cleanly.
TEST(DaemonPromises, TheCheckerIsNotReadyWhileKafkaIsUnreachableAndStillStopsCleanly) {
  TempDir dir;
  const auto metrics_port = webmon::test::free_port();
  const auto cfg = dir.write("lonely.yml", "kafka:\n  bootstrap_servers: \"127.0.0.1:" +
                                               std::to_string(webmon::test::free_port()) + "\"\n  topic: " +
                                               webmon::test::unique_name("wmops-unready") +
                                               "\nchecker:\n  metrics_listen: \"127.0.0.1:" +
                                               std::to_string(metrics_port) + "\"\ntargets: []\n");
  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return checker.log().find("Connection refused") != std::string::npos; }, 60s))
      << checker.log();
  // The status is 0 for no answer at all (not listening yet): only an answering server gives 503.
  webmon::test::HttpReply ready;
  ASSERT_TRUE(webmon::test::eventually([&] { return (ready = webmon::test::http_get(metrics_port, "/readyz")).status != 0; }, 60s))
      << checker.log();
  EXPECT_EQ(ready.status, 503) << ready.body << "\n" << checker.log();
  EXPECT_NE(ready.body.find("not ready"), std::string::npos) << ready.body;
  EXPECT_EQ(webmon::test::http_get(metrics_port, "/healthz").status, 200);
  checker.signal(SIGTERM);
  EXPECT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();
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
    EXPECT_TRUE(o.contains("logger") && o.at("logger").is_string()) << who << ": " << line;
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

// Counts the occurrences of `needle` in `haystack`.
std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

// The values of Cookie, Proxy-Authorization and *key* headers, kafka.properties passwords and
// ${VAR}s for secret-looking keys are registered when the file is read, and every log line of a
// running daemon shows "***" where one appears. A reload with a broken file is where a value
// reaches a log line (each error quotes what it got), so the test makes one: the same secrets in
// keys whose errors quote them.
TEST(DaemonPromises, SecretValuesFromTheConfigAreMaskedInARunningCheckersLog) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("wmops-mask");
  const std::string cookie = "session=c00kie-jar-42";
  const std::string proxy = "Basic cHJveHk6aHVudGVyMg==";
  const std::string api_key = "k3y-from-the-environment";
  const std::string kafka_pw = "kafka-key-pw-7";
  const auto file = [&](const std::string& bad_keys) {
    return "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() + "\"\n  topic: " + topic +
           "\n  topic_partitions: 1\n  properties:\n    ssl.key.password: \"" + kafka_pw + "\"\n" +
           "targets:\n  - name: masked-site\n    url: \"" + site.url("/ok") +
           "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.5\n" +
           "    headers:\n      Cookie: \"" + cookie + "\"\n      Proxy-Authorization: \"" + proxy +
           "\"\n      X-Api-Key: \"${WEBMON_TEST_API_KEY}\"\n" + bad_keys;
  };
  const auto cfg = dir.write("checker.yml", file(""));
  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log",
                       {"WEBMON_TEST_API_KEY=" + api_key});
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/ok") >= 1; }, 60s)) << checker.log();

  // Four errors, each quoting one of the secrets as the value it got.
  dir.write("checker.yml", file("  - name: broken\n    url: \"" + site.url("/ok") + "\"\n" +
                                "    check_interval_seconds: \"" + cookie + "\"\n" +
                                "    timeout_seconds: \"" + proxy + "\"\n" +
                                "    max_redirects: \"" + api_key + "\"\n" +
                                "    max_body_bytes: \"" + kafka_pw + "\"\n"));
  checker.signal(SIGHUP);
  ASSERT_TRUE(webmon::test::eventually([&] { return checker.log().find("reload failed") != std::string::npos; }, 60s))
      << checker.log();
  checker.signal(SIGTERM);
  EXPECT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();
  const auto log = checker.log();
  for (const auto& key : {"check_interval_seconds", "timeout_seconds", "max_redirects", "max_body_bytes"}) {
    // The error line for the key is there, with the mask where the value was.
    std::size_t line_start = log.find(std::string("targets[1].") + key);
    ASSERT_NE(line_start, std::string::npos) << key << "\n" << log;
    const auto line_end = log.find('\n', line_start);
    EXPECT_NE(log.substr(line_start, line_end - line_start).find("***"), std::string::npos) << key << "\n" << log;
  }
  for (const auto& secret : {cookie, proxy, api_key, kafka_pw}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " reached the log:\n" << log;
  }
  EXPECT_GE(count_of(log, "***"), 4u) << log;
}

// The writer names its database in its log lines (here: retrying one that is not there), with the
// password of a key=value connection string, and of a URI, masked.
TEST(DaemonPromises, ThePostgresPasswordIsMaskedInARunningWritersLog) {
  TempDir dir;
  const auto port = std::to_string(webmon::test::free_port());
  const std::vector<std::pair<std::string, std::string>> uris = {
      {"key-value", "host=127.0.0.1 port=" + port + " dbname=none user=webmon password=pg-s3cret-pw connect_timeout=5"},
      {"uri", "postgresql://webmon:pg-s3cret-pw@127.0.0.1:" + port + "/none"},
  };
  for (const auto& [form, uri] : uris) {
    const auto cfg = dir.write(form + ".yml", "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() +
                                                  "\"\n  topic: " + webmon::test::unique_name("wmops-pgmask") +
                                                  "\npostgres:\n  uri: \"" + uri + "\"\nwriter:\n  group_id: " +
                                                  webmon::test::unique_name("wmops-pgmask") + "\n");
    ChildProcess writer({WEBMON_WRITER_BIN, "--config", cfg.string()}, dir.path() / (form + ".log"));
    ASSERT_TRUE(webmon::test::eventually([&] { return writer.log().find("retrying") != std::string::npos; }, 60s))
        << form << "\n" << writer.log();
    writer.signal(SIGTERM);
    EXPECT_EQ(writer.wait_for_exit(60s), std::optional<int>(0)) << form << "\n" << writer.log();
    const auto log = writer.log();
    EXPECT_EQ(log.find("pg-s3cret-pw"), std::string::npos) << form << "\n" << log;
    EXPECT_NE(log.find("127.0.0.1"), std::string::npos) << form << ": the line names the server\n" << log;
    EXPECT_NE(log.find("***"), std::string::npos) << form << "\n" << log;
  }
}

// --log-level, else $WEBMON_LOG_LEVEL, else info: told by the checker's info line at a graceful
// stop, and its error lines (a Kafka that refuses connections) at every level up to error. No
// targets, so that nothing waits to be delivered at the stop.
TEST(DaemonPromises, LogLevelIsTheFlagElseTheEnvironmentElseInfo) {
  TempDir dir;
  const auto cfg = dir.write("lonely.yml", "kafka:\n  bootstrap_servers: \"127.0.0.1:" +
                                               std::to_string(webmon::test::free_port()) + "\"\n  topic: " +
                                               webmon::test::unique_name("wmops-level") + "\ntargets: []\n");
  struct Case {
    std::string name;
    std::vector<std::string> flags;
    std::vector<std::string> env;
    bool info_shown;
  };
  const std::vector<Case> cases = {
      {"default", {}, {"WEBMON_LOG_LEVEL="}, true},
      {"environment warn", {}, {"WEBMON_LOG_LEVEL=warn"}, false},
      {"flag info over environment warn", {"--log-level", "info"}, {"WEBMON_LOG_LEVEL=warn"}, true},
      {"flag error over environment info", {"--log-level", "error"}, {"WEBMON_LOG_LEVEL=info"}, false},
  };
  std::vector<std::unique_ptr<ChildProcess>> checkers;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::vector<std::string> argv = {WEBMON_CHECKER_BIN, "--config", cfg.string()};
    argv.insert(argv.end(), cases[i].flags.begin(), cases[i].flags.end());
    checkers.push_back(std::make_unique<ChildProcess>(argv, dir.path() / ("checker" + std::to_string(i) + ".log"),
                                                      cases[i].env));
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto& c = *checkers[i];
    ASSERT_TRUE(webmon::test::eventually([&] { return c.log().find("Connection refused") != std::string::npos; }, 60s))
        << cases[i].name << "\n" << c.log();
  }
  for (auto& c : checkers) c->signal(SIGTERM);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto& c = *checkers[i];
    EXPECT_TRUE(c.wait_for_exit(60s).has_value()) << cases[i].name << "\n" << c.log();
    EXPECT_EQ(c.log().find("webmon-checker stopped") != std::string::npos, cases[i].info_shown)
        << cases[i].name << "\n" << c.log();
  }
}

// checker.per_target_metrics: true gives each target its gauges (up, last response time), and a
// reload that removes a target removes its series; the default gives no per-target series at all
// (100,000 targets must not mean 100,000 series).
TEST(DaemonPromises, PerTargetGaugesOnlyWithPerTargetMetricsAndGoneWithTheirTarget) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto refused = "http://127.0.0.1:" + std::to_string(webmon::test::free_port()) + "/";
  const auto file = [&](bool per_target, unsigned short port, bool with_down) {
    return "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() + "\"\n  topic: " +
           webmon::test::unique_name("wmops-pertarget") + "\n  topic_partitions: 1\n" +
           "checker:\n  metrics_listen: \"127.0.0.1:" + std::to_string(port) + "\"\n" +
           (per_target ? "  per_target_metrics: true\n" : "") + "targets:\n  - name: up-site\n    url: \"" +
           site.url("/ok") + "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.5\n" +
           (with_down ? "  - name: down-site\n    url: \"" + refused +
                            "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.5\n"
                      : "");
  };
  const auto on_port = webmon::test::free_port();
  const auto off_port = webmon::test::free_port();
  const auto on_cfg = dir.write("on.yml", file(true, on_port, true));
  const auto off_cfg = dir.write("off.yml", file(false, off_port, true));
  ChildProcess on({WEBMON_CHECKER_BIN, "--config", on_cfg.string()}, dir.path() / "on.log");
  ChildProcess off({WEBMON_CHECKER_BIN, "--config", off_cfg.string()}, dir.path() / "off.log");
  const auto series = [](unsigned short port, const std::string& name) {
    return webmon::test::scrape_metric(port, name);
  };
  ASSERT_TRUE(webmon::test::eventually([&] {
    return series(on_port, "webmon_checker_target_up{target=\"up-site\"}") == 1.0 &&
           series(on_port, "webmon_checker_target_up{target=\"down-site\"}") == 0.0;
  }, 60s)) << webmon::test::http_get(on_port, "/metrics").body << on.log();
  const auto response = series(on_port, "webmon_checker_target_response_seconds{target=\"up-site\"}");
  ASSERT_TRUE(response.has_value()) << webmon::test::http_get(on_port, "/metrics").body;
  EXPECT_GT(*response, 0.0);
  EXPECT_LT(*response, 0.5);  // within the probe's timeout

  // The default: the same targets probed (the probe counter moves), no per-target series.
  ASSERT_TRUE(webmon::test::eventually([&] {
    return series(off_port, "webmon_checker_probes_total{outcome=\"ok\"}").value_or(0) >= 2 &&
           series(off_port, "webmon_checker_probes_total{outcome=\"connect\"}").value_or(0) >= 2;
  }, 60s)) << webmon::test::http_get(off_port, "/metrics").body << off.log();
  const auto off_metrics = webmon::test::http_get(off_port, "/metrics").body;
  EXPECT_EQ(off_metrics.find("webmon_checker_target_"), std::string::npos) << off_metrics;

  // A reload without down-site: its series go, up-site's stay.
  dir.write("on.yml", file(true, on_port, false));
  on.signal(SIGHUP);
  ASSERT_TRUE(webmon::test::eventually([&] { return on.log().find("1 removed") != std::string::npos; }, 60s))
      << on.log();
  const auto after = webmon::test::http_get(on_port, "/metrics").body;
  EXPECT_EQ(after.find("target=\"down-site\""), std::string::npos) << after;
  EXPECT_NE(after.find("webmon_checker_target_up{target=\"up-site\"}"), std::string::npos) << after;
  on.signal(SIGTERM);
  off.signal(SIGTERM);
  EXPECT_EQ(on.wait_for_exit(60s), std::optional<int>(0)) << on.log();
  EXPECT_EQ(off.wait_for_exit(60s), std::optional<int>(0)) << off.log();
}

}  // namespace
