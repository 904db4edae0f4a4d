// Integration (real Kafka from scripts/stack, the real webmon-checker binary): the checker probes
// local sites and the topic holds exactly one v1 message per due probe per target, every field
// right; an existing topic keeps its partitions; SIGHUP reloads; SIGTERM stops it cleanly, and a
// probe in flight at SIGTERM still ends and is reported; --check-config exit codes.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>

#include <boost/json.hpp>

#include "support/http_client.hpp"
#include "support/http_site.hpp"
#include "support/kafka_topic.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/common/check_result.hpp"

namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
using webmon::test::ChildProcess;
using webmon::test::TempDir;

std::string config_text(const std::string& topic, const std::string& targets, unsigned short metrics_port) {
  return "kafka:\n"
         "  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() + "\"\n"
         "  topic: " + topic + "\n"
         "  topic_partitions: 3\n"
         "checker:\n"
         "  threads: 2\n"
         "  instance_id: it-checker\n"
         "  metrics_listen: \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n"
         "targets:\n" + targets;
}

std::string target_yaml(const std::string& name, const std::string& url, const std::string& extra = "") {
  return "  - name: " + name + "\n    target: \"" + url + "\"\n    check_interval_seconds: 1\n" +
         "    timeout_seconds: 0.8\n" + extra;
}

struct Message {
  webmon::test::KafkaRecord record;
  json::object body;
};

std::map<std::string, std::vector<Message>> by_target(const std::vector<webmon::test::KafkaRecord>& records) {
  std::map<std::string, std::vector<Message>> out;
  for (const auto& r : records) {
    Message m{r, json::parse(r.value).as_object()};
    out[r.key].push_back(std::move(m));
  }
  for (auto& [k, v] : out) {
    std::sort(v.begin(), v.end(), [](const Message& a, const Message& b) {
      return json::value_to<std::string>(a.body.at("scheduled_at")) < json::value_to<std::string>(b.body.at("scheduled_at"));
    });
  }
  return out;
}

// Every due probe has exactly one message: consecutive scheduled_at differ by one interval (1 s),
// never 0 (a duplicate) and never 2 (a gap).
void expect_one_message_per_due_probe(const std::vector<Message>& ms, const std::string& name) {
  ASSERT_GE(ms.size(), 3u) << name;
  for (std::size_t i = 1; i < ms.size(); ++i) {
    const auto a = webmon::parse_rfc3339(json::value_to<std::string>(ms[i - 1].body.at("scheduled_at")));
    const auto b = webmon::parse_rfc3339(json::value_to<std::string>(ms[i].body.at("scheduled_at")));
    ASSERT_TRUE(a && b);
    const auto step = std::chrono::duration_cast<std::chrono::milliseconds>(*b - *a).count();
    EXPECT_NEAR(step, 1000, 1) << name << ": message " << i << " is " << step << " ms after the previous one";
  }
}

