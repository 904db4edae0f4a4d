// Integration (real Kafka from scripts/stack, real webmon-checker processes): a fleet of checkers
// in one consumer group shares the targets by shard. What a user would look at: the results on the
// topic (every due time of every target exactly once, per target and scheduled_at), each
// instance's /metrics (shards and targets owned) and its log (the shards it owns). An instance
// killed or stopped hands its shards over within the bounds of the issue (session timeout + 2
// intervals after SIGKILL, 2 intervals + 5 s after SIGTERM), a static member restarted within the
// session timeout gets its own shards back and nothing moves, and two locations each probe every
// due time once (on the topic, in check_results through the real writer, and in `webmon stats`).
#include <gtest/gtest.h>

#include <csignal>
#include <iostream>
#include <thread>

#include <boost/json.hpp>

#include "fleet_support.hpp"
#include "support/database.hpp"
#include "support/http_site.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

using namespace std::chrono_literals;
using namespace webmon::test::fleet;
using webmon::test::TempDir;

constexpr int kShards = 64;            // checker.shards' default: the coordination topic is created with it
constexpr std::int64_t kInterval = 1000;
constexpr int kSessionMs = 6000;       // the broker's group.min.session.timeout.ms (Kafka's default) allows it

std::vector<std::string> names(std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(target_name(i));
  return out;
}

FleetConfig fleet(webmon::test::HttpSite& site, std::size_t targets) {
  FleetConfig c;
  c.topic = webmon::test::unique_name("fleet-checks");
  c.coordination_topic = webmon::test::unique_name("fleet-shards");
  c.group = webmon::test::unique_name("fleet-group");
  c.session_timeout_ms = kSessionMs;
  for (std::size_t i = 0; i < targets; ++i) c.target_urls.push_back(site.url("/t" + std::to_string(i)));
  return c;
}

std::string logs(const std::vector<Instance*>& instances) {
  std::string out;
  for (const auto* i : instances) {
    const auto log = i->log();
    out += "---- " + i->id() + " (last 4000 bytes)\n" + (log.size() > 4000 ? log.substr(log.size() - 4000) : log);
  }
  return out;
}

std::map<std::string, std::vector<std::int64_t>> scheduled(const std::map<std::string, std::vector<Result>>& rs) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const auto& [name, v] : rs) {
    for (const auto& r : v) out[name].push_back(r.scheduled_ms);
  }
  return out;
}

// Every (target, scheduled_at) at most once over the whole run, start and stops included.
std::vector<std::pair<std::string, std::int64_t>> all_duplicates(const std::map<std::string, std::vector<std::int64_t>>& s) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (auto [name, ts] : s) {
    std::sort(ts.begin(), ts.end());
    for (std::size_t i = 1; i < ts.size(); ++i) {
      if (ts[i] == ts[i - 1]) out.emplace_back(name, ts[i]);
    }
  }
  return out;
}

// What the instances counted as skipped (webmon_checker_probes_skipped_total) while they ran in
// the window: read when it opens and again just before each is stopped or killed.
class SkipCount {
 public:
  void open(const std::vector<Instance*>& instances) {
    for (auto* i : instances) total_ -= skipped(*i);
  }
  void close(const Instance& i) { total_ += skipped(i); }
  double total() const { return total_; }

 private:
  static double skipped(const Instance& i) { return i.metric("webmon_checker_probes_skipped_total").value_or(0); }
  double total_ = 0;
};

// Exactly once, on the grid, every gap explained: by an event within its bound, or else by due
// times the checkers themselves counted as skipped (none is lost without a trace).
void expect_clean(const SeriesCheck& c, const std::string& what, const SkipCount& skips) {
  EXPECT_TRUE(c.duplicates.empty()) << what << ": due times probed twice\n" << first_few(c.duplicates);
  EXPECT_TRUE(c.off_grid.empty()) << what << ": steps off the 1 s grid\n" << first_few(c.off_grid);
  EXPECT_TRUE(c.unexplained.empty()) << what << ": gaps\n" << first_few(c.unexplained);
  EXPECT_LE(static_cast<double>(c.skipped_slots), skips.total())
      << what << ": " << c.skipped_slots << " due times missing with no event, more than the " << skips.total()
      << " the checkers counted as skipped\n" << first_few(c.skipped_gaps);
  if (c.skipped_slots > 0) {
    std::cout << "[fleet] " << what << ": " << c.skipped_slots << " due times skipped (counted by the checkers: "
              << skips.total() << "), e.g.\n" << first_few(c.skipped_gaps, 3);
  }
  EXPECT_TRUE(c.missing.empty()) << what << ": targets without results\n" << first_few(c.missing);
}

