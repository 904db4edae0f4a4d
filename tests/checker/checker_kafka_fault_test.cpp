// Fault: the real webmon-checker while the stack's Kafka broker stops answering for a minute (its
// JVM stopped with SIGSTOP, continued by the test). The checker keeps probing, its producer queue
// holds the results, and afterwards the topic has one message per due probe: none lost, none twice.
// A checker started while the broker is down (stopped by its pid file) does the same and creates
// its topic once the broker is back. With a small producer queue (kafka.properties), results that
// find it full count in results_dropped_total; with a short message.timeout.ms, results that time
// out count in delivery_errors_total: each exactly the due probes the topic lacks.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <cerrno>

#include <boost/json.hpp>
#include <gtest/gtest.h>

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

// The stack's broker's pid, from its pid file (never by its name).
pid_t kafka_pid() {
  const char* dir = std::getenv("WEBMON_STACK_DIR");
  const auto stack = dir ? std::filesystem::path(dir) : std::filesystem::path(WEBMON_SOURCE_DIR) / ".stack";
  std::ifstream pidfile(stack / "kafka" / "kafka.pid");
  pid_t pid = 0;
  if (!(pidfile >> pid) || pid <= 1) throw std::runtime_error("no kafka.pid under " + stack.string());
  return pid;
}

// The stack's broker, stopped until thaw() or destruction.
class FrozenKafka {
 public:
  FrozenKafka() : pid_(kafka_pid()) {
    if (::kill(pid_, SIGSTOP) != 0) throw std::runtime_error("SIGSTOP failed");
  }
  ~FrozenKafka() { thaw(); }
  FrozenKafka(const FrozenKafka&) = delete;
  FrozenKafka& operator=(const FrozenKafka&) = delete;
  void thaw() {
    if (pid_ > 1) ::kill(pid_, SIGCONT);
    pid_ = 0;
  }

 private:
  pid_t pid_ = 0;
};

// The stack's broker shut down (SIGTERM by its pid file, as `scripts/stack` does) until start() or
// destruction, which run `scripts/stack restart kafka` (nothing to stop, so it only starts it).
class StoppedKafka {
 public:
  StoppedKafka() {
    const auto pid = kafka_pid();
    if (::kill(pid, SIGTERM) != 0) throw std::runtime_error("SIGTERM to the broker failed");
    if (!webmon::test::eventually([&] { return ::kill(pid, 0) != 0 && errno == ESRCH; }, 90s, 200ms)) {
      throw std::runtime_error("the broker did not stop within 90 s");
    }
    stopped_ = true;
  }
  ~StoppedKafka() {
    if (stopped_) start();
  }
  StoppedKafka(const StoppedKafka&) = delete;
  StoppedKafka& operator=(const StoppedKafka&) = delete;
  std::pair<int, std::string> start() {
    stopped_ = false;
    return webmon::test::run_command({std::string(WEBMON_SOURCE_DIR) + "/scripts/stack", "restart", "kafka"}, 3min);
  }

 private:
  bool stopped_ = false;
};

std::string fault_config(const std::string& topic, const std::vector<std::string>& names, const webmon::test::HttpSite& site,
                         unsigned short metrics_port, const std::string& kafka_extra = "") {
  std::string targets;
  for (const auto& n : names) {
    targets += "  - name: " + n + "\n    target: \"" + site.url("/" + n) +
               "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.8\n";
  }
  return "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() + "\"\n  topic: " + topic +
         "\n  topic_partitions: 2\n" + kafka_extra + "checker:\n  metrics_listen: \"127.0.0.1:" +
         std::to_string(metrics_port) + "\"\ntargets:\n" + targets;
}

// The sum of a counter's series (webmon_checker_probes_total{outcome=...}) in one scrape.
double sum_series(const std::string& metrics, const std::string& name) {
  double sum = 0;
  std::size_t at = 0;
  while ((at = metrics.find("\n" + name + "{", at)) != std::string::npos) {
    const auto end = metrics.find('\n', at + 1);
    const auto line = metrics.substr(at + 1, end - at - 1);
    sum += std::stod(line.substr(line.rfind(' ') + 1));
    at = end;
  }
  return sum;
}

// Each target's messages by due time (scheduled_at), sorted.
std::map<std::string, std::vector<webmon::SysMillis>> due_times(const std::vector<webmon::test::KafkaRecord>& records) {
  std::map<std::string, std::vector<webmon::SysMillis>> due;
  for (const auto& r : records) {
    const auto body = json::parse(r.value).as_object();
    const auto at = webmon::parse_rfc3339(json::value_to<std::string>(body.at("scheduled_at")));
    if (!at) throw std::runtime_error("no scheduled_at in " + r.value);
    due[r.key].push_back(*at);
  }
  for (auto& [name, ts] : due) std::sort(ts.begin(), ts.end());
  return due;
}