TEST(CheckerKafkaIntegration, OneMessagePerDueProbeWithEveryFieldRight) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("checks");
  const auto refused_port = webmon::test::free_port();
  const auto metrics_port = webmon::test::free_port();
  const auto cfg = dir.write(
      "config.yml",
      config_text(topic,
                  target_yaml("ok-site", site.url("/ok"), "    regexp: \"hello\\\\s+webmon\"\n") +
                      target_yaml("missing-page", site.url("/missing")) +
                      target_yaml("refused", "http://127.0.0.1:" + std::to_string(refused_port) + "/") +
                      target_yaml("slow", site.url("/slow")),
                  metrics_port));

  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log");
  // Let it run until every target has probed a few times.
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/ok") >= 4 && site.hits("/slow") >= 4; }, 60s))
      << checker.log();

  // What a scraper sees while it runs.
  const auto scrape = webmon::test::http_get(metrics_port, "/metrics");
  const auto& metrics = scrape.body;
  EXPECT_EQ(scrape.status, 200) << metrics;
  // Counted, not merely declared (every series is there from the start, at 0): at least three of
  // ok-site's four requests have finished, and missing-page (404) and refused have results too.
  EXPECT_GE(webmon::test::metric_value(metrics, "webmon_checker_probes_total{outcome=\"ok\"}").value_or(0), 3)
      << metrics;
  EXPECT_GE(webmon::test::metric_value(metrics, "webmon_checker_probes_total{outcome=\"not_ok\"}").value_or(0), 1)
      << metrics;
  EXPECT_GE(webmon::test::metric_value(metrics, "webmon_checker_probes_total{outcome=\"connect\"}").value_or(0), 1)
      << metrics;
  // Every finished probe's lateness is observed; what runs now is at most one probe per target.
  EXPECT_GE(webmon::test::metric_value(metrics, "webmon_checker_lateness_seconds_count").value_or(0), 6) << metrics;
  const auto in_flight = webmon::test::metric_value(metrics, "webmon_checker_probes_in_flight");
  ASSERT_TRUE(in_flight.has_value()) << metrics;
  EXPECT_GE(*in_flight, 0);
  EXPECT_LE(*in_flight, 4);
  EXPECT_EQ(webmon::test::metric_value(metrics, "webmon_checker_targets"), std::optional<double>(4)) << metrics;
  EXPECT_EQ(webmon::test::metric_value(metrics, "webmon_checker_results_dropped_total"), std::optional<double>(0));
  EXPECT_EQ(webmon::test::metric_value(metrics, "webmon_checker_delivery_errors_total"), std::optional<double>(0))
      << metrics;
  // Whole probes timed (flushed into the histogram once a second, so it may lag the counters
  // above): at least the six of the lateness count's first seconds, each one a message on the
  // topic read below, and taking time.
  const auto durations = webmon::test::metric_value(metrics, "webmon_checker_probe_duration_seconds_count");
  EXPECT_GE(durations.value_or(0), 6) << metrics;
  EXPECT_GT(webmon::test::metric_value(metrics, "webmon_checker_probe_duration_seconds_sum").value_or(0), 0.0)
      << metrics;

  checker.signal(SIGTERM);
  const auto status = checker.wait_for_exit(60s);
  ASSERT_TRUE(status.has_value()) << "webmon-checker did not stop on SIGTERM\n" << checker.log();
  EXPECT_EQ(*status, 0) << checker.log();

  // The broker creates no topic by itself (scripts/stack): the checker made it, with
  // kafka.topic_partitions (3) partitions.
  EXPECT_EQ(webmon::test::partition_count(topic), 3);
  const auto records = webmon::test::read_topic(topic, 12);
  const auto msgs = by_target(records);
  ASSERT_EQ(msgs.size(), 4u) << checker.log();
  EXPECT_LE(durations.value_or(0), static_cast<double>(records.size())) << "more probes timed than results sent";
  for (const auto& [name, ms] : msgs) {
    expect_one_message_per_due_probe(ms, name);
    for (const auto& m : ms) {
      EXPECT_EQ(m.record.headers.at("schema"), "webmon.check.v1");
      EXPECT_EQ(m.body.at("schema_version").as_int64(), 1);
      EXPECT_EQ(json::value_to<std::string>(m.body.at("target")), name);
      EXPECT_EQ(json::value_to<std::string>(m.body.at("checker")), "it-checker");
      EXPECT_GE(json::value_to<std::string>(m.body.at("started_at")), json::value_to<std::string>(m.body.at("scheduled_at")));
      // What the writer will decode is what the checker sent.
      const auto decoded = webmon::decode_check_result(m.record.value);
      ASSERT_TRUE(std::holds_alternative<webmon::CheckResult>(decoded)) << m.record.value;
    }
  }
  for (const auto& m : msgs.at("ok-site")) {
    EXPECT_EQ(json::value_to<std::string>(m.body.at("url")), site.url("/ok"));
    EXPECT_EQ(m.body.at("http_status").as_int64(), 200);
    EXPECT_EQ(m.body.at("regexp_match"), json::value(true));
    EXPECT_EQ(m.body.at("ok"), json::value(true));
    EXPECT_TRUE(m.body.at("error").is_null());
    EXPECT_GT(m.body.at("http_response_time").to_number<double>(), 0.0);
    EXPECT_EQ(m.body.at("body_bytes").to_number<std::int64_t>(), 25);
    EXPECT_EQ(json::value_to<std::string>(m.body.at("peer")), "127.0.0.1:" + std::to_string(site.port()));
    EXPECT_GE(m.body.at("timings").at("total").to_number<double>(), m.body.at("http_response_time").to_number<double>());
  }
  for (const auto& m : msgs.at("missing-page")) {
    EXPECT_EQ(m.body.at("http_status").as_int64(), 404);
    EXPECT_EQ(m.body.at("ok"), json::value(false));
    EXPECT_TRUE(m.body.at("error").is_null()) << "a 404 is a response, not a failure to get one";
    EXPECT_TRUE(m.body.at("regexp_match").is_null());
  }
  for (const auto& m : msgs.at("refused")) {
    EXPECT_EQ(json::value_to<std::string>(m.body.at("error")), "connect");
    EXPECT_TRUE(m.body.at("http_status").is_null());
    EXPECT_TRUE(m.body.at("http_response_time").is_null());
    EXPECT_EQ(m.body.at("ok"), json::value(false));
    EXPECT_FALSE(json::value_to<std::string>(m.body.at("error_detail")).empty());
  }
  for (const auto& m : msgs.at("slow")) {
    EXPECT_EQ(json::value_to<std::string>(m.body.at("error")), "timeout");
    EXPECT_EQ(m.body.at("ok"), json::value(false));
  }

  // Every real message validates against the published JSON Schema.
  std::string all;
  for (const auto& r : records) all += r.value + "\n";
  const auto lines = dir.write("messages.jsonl", all);
  const auto [vrc, vout] = webmon::test::run_command(
      {"sh", "-c", "python3 '" WEBMON_SOURCE_DIR "/tests/common/validate_messages.py' '" WEBMON_SOURCE_DIR
                   "/docs/message-schema.v1.json' < '" + lines.string() + "'"});
  EXPECT_EQ(vrc, 0) << vout;
}

