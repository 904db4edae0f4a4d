// Fixed-rate schedule arithmetic, free of clocks and I/O so that it is tested with plain numbers:
// probe k of a target is due at offset + k * interval, the offset being a stable hash of the
// target's name within its interval, so a start or a reload never fires every target at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace webmon::checker {

using Nanos = std::chrono::nanoseconds;

// FNV-1a, 64 bit: stable across runs, builds and machines (std::hash is not).
std::uint64_t stable_hash(std::string_view s) noexcept;

// Where in [0, interval) the target's probes fall.
Nanos phase_offset(std::string_view name, Nanos interval) noexcept;

// The first due time at or after `now` (all times are durations since one clock's epoch).
Nanos first_due_at_or_after(Nanos now, Nanos offset, Nanos interval) noexcept;

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
