// How a repeated event is logged without flooding the log: the first few occurrences, then every
// Nth, counted on; reset() starts over when the condition clears (a new outage is news again).
// Lock-free, so it can sit in C callbacks and on probe paths.
#pragma once

#include <atomic>
#include <cstdint>

namespace webmon {

class LogLimit {
 public:
  // Logs occurrences 1..first, then 1 + k * every (1001, 2001, ... by default); none after the
  // first ones when every == 0.
  constexpr explicit LogLimit(std::uint64_t first = 10, std::uint64_t every = 1000) noexcept
      : first_(first), every_(every) {}

  // Counts one occurrence; its number (1-based) when it is to be logged, else 0.
  std::uint64_t count() noexcept {
    const auto n = seen_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n <= first_) return n;
    if (every_ != 0 && (n - 1) % every_ == 0) return n;
    return 0;
  }
  // Occurrences counted since the start or the last reset().
  std::uint64_t seen() const noexcept { return seen_.load(std::memory_order_relaxed); }
  void reset() noexcept { seen_.store(0, std::memory_order_relaxed); }

 private:
  std::uint64_t first_;
  std::uint64_t every_;
  std::atomic<std::uint64_t> seen_{0};
};

}  // namespace webmon