// A topic that exists already is used as it is: made here with 1 partition, it still has 1 after a
// checker configured with topic_partitions: 3 ran on it, and the checker's results are on it.
TEST(CheckerKafkaIntegration, AnExistingTopicIsLeftWithItsPartitions) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("existing");
  webmon::test::create_topic(topic, 1);
  ASSERT_EQ(webmon::test::partition_count(topic), 1);
  const auto cfg = dir.write("config.yml", config_text(topic, target_yaml("kept", site.url("/kept")), webmon::test::free_port()));
  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/kept") >= 2; }, 60s)) << checker.log();
  checker.signal(SIGTERM);
  EXPECT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();
  EXPECT_EQ(webmon::test::partition_count(topic), 1) << checker.log();
  const auto records = webmon::test::read_topic(topic, 2, 1s);  // all there: the checker stopped cleanly
  ASSERT_GE(records.size(), 2u) << checker.log();
  for (const auto& r : records) {
    EXPECT_EQ(r.partition, 0);
    EXPECT_EQ(r.key, "kept");
    EXPECT_EQ(r.headers.at("schema"), "webmon.check.v1");
  }
}

TEST(CheckerKafkaIntegration, SighupReloadsAValidConfigAndKeepsTheOldOneOnErrors) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("reload");
  const auto metrics_port = webmon::test::free_port();
  const auto cfg = dir.write("config.yml", config_text(topic, target_yaml("first", site.url("/first")), metrics_port));
  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/first") >= 2; }, 60s)) << checker.log();

  // A broken file: every error logged, the old targets keep running.
  dir.write("config.yml", config_text(topic, target_yaml("first", site.url("/first")) +
                                                 "  - name: broken\n    target: \"ftp://nowhere\"\n"
                                                 "    check_interval_seconds: -1\n",
                                      metrics_port));
  checker.signal(SIGHUP);
  ASSERT_TRUE(webmon::test::eventually([&] { return checker.log().find("reload failed") != std::string::npos; }, 30s))
      << checker.log();
  const auto log = checker.log();
  EXPECT_NE(log.find("config.yml:"), std::string::npos) << "errors name file:line:col\n" << log;
  EXPECT_NE(log.find("check_interval_seconds"), std::string::npos) << log;
  const int before = site.hits("/first");
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/first") >= before + 2; }, 30s))
      << "the old config stopped running\n" << checker.log();

  // A valid file adds a target.
  dir.write("config.yml", config_text(topic, target_yaml("first", site.url("/first")) +
                                                 target_yaml("second", site.url("/second")),
                                      metrics_port));
  checker.signal(SIGHUP);
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/second") >= 2; }, 30s)) << checker.log();
  const auto metrics = webmon::test::http_get(metrics_port, "/metrics").body;
  EXPECT_NE(metrics.find("webmon_checker_config_reloads_total{result=\"failed\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("webmon_checker_config_reloads_total{result=\"ok\"} 1"), std::string::npos) << metrics;

  // A valid file that removes "first" and points "second" at another URL: once the reload is
  // logged, no probe of "first" is scheduled any more, and "second" probes the new URL.
  dir.write("config.yml", config_text(topic, target_yaml("second", site.url("/second-moved")), metrics_port));
  checker.signal(SIGHUP);
  ASSERT_TRUE(webmon::test::eventually(
      [&] { return checker.log().find("(0 added, 1 changed, 1 removed)") != std::string::npos; }, 30s))
      << checker.log();
  const auto reloaded_at = std::chrono::system_clock::now();
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/second-moved") >= 2; }, 30s)) << checker.log();

  checker.signal(SIGTERM);
  EXPECT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();
  const auto msgs = by_target(webmon::test::read_topic(topic, 4));
  ASSERT_TRUE(msgs.count("first") && msgs.count("second"));
  expect_one_message_per_due_probe(msgs.at("first"), "first");  // the reloads before did not disturb it
  for (const auto& m : msgs.at("first")) {
    const auto at = webmon::parse_rfc3339(json::value_to<std::string>(m.body.at("scheduled_at")));
    ASSERT_TRUE(at);
    EXPECT_LT(*at, reloaded_at) << "a probe of the removed target scheduled after the reload: " << m.record.value;
  }
  std::size_t moved = 0;
  for (const auto& m : msgs.at("second")) {
    const auto url = json::value_to<std::string>(m.body.at("url"));
    const auto at = webmon::parse_rfc3339(json::value_to<std::string>(m.body.at("scheduled_at")));
    ASSERT_TRUE(at);
    if (url == site.url("/second-moved")) ++moved;
    else EXPECT_LT(*at, reloaded_at) << "the changed target probed its old URL after the reload: " << m.record.value;
  }
  EXPECT_GE(moved, 2u);
}