// The due probes (one a second) between a target's first and last message that have none; a
// duplicate (0 ms apart) is an error of its own.
std::size_t missing_due_probes(const std::vector<webmon::SysMillis>& ts, const std::string& name) {
  std::size_t missing = 0;
  for (std::size_t i = 1; i < ts.size(); ++i) {
    const auto step = std::chrono::duration_cast<std::chrono::milliseconds>(ts[i] - ts[i - 1]).count();
    const auto seconds = (step + 500) / 1000;
    EXPECT_GE(seconds, 1) << name << ": message " << i << " repeats the due time of the one before";
    EXPECT_NEAR(step, seconds * 1000, 1) << name << ": message " << i << " is " << step << " ms after the previous one";
    if (seconds > 1) missing += static_cast<std::size_t>(seconds - 1);
  }
  return missing;
}

TEST(CheckerKafkaFault, BrokerFrozenForAMinuteLosesNoResultAndRepeatsNone) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("checks-fault");
  const auto metrics_port = webmon::test::free_port();
  std::string targets;
  const std::vector<std::string> names = {"frozen-a", "frozen-b", "frozen-c"};
  for (const auto& n : names) {
    targets += "  - name: " + n + "\n    target: \"" + site.url("/" + n) +
               "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.8\n";
  }
  const auto cfg = dir.write("config.yml", "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() +
                                               "\"\n  topic: " + topic + "\n  topic_partitions: 1\n" +
                                               "checker:\n  metrics_listen: \"127.0.0.1:" +
                                               std::to_string(metrics_port) + "\"\ntargets:\n" + targets);
  ChildProcess checker({WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log");
  const auto delivered = [&] {
    return webmon::test::scrape_metric(metrics_port, "webmon_checker_results_delivered_total").value_or(-1);
  };
  const auto queued = [&] {
    return webmon::test::scrape_metric(metrics_port, "webmon_checker_kafka_queue_messages").value_or(-1);
  };
  ASSERT_TRUE(webmon::test::eventually([&] { return delivered() >= 6; }, 60s)) << checker.log();

  double most_queued = 0;
  std::size_t hits_at_freeze = 0;
  std::size_t hits_at_thaw = 0;
  {
    FrozenKafka frozen;
    hits_at_freeze = site.hits("/frozen-a");
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until) {
      most_queued = std::max(most_queued, queued());
      std::this_thread::sleep_for(1s);
    }
    hits_at_thaw = site.hits("/frozen-a");
    EXPECT_TRUE(checker.running()) << checker.log();
    frozen.thaw();
  }
  // Probing went on (about one probe a second), and what it found waited in the producer's queue.
  EXPECT_GE(hits_at_thaw - hits_at_freeze, 40u);
  EXPECT_GE(most_queued, 40.0) << checker.log();
  EXPECT_TRUE(webmon::test::eventually([&] { return queued() == 0; }, 120s)) << checker.log();
  EXPECT_EQ(webmon::test::scrape_metric(metrics_port, "webmon_checker_results_dropped_total"), std::optional<double>(0));
  checker.signal(SIGTERM);
  EXPECT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();

  std::map<std::string, std::vector<webmon::SysMillis>> due;
  for (const auto& r : webmon::test::read_topic(topic, 3 * 60)) {
    const auto body = json::parse(r.value).as_object();
    const auto at = webmon::parse_rfc3339(json::value_to<std::string>(body.at("scheduled_at")));
    ASSERT_TRUE(at.has_value());
    due[r.key].push_back(*at);
  }
  for (const auto& n : names) {
    auto& ts = due[n];
    std::sort(ts.begin(), ts.end());
    EXPECT_GE(ts.size(), 60u) << n;
    for (std::size_t i = 1; i < ts.size(); ++i) {
      const auto step = std::chrono::duration_cast<std::chrono::milliseconds>(ts[i] - ts[i - 1]).count();
      // One message per due probe: never 0 ms (a duplicate), never 2 s (a gap).
      EXPECT_NEAR(step, 1000, 1) << n << ": message " << i << " is " << step << " ms after the previous one";
    }
  }
}

