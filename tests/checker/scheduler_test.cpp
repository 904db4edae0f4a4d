// Unit: the fixed-rate schedule (plain numbers, no clock) and the scheduler running real timers
// with a probe function that stands in for the network (probe tests cover the network).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "support/stack.hpp"
#include "webmon/checker/metrics.hpp"
#include "webmon/checker/schedule.hpp"
#include "webmon/checker/scheduler.hpp"

namespace {

using namespace std::chrono_literals;
using webmon::CheckResult;
using webmon::TargetConfig;
using webmon::checker::first_due_at_or_after;
using webmon::checker::Nanos;
using webmon::checker::phase_offset;
using webmon::checker::TargetSchedule;

TEST(ScheduleArithmetic, OffsetIsStableWithinTheIntervalAndSpreadsNames) {
  const Nanos interval = 30s;
  std::set<Nanos::rep> offsets;
  for (int i = 0; i < 1000; ++i) {
    const std::string name = "site-" + std::to_string(i);
    const auto off = phase_offset(name, interval);
    EXPECT_GE(off, Nanos{0});
    EXPECT_LT(off, interval);
    EXPECT_EQ(off, phase_offset(name, interval)) << "same name, same offset";
    offsets.insert(off.count());
  }
  EXPECT_EQ(offsets.size(), 1000u) << "1000 names should not collide on a 30 s phase in ns";
  // FNV-1a of "a" is 0xaf63dc4c8601ec8c: the offset does not depend on the build or the run.
  EXPECT_EQ(webmon::checker::stable_hash("a"), 0xaf63dc4c8601ec8cull);
}

TEST(ScheduleArithmetic, FirstDueIsTheNextSlotOnThePhase) {
  EXPECT_EQ(first_due_at_or_after(Nanos{0}, Nanos{7}, Nanos{10}), Nanos{7});
  EXPECT_EQ(first_due_at_or_after(Nanos{7}, Nanos{7}, Nanos{10}), Nanos{7});
  EXPECT_EQ(first_due_at_or_after(Nanos{8}, Nanos{7}, Nanos{10}), Nanos{17});
  EXPECT_EQ(first_due_at_or_after(Nanos{1000}, Nanos{7}, Nanos{10}), Nanos{1007});
}

TEST(ScheduleArithmetic, ATargetsFleetShardIsItsHashModTheShards) {
  using webmon::checker::fleet_shard;
  using webmon::checker::stable_hash;
  std::vector<int> per_shard(64, 0);
  for (int i = 0; i < 6400; ++i) {
    const std::string name = "site-" + std::to_string(i);
    const auto s = fleet_shard(name, 64);
    ASSERT_LT(s, 64u);
    EXPECT_EQ(s, stable_hash(name) % 64) << "every instance of a fleet computes the same shard";
    ++per_shard[s];
  }
  for (const int n : per_shard) {
    EXPECT_GT(n, 50) << "6400 names spread over 64 shards";
    EXPECT_LT(n, 150);
  }
}

TEST(ScheduleArithmetic, AShardSetOwnsTheTargetsOfItsShards) {
  using webmon::checker::fleet_shard;
  using webmon::checker::ShardSet;
  const ShardSet standalone;
  EXPECT_TRUE(standalone.standalone());
  EXPECT_TRUE(standalone.owns("anything"));
  EXPECT_EQ(standalone.size(), 0u);
  EXPECT_FALSE(ShardSet::none(0).owns("anything")) << "in a group, nothing before the first assignment";
  EXPECT_FALSE(ShardSet::none(8).owns("anything"));
  const ShardSet some(8, {1, 5, 9});  // 9 is not one of 8 shards
  EXPECT_EQ(some.size(), 2u);
  EXPECT_EQ(some.owned(), (std::vector<unsigned>{1, 5}));
  for (int i = 0; i < 100; ++i) {
    const std::string name = "t" + std::to_string(i);
    const auto shard = fleet_shard(name, 8);
    EXPECT_EQ(some.owns(name), shard == 1 || shard == 5) << name;
  }
  using webmon::checker::shard_ranges;
  EXPECT_EQ(shard_ranges({}), "none");
  EXPECT_EQ(shard_ranges({4}), "4");
  EXPECT_EQ(shard_ranges({0, 1, 2, 3, 7, 9, 10, 11, 12}), "0-3,7,9-12");
  EXPECT_EQ(shard_ranges({0, 2, 4}), "0,2,4");
}

TEST(TargetSchedule, FixedRateDoesNotDriftWhenTimersFireLate) {
  TargetSchedule s("example", 10s, Nanos{0});
  const Nanos first = s.next_due();
  EXPECT_EQ(first, phase_offset("example", 10s));
  for (int k = 0; k < 100; ++k) {
    // Every timer fires 3 ms late and the probe ends before the next one is due.
    const auto fire = s.fire(s.next_due() + 3ms);
    ASSERT_TRUE(fire.start);
    EXPECT_EQ(fire.skipped, 0u);
    EXPECT_EQ(fire.due, first + Nanos{10s} * k) << "due(k) = offset + k * interval, whatever the lateness";
    s.probe_finished();
  }
}

TEST(TargetSchedule, ADueProbeIsSkippedWhileThePreviousOneRuns) {
  TargetSchedule s("slow", 1s, Nanos{0});
  const Nanos first = s.next_due();
  auto f1 = s.fire(first);
  ASSERT_TRUE(f1.start);
  auto f2 = s.fire(s.next_due());  // previous probe still running
  EXPECT_FALSE(f2.start);
  EXPECT_EQ(f2.skipped, 1u);
  s.probe_finished();
  auto f3 = s.fire(s.next_due());
  EXPECT_TRUE(f3.start);
  EXPECT_EQ(f3.due, first + 2s);
}

TEST(TargetSchedule, FallingBehindSkipsTheMissedSlotsAndRunsTheLatest) {
  TargetSchedule s("stalled", 1s, Nanos{0});
  const Nanos first = s.next_due();
  const auto f = s.fire(first + 3500ms);  // the loop was stalled for 3.5 intervals
  EXPECT_TRUE(f.start);
  EXPECT_EQ(f.skipped, 3u);
  EXPECT_EQ(f.due, first + 3s);
  EXPECT_EQ(s.next_due(), first + 4s);
}

TEST(TargetSchedule, AnIntervalChangeMovesToTheNewPhaseAndKeepsTheRunningProbe) {
  TargetSchedule s("changed", 10s, Nanos{0});
  (void)s.fire(s.next_due());
  s.reset("changed", 4s, Nanos{100s});
  EXPECT_EQ(s.next_due(), first_due_at_or_after(Nanos{100s}, phase_offset("changed", 4s), 4s));
  EXPECT_TRUE(s.probe_running());
  EXPECT_FALSE(s.fire(s.next_due()).start);
}

// ---- the scheduler with real timers

struct Recorder {
  std::mutex m;
  std::map<std::string, std::vector<CheckResult>> by_target;
  std::atomic<int> concurrent{0};
  std::atomic<int> max_concurrent{0};
  std::map<std::string, int> running;  // under m
  bool overlap = false;                // under m