TEST(CheckerFleet, ThreeInstancesProbeEveryDueTimeOnceAndTakeOverFromAKilledAndAStoppedOne) {
  webmon::test::HttpSite site;
  TempDir dir;
  const auto fc = fleet(site, 300);
  const auto config = dir.write("config.yml", config_yaml(fc));
  Instance a(config, dir.path(), "a"), b(config, dir.path(), "b"), c(config, dir.path(), "c");
  const std::vector<Instance*> all{&a, &b, &c};
  for (auto* i : all) i->start();
  ASSERT_TRUE(wait_settled(all, kShards, 180s)) << logs(all);
  const auto t_settled = now_ms();
  SkipCount skips;
  skips.open(all);

  // Each instance has about a third of the shards, and between them every target once.
  double targets_owned = 0;
  for (auto* i : all) {
    const auto owned = i->metric("webmon_checker_shards_owned").value_or(-1);
    EXPECT_GE(owned, 16) << i->id() << " owns too few of 64 shards\n" << logs(all);
    EXPECT_LE(owned, 27) << i->id() << " owns too many of 64 shards\n" << logs(all);
    EXPECT_EQ(i->metric("webmon_checker_shards"), std::optional<double>(kShards));
    EXPECT_GE(i->metric("webmon_checker_rebalances_total").value_or(0), 1);
    EXPECT_GT(i->metric("webmon_checker_last_rebalance_timestamp_seconds").value_or(0), 1.7e9);
    EXPECT_EQ(i->metric("webmon_checker_targets"), std::optional<double>(300));
    targets_owned += i->metric("webmon_checker_targets_owned").value_or(0);
    const auto log = i->log();
    EXPECT_NE(log.find("targets: 300 (digest "), std::string::npos) << log;
    EXPECT_NE(log.find("group " + fc.group + ": "), std::string::npos) << log;
  }
  EXPECT_EQ(targets_owned, 300) << logs(all);
  // One config, one digest: the three logged the same one.
  const auto digest = [](const std::string& log) {
    const auto at = log.find("(digest ");
    return at == std::string::npos ? std::string() : log.substr(at + 8, 16);
  };
  EXPECT_EQ(digest(a.log()), digest(b.log()));
  EXPECT_EQ(digest(a.log()), digest(c.log()));

  std::this_thread::sleep_for(30s);
  skips.close(c);
  const auto t_kill = now_ms();
  c.kill();
  ASSERT_TRUE(wait_settled({&a, &b}, kShards, 120s)) << logs(all);
  std::this_thread::sleep_for(10s);

  skips.close(b);
  const auto t_term = now_ms();
  EXPECT_EQ(b.stop(), std::optional<int>(0)) << b.log();
  ASSERT_TRUE(wait_settled({&a}, kShards, 120s)) << logs(all);
  std::this_thread::sleep_for(10s);
  const auto t_end = now_ms();
  skips.close(a);
  EXPECT_EQ(a.stop(), std::optional<int>(0)) << a.log();
  EXPECT_NE(b.log().find("group " + fc.group + ": leaving"), std::string::npos) << b.log();

  const auto series = scheduled(results_by_target(fc.topic, 300 * 60));
  const auto dups = all_duplicates(series);
  EXPECT_TRUE(dups.empty()) << "due times probed twice\n" << first_few(dups);
  const auto check =
      check_series(series, names(300), t_settled, t_end, kInterval,
                   {{"SIGKILL", t_kill, t_kill, kSessionMs + 2 * kInterval}, {"SIGTERM", t_term, t_term, 2 * kInterval + 5000}});
  expect_clean(check, "three instances, one killed, one stopped", skips);
  // 60 s of results for 300 targets, but for the due times the checkers counted as skipped.
  EXPECT_GE(static_cast<double>(check.results) + skips.total(), 300.0 * 60)
      << check.results << " results and " << skips.total() << " counted skips for 60 s of 300 targets";
  // The killed instance's targets (about a third) each missed the session's worth of due times.
  // (After SIGTERM the takeover is quick enough that many of the stopped one's targets miss none.)
  EXPECT_GE(check.gaps.at("SIGKILL").size(), 50u);
  std::cout << "[fleet] session.timeout.ms " << kSessionMs << ", interval 1 s: gap after SIGKILL "
            << gap_summary(check.gaps.at("SIGKILL")) << "; after SIGTERM " << gap_summary(check.gaps.at("SIGTERM"))
            << "\n";
  RecordProperty("gap_after_sigkill", gap_summary(check.gaps.at("SIGKILL")));
  RecordProperty("gap_after_sigterm", gap_summary(check.gaps.at("SIGTERM")));
}