// Started while the broker is down: it probes as ever, its results wait in the producer's queue,
// /readyz says not ready, and once a broker answers it creates its topic (with topic_partitions)
// and delivers every result: each probe the site saw before the broker came back is on the topic,
// and the topic has one message per due probe, none lost, none twice.
TEST(CheckerKafkaFault, StartedWhileKafkaIsDownCreatesItsTopicOnceABrokerAnswersAndLosesNothing) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("checks-down");
  const auto metrics_port = webmon::test::free_port();
  const std::vector<std::string> names = {"down-a", "down-b", "down-c"};
  const auto cfg = dir.write("config.yml", fault_config(topic, names, site, metrics_port));
  const auto metric = [&](const std::string& series) {
    return webmon::test::scrape_metric(metrics_port, series).value_or(-1);
  };

  std::optional<ChildProcess> checker;
  std::map<std::string, int> hits_before_broker;
  webmon::SysMillis broker_back{};
  {
    StoppedKafka stopped;
    checker.emplace(std::vector<std::string>{WEBMON_CHECKER_BIN, "--config", cfg.string()}, dir.path() / "checker.log");
    // About ten seconds of probes (three targets, one a second), all of them queued.
    ASSERT_TRUE(webmon::test::eventually([&] { return metric("webmon_checker_kafka_queue_messages") >= 30; }, 90s))
        << checker->log();
    EXPECT_TRUE(checker->running()) << checker->log();
    EXPECT_EQ(metric("webmon_checker_results_delivered_total"), 0);
    EXPECT_EQ(webmon::test::http_get(metrics_port, "/readyz").status, 503);
    for (const auto& n : names) hits_before_broker[n] = site.hits("/" + n);
    broker_back = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    const auto [rc, out] = stopped.start();
    ASSERT_EQ(rc, 0) << out;
  }
  ASSERT_TRUE(webmon::test::eventually([&] { return metric("webmon_checker_results_delivered_total") >= 30; }, 120s))
      << checker->log();
  EXPECT_TRUE(webmon::test::eventually([&] { return webmon::test::http_get(metrics_port, "/readyz").status == 200; }, 60s));
  EXPECT_TRUE(webmon::test::eventually([&] { return metric("webmon_checker_kafka_queue_messages") == 0; }, 60s))
      << checker->log();
  EXPECT_EQ(metric("webmon_checker_results_dropped_total"), 0);
  EXPECT_EQ(metric("webmon_checker_delivery_errors_total"), 0);
  checker->signal(SIGTERM);
  EXPECT_EQ(checker->wait_for_exit(60s), std::optional<int>(0)) << checker->log();

  EXPECT_EQ(webmon::test::partition_count(topic), 2) << "the checker made its topic with topic_partitions";
  const auto due = due_times(webmon::test::read_topic(topic, 30));
  for (const auto& n : names) {
    ASSERT_TRUE(due.count(n)) << n << "\n" << checker->log();
    const auto& ts = due.at(n);
    EXPECT_EQ(missing_due_probes(ts, n), 0u) << n;
    const auto before = std::count_if(ts.begin(), ts.end(), [&](auto t) { return t < broker_back; });
    // Every probe the site answered before the broker was started again was due before that.
    EXPECT_GE(before, hits_before_broker[n]) << n << ": results of the time without a broker are missing";
  }
}

// The real checker on the fault stack probing three targets every second, with extra
// kafka.properties, seen delivering before the fault; its /metrics read by series.
class CheckerWithProperties {
 public:
  CheckerWithProperties(const std::string& topic_prefix, std::vector<std::string> target_names, const std::string& properties)
      : topic(webmon::test::unique_name(topic_prefix)),
        metrics_port(webmon::test::free_port()),
        names(std::move(target_names)),
        checker({WEBMON_CHECKER_BIN, "--config",
                 dir.write("config.yml", fault_config(topic, names, site, metrics_port, "  properties:\n" + properties))
                     .string()},
                dir.path() / "checker.log") {
    EXPECT_TRUE(webmon::test::eventually([&] { return metric("webmon_checker_results_delivered_total") >= 6; }, 60s))
        << checker.log();
  }
  double metric(const std::string& series) const { return webmon::test::scrape_metric(metrics_port, series).value_or(-1); }
  // After the fault: the producer queue drains, `after_drain` runs, and six more results are
  // delivered. Returns what had been delivered before those six.
  double settle(const std::function<void()>& after_drain) {
    EXPECT_TRUE(webmon::test::eventually([&] { return metric("webmon_checker_kafka_queue_messages") == 0; }, 120s))
        << checker.log();
    if (after_drain) after_drain();
    const auto delivered = metric("webmon_checker_results_delivered_total");
    EXPECT_TRUE(webmon::test::eventually([&] { return metric("webmon_checker_results_delivered_total") >= delivered + 6; }, 60s))
        << checker.log();
    return delivered;
  }
  // Stops the checker (exit 0) and counts the due probes the topic lacks, reading at least the
  // results delivered by then: the whole topic, not its first part.
  std::size_t stop_and_count_missing(double delivered) {
    checker.signal(SIGTERM);
    EXPECT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();
    const auto records = webmon::test::read_topic(topic, static_cast<std::size_t>(delivered) + 6);
    EXPECT_GE(static_cast<double>(records.size()), delivered + 6) << checker.log();
    std::size_t missing = 0;
    for (const auto& [name, ts] : due_times(records)) missing += missing_due_probes(ts, name);
    return missing;
  }

