// Capped exponential backoff, the one rule for every retry loop: the first wait is `initial`,
// each further one doubles, none is longer than `max`.
#pragma once

#include <algorithm>
#include <chrono>

namespace webmon {

// The wait before retry number `retry` (0: the first retry after a failure): initial * 2^retry,
// at most `max` (no overflow however large `retry` grows).
constexpr std::chrono::milliseconds backoff_delay(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                                                  int retry) noexcept {
  auto wait = std::max(initial, std::chrono::milliseconds(0));
  for (int i = 0; i < retry && wait < max; ++i) wait *= 2;
  return std::min(wait, max);
}

// The same as a counter for a loop that retries one thing until it works.
class Backoff {
 public:
  constexpr Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max) noexcept
      : initial_(initial), max_(max) {}

  // The wait before the next attempt; each call waits twice as long as the last, up to max.
  constexpr std::chrono::milliseconds next() noexcept {
    const auto wait = backoff_delay(initial_, max_, retry_);
    if (wait < max_) ++retry_;
    return wait;
  }
  // After a success: the next failure waits `initial` again.
  constexpr void reset() noexcept { retry_ = 0; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  int retry_ = 0;
};

}  // namespace webmon