TEST(CheckerFleet, AStaticMemberRestartedWithinTheSessionTimeoutGetsItsShardsBackAndNothingMoves) {
  webmon::test::HttpSite site;
  TempDir dir;
  auto fc = fleet(site, 60);
  fc.static_ids = true;
  // Room for a restart under the sanitizers: stop, start, join must fit in the session.
  fc.session_timeout_ms = 10000;
  const auto config = dir.write("config.yml", config_yaml(fc));
  Instance s1(config, dir.path(), "static-1"), s2(config, dir.path(), "static-2"), s3(config, dir.path(), "static-3");
  const std::vector<Instance*> all{&s1, &s2, &s3};
  for (auto* i : all) i->start();
  ASSERT_TRUE(wait_settled(all, kShards, 180s)) << logs(all);
  const auto t_settled = now_ms();
  const auto owned1 = s1.owned(), owned2 = s2.owned(), owned3 = s3.owned();
  ASSERT_TRUE(owned1 && owned2 && owned3) << logs(all);
  SkipCount skips;
  skips.open(all);
  EXPECT_NE(s2.log().find("as static member static-2"), std::string::npos) << s2.log();
  std::this_thread::sleep_for(5s);

  const auto others_before = std::make_pair(s1.log().size(), s3.log().size());
  skips.close(s2);
  const auto t_stop = now_ms();
  ASSERT_EQ(s2.stop(), std::optional<int>(0)) << s2.log();
  s2.start();
  ASSERT_TRUE(webmon::test::eventually([&] { return s2.metric("webmon_checker_shards_owned").value_or(0) > 0; }, 60s))
      << logs(all);
  const auto t_back = now_ms();
  EXPECT_LT(t_back - t_stop, fc.session_timeout_ms) << "the restart took longer than the session timeout";
  ASSERT_TRUE(wait_settled(all, kShards, 60s)) << logs(all);
  skips.open({&s2});  // its second life counts from 0 again
  std::this_thread::sleep_for(5s);
  const auto t_end = now_ms();

  EXPECT_EQ(s2.owned(), owned2) << "the restarted instance owns its own shards again\n" << logs(all);
  EXPECT_EQ(s1.owned(), owned1) << logs(all);
  EXPECT_EQ(s3.owned(), owned3) << logs(all);
  // The others saw no shard come or go: any rebalance line they logged gained and lost none.
  for (const auto& [instance, from] : {std::make_pair(&s1, others_before.first), std::make_pair(&s3, others_before.second)}) {
    const auto since = instance->log().substr(from);
    EXPECT_EQ(since.find("gained ["), std::string::npos) << instance->id() << "\n" << since;
    EXPECT_EQ(since.find("lost ["), std::string::npos) << instance->id() << "\n" << since;
  }
  for (auto* i : all) {
    skips.close(*i);
    EXPECT_EQ(i->stop(), std::optional<int>(0)) << i->log();
  }

  const auto series = scheduled(results_by_target(fc.topic, 60 * 15));
  const auto check = check_series(series, names(60), t_settled, t_end, kInterval,
                                  {{"restart", t_stop, t_back, fc.session_timeout_ms + 2 * kInterval}});
  expect_clean(check, "a static member restarted", skips);
  EXPECT_TRUE(all_duplicates(series).empty()) << first_few(all_duplicates(series));
  std::cout << "[fleet] static member restarted in " << (t_back - t_stop) << " ms: gap "
            << gap_summary(check.gaps.at("restart")) << "\n";
  RecordProperty("gap_over_static_restart", gap_summary(check.gaps.at("restart")));
}