  webmon::test::HttpSite site;
  TempDir dir;
  const std::string topic;
  const unsigned short metrics_port;
  const std::vector<std::string> names;
  ChildProcess checker;
};

// A full producer queue (kafka.properties queue.buffering.max.messages: 10) while the broker is
// frozen: the results that find it full are dropped and counted, and results_dropped_total is
// exactly the number of due probes the topic lacks.
TEST(CheckerKafkaFault, ResultsDroppedTotalCountsTheResultsAFullQueueLost) {
  CheckerWithProperties c("checks-full", {"full-a", "full-b", "full-c"}, "    queue.buffering.max.messages: \"10\"\n");
  EXPECT_EQ(c.metric("webmon_checker_results_dropped_total"), 0);
  {
    FrozenKafka frozen;
    ASSERT_TRUE(webmon::test::eventually([&] { return c.metric("webmon_checker_results_dropped_total") >= 15; }, 90s))
        << c.checker.log();
    EXPECT_LE(c.metric("webmon_checker_kafka_queue_messages"), 10);
    EXPECT_TRUE(c.checker.running()) << c.checker.log();
  }
  // Nothing is dropped once the broker answers again: the count after the drain is the final one.
  double dropped = -1;
  const auto delivered = c.settle([&] { dropped = c.metric("webmon_checker_results_dropped_total"); });
  EXPECT_EQ(c.metric("webmon_checker_results_dropped_total"), dropped);
  EXPECT_EQ(c.metric("webmon_checker_delivery_errors_total"), 0);
  EXPECT_EQ(c.metric("webmon_checker_probes_skipped_total"), 0);
  EXPECT_EQ(static_cast<double>(c.stop_and_count_missing(delivered)), dropped) << c.checker.log();
}

// A short kafka.properties message.timeout.ms (2 s) while the broker is frozen: the results that
// time out come back as delivery reports with an error, and delivery_errors_total counts them:
// at least the due probes the topic lacks (a timed-out result that was in flight may still have
// been stored), and no more than the results that were sent.
TEST(CheckerKafkaFault, DeliveryErrorsTotalCountsTheResultsThatTimedOut) {
  CheckerWithProperties c("checks-timeout", {"late-a", "late-b", "late-c"}, "    message.timeout.ms: \"2000\"\n");
  EXPECT_EQ(c.metric("webmon_checker_delivery_errors_total"), 0);
  {
    FrozenKafka frozen;
    ASSERT_TRUE(webmon::test::eventually([&] { return c.metric("webmon_checker_delivery_errors_total") >= 15; }, 90s))
        << c.checker.log();
    EXPECT_TRUE(c.checker.running()) << c.checker.log();
  }
  const auto delivered = c.settle({});
  // One scrape: each report is of a probe counted before it, so reports never outnumber probes.
  const auto metrics = webmon::test::http_get(c.metrics_port, "/metrics").body;
  const auto errors = webmon::test::metric_value(metrics, "webmon_checker_delivery_errors_total").value_or(-1);
  EXPECT_LE(webmon::test::metric_value(metrics, "webmon_checker_results_delivered_total").value_or(-1) + errors,
            sum_series(metrics, "webmon_checker_probes_total")) << metrics;
  EXPECT_EQ(webmon::test::metric_value(metrics, "webmon_checker_results_dropped_total"), std::optional<double>(0));
  EXPECT_EQ(webmon::test::metric_value(metrics, "webmon_checker_probes_skipped_total"), std::optional<double>(0));
  const auto missing = c.stop_and_count_missing(delivered);
  EXPECT_GE(missing, 1u) << "results timed out, yet none is missing from the topic";
  EXPECT_GE(errors, static_cast<double>(missing)) << c.checker.log();
  EXPECT_GE(webmon::test::occurrences(c.checker.log(), "kafka: delivery failed"), 1u) << c.checker.log();
}

}  // namespace