  std::size_t count(const std::string& t) {
    std::lock_guard l(m);
    return by_target[t].size();
  }
};

boost::asio::awaitable<CheckResult> fake_probe(std::shared_ptr<const TargetConfig> t, std::shared_ptr<Recorder> rec,
                                               std::chrono::milliseconds takes) {
  {
    std::lock_guard l(rec->m);
    if (++rec->running[t->name] > 1) rec->overlap = true;
  }
  const int now = ++rec->concurrent;
  int seen = rec->max_concurrent.load();
  while (now > seen && !rec->max_concurrent.compare_exchange_weak(seen, now)) {
  }
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, takes);
  co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  --rec->concurrent;
  {
    std::lock_guard l(rec->m);
    --rec->running[t->name];
  }
  CheckResult r;
  r.url = t->url;
  r.http_status = 200;
  r.ok = true;
  r.timings.total = std::chrono::duration<double>(takes).count();
  co_return r;
}

webmon::checker::TargetPtr target(const std::string& name, std::chrono::milliseconds interval) {
  TargetConfig t;
  t.name = name;
  t.url = "http://127.0.0.1/" + name;
  t.interval = interval;
  t.timeout = interval;
  return std::make_shared<const TargetConfig>(std::move(t));
}

webmon::checker::SchedulerOptions options(unsigned threads, std::size_t cap, webmon::checker::ShardSet shards) {
  webmon::checker::SchedulerOptions o(threads, cap, "test-instance");
  o.shards = std::move(shards);
  return o;
}

struct SchedulerHarness {
  explicit SchedulerHarness(unsigned threads, std::size_t cap = 10000,
                            webmon::checker::ShardSet shards = webmon::checker::ShardSet())
      : metrics(false),
        scheduler(options(threads, cap, std::move(shards)),
                  [rec = rec](const CheckResult& r) {
                    std::lock_guard l(rec->m);
                    rec->by_target[r.target].push_back(r);
                  },
                  metrics) {
    scheduler.start();
  }
  webmon::checker::ProbeFn probe(std::chrono::milliseconds takes) {
    return [rec = rec, takes](std::shared_ptr<const TargetConfig> t, webmon::checker::ProbeRun) {
      return fake_probe(std::move(t), rec, takes);
    };
  }
  std::shared_ptr<Recorder> rec = std::make_shared<Recorder>();
  webmon::checker::CheckerMetrics metrics;
  webmon::checker::Scheduler scheduler;
};