// Graceful stop (docs/ARCHITECTURE.md, Shutdown): a probe in flight at SIGTERM ends and its result
// is flushed to Kafka before the checker exits 0. The site answers /slow 5 s after the request,
// well inside the target's 8 s timeout; SIGTERM goes once the site has the request.
TEST(CheckerKafkaIntegration, AProbeInFlightAtSigtermStillEndsAndIsReported) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("stop");
  const auto cfg = dir.write(
      "config.yml", config_text(topic,
                                "  - name: in-flight\n    target: \"" + site.url("/slow") +
                                    "\"\n    check_interval_seconds: 20\n    timeout_seconds: 8\n",
                                webmon::test::free_port()));
  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/slow") >= 1; }, 60s, 10ms)) << checker.log();
  const auto stopped_at = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  checker.signal(SIGTERM);
  const auto status = checker.wait_for_exit(60s);
  ASSERT_TRUE(status.has_value()) << "webmon-checker did not stop on SIGTERM\n" << checker.log();
  EXPECT_EQ(*status, 0) << checker.log();
  EXPECT_EQ(site.hits("/slow"), 1) << "a probe was started after SIGTERM";
  EXPECT_EQ(checker.log().find("abandoned"), std::string::npos) << checker.log();

  const auto records = webmon::test::read_topic(topic, 1, 1s);  // all there: the checker stopped cleanly
  ASSERT_EQ(records.size(), 1u) << checker.log();
  const auto body = json::parse(records[0].value).as_object();
  EXPECT_EQ(records[0].key, "in-flight");
  const auto started = webmon::parse_rfc3339(json::value_to<std::string>(body.at("started_at")));
  ASSERT_TRUE(started.has_value());
  EXPECT_LE(*started, stopped_at) << "the reported probe began before SIGTERM: " << records[0].value;
  // The whole answer, which the site sends only 5 s after the request: the probe ran to its end.
  EXPECT_EQ(body.at("http_status").as_int64(), 200) << records[0].value;
  EXPECT_EQ(body.at("ok"), json::value(true)) << records[0].value;
  EXPECT_TRUE(body.at("error").is_null()) << records[0].value;
  EXPECT_EQ(body.at("body_bytes").to_number<std::int64_t>(), 4) << records[0].value;  // "root"
  EXPECT_GE(body.at("http_response_time").to_number<double>(), 4.9) << records[0].value;
}

TEST(CheckerCommandLine, CheckConfigExitsZeroForValidAndTwoForInvalid) {
  TempDir dir;
  const auto good = dir.write("good.yml", config_text("t", target_yaml("a", "http://127.0.0.1:1/"), 0));
  auto [rc, out] = webmon::test::run_command({WEBMON_CHECKER_BIN, "--check-config", "--config", good.string()});
  EXPECT_EQ(rc, 0) << out;

  const auto bad = dir.write("bad.yml", "kafka:\n  bootstrap_servers: \"127.0.0.1:9092\"\n"
                                        "targets:\n  - name: a\n    target: \"gopher://x\"\n"
                                        "    check_interval_seconds: 0\n    colour: blue\n");
  std::tie(rc, out) = webmon::test::run_command({WEBMON_CHECKER_BIN, "--check-config", "--config", bad.string()});
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("bad.yml:5:13"), std::string::npos) << "the URL error names line 5, column 13\n" << out;
  EXPECT_NE(out.find("targets[0].check_interval_seconds"), std::string::npos) << out;
  EXPECT_NE(out.find("colour"), std::string::npos) << out;

  std::tie(rc, out) = webmon::test::run_command({WEBMON_CHECKER_BIN, "--version"});
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("webmon-checker "), std::string::npos);
  std::tie(rc, out) = webmon::test::run_command({WEBMON_CHECKER_BIN, "--no-such-flag"});
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("usage:"), std::string::npos);
}

}  // namespace
