// Fixed-rate schedule arithmetic, free of clocks and I/O so that it is tested with plain numbers:
// probe k of a target is due at offset + k * interval, the offset being a stable hash of the
// target's name within its interval, so a start or a reload never fires every target at once.
// The scheduler counts these times from the Unix epoch (UTC), so every checker of a fleet computes
// the same due times and a target handed from one to another keeps its series of scheduled_at.
// A fleet's shards (which instance probes which target) are plain numbers too.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace webmon::checker {

using Nanos = std::chrono::nanoseconds;

// FNV-1a, 64 bit: stable across runs, builds and machines (std::hash is not).
std::uint64_t stable_hash(std::string_view s) noexcept;

// Where in [0, interval) the target's probes fall.
Nanos phase_offset(std::string_view name, Nanos interval) noexcept;

// The first due time at or after `now` (all times are durations since one clock's epoch; the
// scheduler's is the Unix epoch).
Nanos first_due_at_or_after(Nanos now, Nanos offset, Nanos interval) noexcept;

// The shard of a target in a fleet of `shards` (a partition of kafka.coordination_topic).
unsigned fleet_shard(std::string_view name, unsigned shards) noexcept;

// The shards one instance probes: all of them (standalone, the default), or those Kafka assigned.
class ShardSet {
 public:
  ShardSet() = default;  // standalone: every target
  // Of `count` shards, those in `owned` (numbers >= count are ignored).
  ShardSet(unsigned count, const std::vector<unsigned>& owned);
  static ShardSet none(unsigned count) { return ShardSet(count, {}); }

  bool standalone() const noexcept { return standalone_; }
  unsigned count() const noexcept { return count_; }
  bool owns_shard(unsigned shard) const noexcept { return standalone_ || (shard < count_ && owned_[shard]); }
  bool owns(std::string_view target_name) const noexcept {
    return standalone_ || (count_ > 0 && owned_[fleet_shard(target_name, count_)]);
  }
  std::vector<unsigned> owned() const;  // ascending; empty when standalone
  std::size_t size() const noexcept;    // shards owned (0 when standalone)

 private:
  bool standalone_ = true;
  unsigned count_ = 0;
  std::vector<bool> owned_;
};

// "0-3,7,9-12" for {0,1,2,3,7,9,10,11,12} (ascending input); "none" for none.
std::string shard_ranges(const std::vector<unsigned>& ascending);

// One target's schedule. Not thread-safe: it belongs to the shard that runs the target.
class TargetSchedule {
 public:
  TargetSchedule(std::string_view name, Nanos interval, Nanos now) noexcept;

  Nanos interval() const noexcept { return interval_; }
  Nanos offset() const noexcept { return offset_; }
  Nanos next_due() const noexcept { return next_due_; }
  bool probe_running() const noexcept { return running_; }

  // What to do when the timer set for next_due() fires at `now` (now >= next_due()).
  struct Fire {
    bool start = false;       // start a probe for `due`
    Nanos due{};              // the due time it reports (scheduled_at)
    std::uint64_t skipped = 0;  // due times given up: a probe still running, or fallen behind
  };
  // Chooses the latest due time that has passed; earlier ones that passed with it were missed
  // (the loop fell behind by more than an interval) and count as skipped, and so does the latest
  // one when the previous probe is still running. Advances next_due() past `now`.
  Fire fire(Nanos now) noexcept;

  // The probe started by fire() has ended.
  void probe_finished() noexcept { running_ = false; }

  // A reload changed the interval: new phase, next due at or after `now`; a running probe stays
  // running (it still blocks the next start).
  void reset(std::string_view name, Nanos interval, Nanos now) noexcept;

 private:
  Nanos interval_;
  Nanos offset_;
  Nanos next_due_;
  bool running_ = false;
};

}  // namespace webmon::checker