TEST(Scheduler, EveryResultIsOnItsTargetsFixedRateGrid) {
  SchedulerHarness h(2);
  std::vector<webmon::checker::TargetPtr> targets;
  for (int i = 0; i < 20; ++i) targets.push_back(target("t" + std::to_string(i), 100ms));
  h.scheduler.apply(targets, h.probe(5ms));
  ASSERT_TRUE(webmon::test::eventually([&] {
    for (const auto& t : targets)
      if (h.rec->count(t->name) < 5) return false;
    return true;
  }));
  EXPECT_EQ(h.scheduler.stop(5s), 0u);
  std::lock_guard l(h.rec->m);
  for (const auto& t : targets) {
    const auto& rs = h.rec->by_target[t->name];
    for (std::size_t i = 1; i < rs.size(); ++i) {
      const auto step = rs[i].scheduled_at - rs[i - 1].scheduled_at;
      // Millisecond rounding of two wall-clock readings: a step is k * 100 ms, +-1 ms.
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(step).count();
      EXPECT_LE(std::abs(ms - (ms + 50) / 100 * 100), 1) << t->name << " step " << ms << " ms";
      EXPECT_GE(ms, 99);
    }
    for (const auto& r : rs) {
      EXPECT_EQ(r.target, t->name);
      EXPECT_EQ(r.checker, "test-instance");
      EXPECT_GE(r.started_at, r.scheduled_at);
    }
  }
  EXPECT_FALSE(h.rec->overlap);
}

TEST(Scheduler, NeverTwoProbesOfOneTargetAndOverrunsAreSkipped) {
  SchedulerHarness h(1);
  h.scheduler.apply({target("slow", 50ms)}, h.probe(170ms));  // each probe spans 3-4 due times
  ASSERT_TRUE(webmon::test::eventually([&] { return h.rec->count("slow") >= 3; }));
  h.scheduler.stop(5s);
  EXPECT_FALSE(h.rec->overlap) << "two probes of one target ran at once";
  EXPECT_GE(h.scheduler.skipped(), 3u * 2) << "each 170 ms probe overruns at least two 50 ms slots";
  EXPECT_GE(h.metrics.skipped.Value(), 6.0);
}

TEST(Scheduler, TheInFlightCapHoldsProbesBackButKeepsTheirDueTime) {
  SchedulerHarness h(1, 1);
  // Four names whose probes fall due within 5 ms of each other, so that with room for one probe
  // at a time (30 ms each) the later ones wait their turn.
  using webmon::checker::phase_offset;
  std::vector<std::string> names{"capped"};
  const auto first = phase_offset(names[0], 1000ms);
  for (int i = 0; names.size() < 4 && i < 1'000'000; ++i) {
    const auto name = "capped" + std::to_string(i);
    const auto d = phase_offset(name, 1000ms) - first;
    if (d >= 0ms && d < 5ms) names.push_back(name);
  }
  ASSERT_EQ(names.size(), 4u);
  std::vector<webmon::checker::TargetPtr> targets;
  for (const auto& n : names) targets.push_back(target(n, 1000ms));
  h.scheduler.apply(targets, h.probe(30ms));
  ASSERT_TRUE(webmon::test::eventually([&] {
    for (const auto& t : targets)
      if (h.rec->count(t->name) < 3) return false;
    return true;
  }));
  h.scheduler.stop(5s);
  EXPECT_EQ(h.rec->max_concurrent.load(), 1);
  std::lock_guard l(h.rec->m);
  std::chrono::milliseconds longest_wait{0};
  for (const auto& t : targets) {
    const auto& rs = h.rec->by_target[t->name];
    for (std::size_t i = 0; i < rs.size(); ++i) {
      EXPECT_GE(rs[i].started_at, rs[i].scheduled_at);
      longest_wait = std::max(longest_wait,
                              std::chrono::duration_cast<std::chrono::milliseconds>(rs[i].started_at - rs[i].scheduled_at));
      if (i == 0) continue;
      // scheduled_at is the due time, not the (later) start: steps stay whole seconds, +-1 ms.
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(rs[i].scheduled_at - rs[i - 1].scheduled_at).count();
      EXPECT_LE(std::abs(ms - (ms + 500) / 1000 * 1000), 1) << t->name << " step " << ms << " ms";
    }
  }
  // The last of four due together waited for three 30 ms probes before it.
  EXPECT_GE(longest_wait, 60ms) << "no probe was held back by the cap";
}

