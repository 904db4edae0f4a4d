// Fault: a fleet of three real webmon-checker processes (static members of one group) while the
// stack's Kafka broker is restarted under it (`scripts/stack restart kafka`). The instances keep
// probing the shards they last held, their results wait in the producers' queues, and once the
// group has re-formed every target is probed once per due time again. A target may lose at most
// the outage plus 2 intervals of results; due times probed twice while the group re-formed are
// reported, and none may come after it settled.
#include <gtest/gtest.h>

#include <iostream>
#include <thread>

#include "fleet_support.hpp"
#include "support/http_site.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

using namespace std::chrono_literals;
using namespace webmon::test::fleet;

constexpr int kShards = 64;
constexpr std::int64_t kInterval = 1000;

TEST(CheckerFleetFault, KafkaRestartedUnderTheGroup) {
  webmon::test::HttpSite site;
  webmon::test::TempDir dir;
  FleetConfig fc;
  fc.topic = webmon::test::unique_name("fleet-fault-checks");
  fc.coordination_topic = webmon::test::unique_name("fleet-fault-shards");
  fc.group = webmon::test::unique_name("fleet-fault-group");
  fc.static_ids = true;
  fc.session_timeout_ms = 6000;
  for (int i = 0; i < 60; ++i) fc.target_urls.push_back(site.url("/f" + std::to_string(i)));
  const auto config = dir.write("config.yml", config_yaml(fc));
  Instance a(config, dir.path(), "fault-a"), b(config, dir.path(), "fault-b"), c(config, dir.path(), "fault-c");
  const std::vector<Instance*> all{&a, &b, &c};
  const auto logs = [&] {
    std::string out;
    for (const auto* i : all) out += "---- " + i->id() + "\n" + i->log();
    return out;
  };
  for (auto* i : all) i->start();
  ASSERT_TRUE(wait_settled(all, kShards, 180s)) << logs();
  const auto t_settled = now_ms();
  std::this_thread::sleep_for(5s);

  std::vector<std::size_t> log_at_down;
  for (auto* i : all) log_at_down.push_back(i->log().size());
  const auto t_down = now_ms();
  const auto [rc, out] =
      webmon::test::run_command({std::string(WEBMON_SOURCE_DIR) + "/scripts/stack", "restart", "kafka"}, 5min);
  ASSERT_EQ(rc, 0) << out;
  const auto t_up = now_ms();
  for (auto* i : all) EXPECT_TRUE(i->running()) << i->id() << " did not survive the restart\n" << i->log();
  // Each instance that lost its assignment (no coordinator for a session) has an assignment again,
  // and then the group is quiet. (While they were cut off, each kept its shards: the counts alone
  // would look settled.)
  const auto regrouped = [&] {
    for (std::size_t k = 0; k < all.size(); ++k) {
      const auto since = all[k]->log().substr(log_at_down[k]);
      const auto lost = since.rfind("the assignment was lost (");
      const auto back = since.rfind("assignment after the assignment was lost");
      if (lost != std::string::npos && (back == std::string::npos || back < lost)) return false;
    }
    return true;
  };
  ASSERT_TRUE(webmon::test::eventually(regrouped, 180s, 250ms)) << logs();
  ASSERT_TRUE(wait_settled(all, kShards, 180s)) << logs();
  const auto t_regrouped = now_ms();
  std::size_t lost_count = 0;
  for (std::size_t k = 0; k < all.size(); ++k) {
    lost_count += webmon::test::occurrences(all[k]->log().substr(log_at_down[k]), "the assignment was lost (");
  }
  std::this_thread::sleep_for(15s);
  const auto t_end = now_ms();
  for (auto* i : all) EXPECT_EQ(i->stop(), std::optional<int>(0)) << i->log();

  std::map<std::string, std::vector<std::int64_t>> series;
  for (const auto& [name, rs] : results_by_target(fc.topic, 60 * 30)) {
    for (const auto& r : rs) series[name].push_back(r.scheduled_ms);
  }
  std::vector<std::string> names;
  for (int i = 0; i < 60; ++i) names.push_back(target_name(static_cast<std::size_t>(i)));
  const auto outage = t_up - t_down;
  const auto check = check_series(series, names, t_settled, t_end, kInterval,
                                  {{"Kafka restart", t_down, t_regrouped, outage + 2 * kInterval}});
  EXPECT_TRUE(check.off_grid.empty()) << first_few(check.off_grid);
  EXPECT_TRUE(check.unexplained.empty()) << first_few(check.unexplained);
  EXPECT_TRUE(check.skipped_gaps.empty()) << first_few(check.skipped_gaps);
  EXPECT_TRUE(check.missing.empty()) << first_few(check.missing);
  std::size_t while_regrouping = 0;
  std::vector<std::pair<std::string, std::int64_t>> after;
  for (const auto& d : check.duplicates) {
    if (d.second >= t_down && d.second <= t_regrouped) ++while_regrouping;
    else after.push_back(d);
  }
  EXPECT_TRUE(after.empty()) << "due times probed twice outside the restart\n" << first_few(after);
  std::cout << "[fleet] Kafka down and up again in " << outage << " ms, group settled " << (t_regrouped - t_up)
            << " ms later: gap " << gap_summary(check.gaps.at("Kafka restart")) << "; " << while_regrouping
            << " due times probed twice while the group re-formed; " << lost_count
            << " lost assignments (kept probing)\n";
  RecordProperty("kafka_restart_gap", gap_summary(check.gaps.at("Kafka restart")));
  RecordProperty("kafka_restart_duplicates", static_cast<int>(while_regrouping));
}

}  // namespace
