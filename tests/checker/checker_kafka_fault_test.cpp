// Fault: the real webmon-checker while the stack's Kafka broker stops answering for a minute (its
// JVM stopped with SIGSTOP, continued by the test). The checker keeps probing, its producer queue
// holds the results, and afterwards the topic has one message per due probe: none lost, none twice.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

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

// The stack's broker (its pid file, never its name), stopped until thaw() or destruction.
class FrozenKafka {
 public:
  FrozenKafka() {
    const char* dir = std::getenv("WEBMON_STACK_DIR");
    const auto stack = dir ? std::filesystem::path(dir) : std::filesystem::path(WEBMON_SOURCE_DIR) / ".stack";
    std::ifstream pidfile(stack / "kafka" / "kafka.pid");
    if (!(pidfile >> pid_) || pid_ <= 1) throw std::runtime_error("no kafka.pid under " + stack.string());
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

}  // namespace