TEST(Scheduler, ReloadTouchesOnlyWhatChanged) {
  SchedulerHarness h(2);
  h.scheduler.apply({target("stays", 100ms), target("goes", 100ms), target("changes", 100ms)}, h.probe(1ms));
  ASSERT_TRUE(webmon::test::eventually([&] { return h.rec->count("goes") >= 2 && h.rec->count("changes") >= 2; }));

  h.scheduler.apply({target("stays", 100ms), target("changes", 300ms), target("arrives", 100ms)}, h.probe(1ms));
  ASSERT_TRUE(webmon::test::eventually([&] { return h.rec->count("arrives") >= 2; }));
  const auto goes_after_reload = h.rec->count("goes");
  const auto changes_before = h.rec->count("changes");
  ASSERT_TRUE(webmon::test::eventually([&] { return h.rec->count("changes") >= changes_before + 3; }));
  EXPECT_LE(h.rec->count("goes"), goes_after_reload) << "a removed target is not probed any more";
  h.scheduler.stop(5s);

  std::lock_guard l(h.rec->m);
  // "stays" keeps its grid across the reload: every step a multiple of 100 ms.
  const auto& stays = h.rec->by_target["stays"];
  for (std::size_t i = 1; i < stays.size(); ++i) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(stays[i].scheduled_at - stays[i - 1].scheduled_at).count();
    EXPECT_LE(std::abs(ms - (ms + 50) / 100 * 100), 1) << "stays step " << ms;
  }
  // "changes" ends on the new 300 ms grid.
  const auto& ch = h.rec->by_target["changes"];
  const auto last = std::chrono::duration_cast<std::chrono::milliseconds>(ch[ch.size() - 1].scheduled_at - ch[ch.size() - 2].scheduled_at).count();
  EXPECT_LE(std::abs(last - (last + 150) / 300 * 300), 1) << "changes step " << last;
}

std::int64_t epoch_ms(const webmon::SysMillis& t) { return t.time_since_epoch().count(); }

// Due times count from the Unix epoch: scheduled_at is offset + k * interval after 1970-01-01, so
// it does not depend on when the checker started, and two checkers agree on it.
TEST(Scheduler, ScheduledAtIsOnTheUtcGridOfItsTarget) {
  SchedulerHarness h(2);
  std::vector<webmon::checker::TargetPtr> targets;
  for (int i = 0; i < 10; ++i) targets.push_back(target("utc" + std::to_string(i), 100ms));
  h.scheduler.apply(targets, h.probe(1ms));
  ASSERT_TRUE(webmon::test::eventually([&] {
    for (const auto& t : targets)
      if (h.rec->count(t->name) < 3) return false;
    return true;
  }));
  h.scheduler.stop(5s);
  std::lock_guard l(h.rec->m);
  for (const auto& t : targets) {
    const auto offset_ms = std::chrono::duration_cast<std::chrono::milliseconds>(phase_offset(t->name, 100ms)).count();
    for (const auto& r : h.rec->by_target[t->name]) {
      EXPECT_EQ(epoch_ms(r.scheduled_at) % 100, offset_ms) << t->name << ": scheduled_at is not epoch + offset + k * 100 ms";
      EXPECT_GE(r.started_at, r.scheduled_at);
    }
  }
}

TEST(Scheduler, TwoSchedulersReportTheSameScheduledAtForTheSameDueTime) {
  SchedulerHarness a(1);
  std::this_thread::sleep_for(37ms);  // started at another moment, as two hosts would be
  SchedulerHarness b(2);
  const std::vector<webmon::checker::TargetPtr> targets{target("shared-a", 100ms), target("shared-b", 70ms)};
  a.scheduler.apply(targets, a.probe(1ms));
  b.scheduler.apply(targets, b.probe(1ms));
  ASSERT_TRUE(webmon::test::eventually([&] { return a.rec->count("shared-b") >= 6 && b.rec->count("shared-b") >= 6; }));
  a.scheduler.stop(5s);
  b.scheduler.stop(5s);
  for (const auto& t : targets) {
    std::set<std::int64_t> in_a, in_b;
    {
      std::lock_guard l(a.rec->m);
      for (const auto& r : a.rec->by_target[t->name]) in_a.insert(epoch_ms(r.scheduled_at));
    }
    {
      std::lock_guard l(b.rec->m);
      for (const auto& r : b.rec->by_target[t->name]) in_b.insert(epoch_ms(r.scheduled_at));
    }
    std::vector<std::int64_t> both;
    std::set_intersection(in_a.begin(), in_a.end(), in_b.begin(), in_b.end(), std::back_inserter(both));
    // They ran side by side for several intervals: those due times are the very same values.
    EXPECT_GE(both.size(), 3u) << t->name;
    const auto step = std::chrono::duration_cast<std::chrono::milliseconds>(t->interval).count();
    for (const auto v : in_b) EXPECT_EQ((v - *in_a.begin()) % step, 0) << t->name << ": one grid for both";
  }
}