TEST(CheckerFleet, TwoLocationsOfTwoInstancesEachProbeEveryDueTimeOncePerLocation) {
  webmon::test::HttpSite site;
  TempDir dir;
  auto fc = fleet(site, 60);
  fc.group.clear();  // each location its own group: webmon-checkers-<location>
  fc.location = true;
  fc.static_ids = true;
  const auto config = dir.write("config.yml", config_yaml(fc));
  const auto east = webmon::test::unique_name("east");
  const auto west = webmon::test::unique_name("west");
  Instance e1(config, dir.path(), "east-1", east), e2(config, dir.path(), "east-2", east);
  Instance w1(config, dir.path(), "west-1", west), w2(config, dir.path(), "west-2", west);
  const std::vector<Instance*> all{&e1, &e2, &w1, &w2};
  const std::map<std::string, std::string> location_of{
      {"east-1", east}, {"east-2", east}, {"west-1", west}, {"west-2", west}};
  // The real writer stores what both locations send.
  webmon::test::TestDatabase db;
  const auto writer_config = dir.write("writer.yml", "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() +
                                                         "\"\n  topic: " + fc.topic + "\n  topic_partitions: 3\n"
                                                         "postgres:\n  uri: \"" + db.uri() + "\"\n"
                                                         "writer:\n  group_id: " + webmon::test::unique_name("fleet-writer") +
                                                         "\n  batch_max_ms: 200\n");
  webmon::test::ChildProcess writer({WEBMON_WRITER_BIN, "--config", writer_config.string()}, dir.path() / "writer.log");
  for (auto* i : all) i->start();
  ASSERT_TRUE(wait_settled({&e1, &e2}, kShards, 180s)) << logs(all);
  ASSERT_TRUE(wait_settled({&w1, &w2}, kShards, 180s)) << logs(all);
  const auto t_settled = now_ms();
  std::map<std::string, SkipCount> skips;  // per location
  skips[east].open({&e1, &e2});
  skips[west].open({&w1, &w2});
  EXPECT_NE(e1.log().find("group webmon-checkers-" + east + ": "), std::string::npos) << e1.log();
  EXPECT_NE(w2.log().find("group webmon-checkers-" + west + ": "), std::string::npos) << w2.log();
  std::this_thread::sleep_for(20s);
  const auto t_end = now_ms();
  for (auto* i : all) {
    skips[location_of.at(i->id())].close(*i);
    EXPECT_EQ(i->stop(), std::optional<int>(0)) << i->log();
  }

  std::map<std::string, std::map<std::string, std::vector<std::int64_t>>> per_location;
  std::map<std::string, std::size_t> on_topic;  // results per location
  std::size_t with_field = 0, total = 0;
  for (const auto& [name, rs] : results_by_target(fc.topic, 2 * 60 * 20)) {
    for (const auto& r : rs) {
      ++total;
      ASSERT_TRUE(location_of.count(r.checker)) << "a result from " << r.checker;
      const auto& loc = location_of.at(r.checker);
      if (r.location) {  // the v1 message carries checker.location (additive field)
        EXPECT_EQ(*r.location, loc) << name << " from " << r.checker;
        ++with_field;
      }
      per_location[loc][name].push_back(r.scheduled_ms);
      ++on_topic[loc];
    }
  }
  ASSERT_EQ(per_location.size(), 2u);
  for (const auto& [loc, series] : per_location) {
    const auto check = check_series(series, names(60), t_settled, t_end, kInterval, {});
    expect_clean(check, "location " + loc, skips[loc]);
    EXPECT_TRUE(all_duplicates(series).empty()) << loc << "\n" << first_few(all_duplicates(series));
  }
  std::cout << "[fleet] two locations: " << with_field << " results carried the location field\n";

  // check_results: every result of the topic, each location's due times once each.
  ASSERT_TRUE(webmon::test::eventually(
      [&] { return std::stoul(db.scalar("SELECT count(*) FROM check_results")) >= total; }, 120s))
      << writer.log();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM check_results"), std::to_string(total));
  for (const auto& loc : {east, west}) {
    EXPECT_EQ(db.scalar("SELECT count(*) FROM check_results WHERE location = '" + loc + "'"),
              std::to_string(on_topic[loc]));
    EXPECT_EQ(db.scalar("SELECT count(DISTINCT target) FROM check_results WHERE location = '" + loc + "'"), "60");
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM (SELECT 1 FROM check_results GROUP BY target, scheduled_at, location "
                      "HAVING count(*) > 1) twice"),
            "0");
  // webmon stats: one row per target and location; --location keeps one of them.
  namespace json = boost::json;
  const auto stats = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{WEBMON_CLI_BIN, "stats", "--config", writer_config.string(), "--since", "1h",
                                  "--format", "json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const auto [rc, out] = webmon::test::run_command(argv);
    EXPECT_EQ(rc, 0) << out;
    return json::parse(out.substr(out.find('{'))).at("stats").as_array();
  };
  const auto both = stats({});
  EXPECT_EQ(both.size(), 120u) << json::serialize(both);
  for (const auto& loc : {east, west}) {
    const auto one = stats({"--location", loc});
    EXPECT_EQ(one.size(), 60u) << json::serialize(one);
    std::int64_t checks = 0;
    for (const auto& row : one) {
      EXPECT_EQ(row.at("location"), json::value(loc)) << json::serialize(row);
      checks += row.at("checks").to_number<std::int64_t>();
    }
    EXPECT_EQ(checks, static_cast<std::int64_t>(on_topic[loc])) << loc;
  }
  writer.signal(SIGTERM);
  EXPECT_EQ(writer.wait_for_exit(60s), std::optional<int>(0)) << writer.log();
}

}  // namespace
