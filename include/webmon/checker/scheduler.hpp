// Runs every target's fixed-rate schedule on N io_contexts, one thread each, with targets sharded
// by a stable hash of their name, so each target lives on one thread and the probe path needs no
// locks. One steady_timer per target (a plain completion handler, not a coroutine: 100,000 idle
// coroutine frames would cost ~80 MB); one coroutine per probe in flight; at most one probe of a target at a time
// (a due probe that finds the previous one running is skipped and counted); a cap on probes in
// flight per shard (a probe held back still reports when it was due and when it started).
// Due times count from the Unix epoch (UTC): the steady clock is mapped to the system clock once
// at start and again on every reload and change of ownership, and timers run on the steady clock.
// In a fleet only the targets of the owned shards (ShardSet) are probed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "webmon/checker/schedule.hpp"
#include "webmon/common/check_result.hpp"
#include "webmon/common/config.hpp"

namespace webmon::checker {

class CheckerMetrics;

class Resolver;

// What a probe gets from its shard besides its target.
struct ProbeRun {
  std::shared_ptr<Resolver> resolver;  // the shard's
  // The latest the probe may end: just before its target's next due time (minus
  // deadline_margin()), so that a probe that runs into its timeout never costs the next due probe.
  std::chrono::steady_clock::time_point not_after;
};

// Probes one target (the real one is run_probe with the current ProbeContext bound in).
using ProbeFn =
    std::function<boost::asio::awaitable<CheckResult>(std::shared_ptr<const TargetConfig>, ProbeRun)>;

// How long before its next due time a probe's deadline falls: a twentieth of the interval, at
// most 100 ms (50 ms at 1 s).
std::chrono::nanoseconds deadline_margin(std::chrono::nanoseconds interval) noexcept;
// Receives each finished result, on the shard's thread; must not block (Producer::publish).
using ResultFn = std::function<void(const CheckResult&)>;
using TargetPtr = std::shared_ptr<const TargetConfig>;

// Moves each target into a shared_ptr, so the scheduler and the process share one copy.
std::vector<TargetPtr> share_targets(std::vector<TargetConfig>&& targets);

// FNV-1a of the targets sorted by name (name, url and interval of each): instances of one group
// log it at start and on reload, so that a config that differs between them shows.
std::uint64_t targets_digest(const std::vector<TargetPtr>& targets);

struct SchedulerOptions {
  SchedulerOptions(unsigned threads_ = 1, std::size_t max_in_flight_ = 10000, std::string instance_id_ = {})
      : threads(threads_), max_in_flight(max_in_flight_), instance_id(std::move(instance_id_)) {}
  unsigned threads = 1;
  std::size_t max_in_flight = 10000;  // over all shards
  std::string instance_id;            // the `checker` field
  std::string location;               // the `location` field
  ShardSet shards;                    // what is probed until set_shards(): standalone, everything
};

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, ResultFn on_result, CheckerMetrics& metrics);
  ~Scheduler();  // stop(0) if still running
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the shard threads.
  void start();

  // Makes `targets` the running set, by name: new ones start on their phase, removed ones stop
  // (a probe in flight still reports), changed ones take the new config (and a new phase when the
  // interval changed); unchanged ones are not touched. `probe` replaces the probe function for all.
  // Each shard gets a new resolver for `dns` (re-reading /etc/resolv.conf and /etc/hosts) that
  // takes over the old one's cache; probes in flight finish with the old one. Throws
  // DnsSetupError before anything changes. Returns at once; the shards apply it on their threads.
  void apply(const std::vector<TargetPtr>& targets, ProbeFn probe, const CheckerDns& dns = {});

  // Makes `shards` the ones probed. A target of a shard gained starts at its next due time; one of
  // a shard lost starts no probe after this returns (probes in flight end on their own deadline
  // and still report). Blocks until every thread has applied it (at most 5 s): call it from a
  // thread that may block (the membership's), never from an io_context.
  void set_shards(const ShardSet& shards);

  // Stops scheduling: no probe starts after this returns (bounded as set_shards); probes in
  // flight go on.
  void stop_scheduling();

  // Stops scheduling, lets probes in flight finish for up to `drain_limit` (their own deadlines
  // bound them), then stops the threads. Returns the number of probes still in flight when it gave up.
  std::size_t stop(std::chrono::milliseconds drain_limit);

  std::size_t in_flight() const noexcept;
  std::uint64_t skipped() const noexcept;
  std::uint64_t started() const noexcept;

 private:
  class Shard;
  // Runs `fn` on every thread and waits until each has run it (at most `limit`).
  void on_every_thread(const std::function<void(Shard&)>& fn, std::chrono::milliseconds limit);

  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<bool> running_{false};  // read by set_shards() on the membership's thread
  bool scheduling_stopped_ = false;
};

}  // namespace webmon::checker