// In a fleet only the owned shards' targets are probed; a shard gained starts at its next due
// time (no catching up), and a shard lost starts nothing after set_shards() returns.
TEST(Scheduler, ProbesOnlyTheOwnedShardsAndFollowsTheirChanges) {
  using webmon::checker::fleet_shard;
  using webmon::checker::ShardSet;
  SchedulerHarness h(2, 10000, ShardSet::none(0));
  std::vector<webmon::checker::TargetPtr> targets;
  for (int i = 0; i < 40; ++i) targets.push_back(target("fleet" + std::to_string(i), 100ms));
  const auto in = [](const std::string& name, std::initializer_list<unsigned> shards) {
    const auto s = fleet_shard(name, 4);
    return std::find(shards.begin(), shards.end(), s) != shards.end();
  };
  h.scheduler.apply(targets, h.probe(1ms));
  std::this_thread::sleep_for(300ms);
  for (const auto& t : targets) EXPECT_EQ(h.rec->count(t->name), 0u) << "nothing is owned before an assignment";
  EXPECT_EQ(h.metrics.targets_owned.Value(), 0);

  h.scheduler.set_shards(ShardSet(4, {0, 1}));
  ASSERT_TRUE(webmon::test::eventually([&] {
    for (const auto& t : targets)
      if (in(t->name, {0, 1}) && h.rec->count(t->name) < 3) return false;
    return true;
  }));
  std::size_t owned = 0;
  for (const auto& t : targets) owned += in(t->name, {0, 1}) ? 1 : 0;
  EXPECT_EQ(h.metrics.targets_owned.Value(), static_cast<double>(owned));

  const auto before_switch = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  h.scheduler.set_shards(ShardSet(4, {1, 2}));
  const auto after_switch = std::chrono::system_clock::now();
  ASSERT_TRUE(webmon::test::eventually([&] {
    for (const auto& t : targets)
      if (in(t->name, {2}) && h.rec->count(t->name) < 3) return false;
    return true;
  }));
  h.scheduler.stop(5s);

  std::lock_guard l(h.rec->m);
  for (const auto& t : targets) {
    const auto& rs = h.rec->by_target[t->name];
    if (in(t->name, {3})) {
      EXPECT_TRUE(rs.empty()) << t->name << " was never owned";
    }
    if (in(t->name, {0})) {
      for (const auto& r : rs) EXPECT_LT(r.started_at, after_switch) << t->name << ": probed after its shard was lost";
    }
    if (in(t->name, {2})) {
      ASSERT_FALSE(rs.empty());
      EXPECT_GE(rs.front().scheduled_at, before_switch) << t->name << ": a gained shard starts at its next due time";
    }
    for (std::size_t i = 1; i < rs.size(); ++i) {
      EXPECT_GT(rs[i].scheduled_at, rs[i - 1].scheduled_at) << t->name << ": a due time twice";
      EXPECT_EQ(epoch_ms(rs[i].scheduled_at) % 100, epoch_ms(rs[0].scheduled_at) % 100) << t->name;
    }
    if (in(t->name, {1})) {
      // Kept across the change: probed before and after it, on its one grid (checked above).
      ASSERT_FALSE(rs.empty());
      EXPECT_LT(rs.front().scheduled_at, before_switch) << t->name;
      EXPECT_GE(rs.back().started_at, after_switch) << t->name;
    }
  }
}

TEST(Scheduler, TheTargetDigestSeesNamesUrlsAndIntervalsNotTheOrder) {
  using webmon::checker::targets_digest;
  const auto a = target("a", 100ms);
  const auto b = target("b", 100ms);
  EXPECT_EQ(targets_digest({a, b}), targets_digest({b, a}));
  EXPECT_NE(targets_digest({a, b}), targets_digest({a}));
  EXPECT_NE(targets_digest({a, b}), targets_digest({a, target("b", 200ms)}));
  TargetConfig moved = *b;
  moved.url = "http://127.0.0.1/elsewhere";
  EXPECT_NE(targets_digest({a, b}), targets_digest({a, std::make_shared<const TargetConfig>(moved)}));
}

}  // namespace
