// Unit: the small helpers that exist once in src/common (hex digits, timestamp writers, backoff,
// log rate limits), with the rules each copy they replaced had.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webmon/common/backoff.hpp"
#include "webmon/common/hex.hpp"
#include "webmon/common/log_limit.hpp"
#include "webmon/common/time_text.hpp"

namespace webmon {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

TEST(Hex, LowerAndUpperDigits) {
  EXPECT_EQ(to_hex(std::string("\x00\x01\x7f\x80\xff", 5)), "00017f80ff");
  EXPECT_EQ(to_hex(""), "");
  std::string out = "%";
  append_hex_byte(out, 0xab, kHexUpper);
  EXPECT_EQ(out, "%AB");
  append_hex(out, "\x0a");
  EXPECT_EQ(out, "%AB0a");
}

TEST(TimeText, BothWritersShareTheDigitsAndDifferInTheirSeparators) {
  const SysMillis t = sys_days{2024y / 2 / 29} + 23h + 59min + 58s + 7ms;
  EXPECT_EQ(format_rfc3339_ms(t), "2024-02-29T23:59:58.007Z");
  EXPECT_EQ(format_pg_timestamp(t), "2024-02-29 23:59:58.007+00");
  char buf[kMaxTimestampText];
  EXPECT_EQ(write_pg_timestamp(buf, t) - buf, 26);
  EXPECT_EQ(write_rfc3339_ms(buf, t) - buf, 24);
  // RFC 3339 has four-digit years only: the writers clamp rather than write garbage.
  EXPECT_EQ(format_rfc3339_ms(SysMillis{sys_days{10000y / 1 / 1}}).substr(0, 4), "9999");
  EXPECT_EQ(format_pg_timestamp(SysMillis{sys_days{-1y / 1 / 1}}).substr(0, 4), "0000");
  EXPECT_EQ(parse_rfc3339(format_rfc3339_ms(t)), t);
}

TEST(Backoff, DoublesFromInitialUpToTheCap) {
  EXPECT_EQ(backoff_delay(100ms, 5000ms, 0), 100ms);
  EXPECT_EQ(backoff_delay(100ms, 5000ms, 1), 200ms);
  EXPECT_EQ(backoff_delay(100ms, 5000ms, 5), 3200ms);
  EXPECT_EQ(backoff_delay(100ms, 5000ms, 6), 5000ms);
  EXPECT_EQ(backoff_delay(100ms, 5000ms, 1'000'000), 5000ms);  // no overflow, however many failures
  EXPECT_EQ(backoff_delay(100ms, 5000ms, -1), 100ms);
  Backoff b(100ms, 1000ms);
  std::vector<milliseconds> waits;
  for (int i = 0; i < 6; ++i) waits.push_back(b.next());
  EXPECT_EQ(waits, (std::vector<milliseconds>{100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms}));
  b.reset();
  EXPECT_EQ(b.next(), 100ms);
}

TEST(LogLimit, FirstFewThenEveryNthThenAgainAfterReset) {
  LogLimit limit(3, 10);
  std::vector<std::uint64_t> logged;
  for (int i = 0; i < 35; ++i) {
    if (const auto n = limit.count()) logged.push_back(n);
  }
  EXPECT_EQ(logged, (std::vector<std::uint64_t>{1, 2, 3, 11, 21, 31}));
  EXPECT_EQ(limit.seen(), 35u);
  limit.reset();
  EXPECT_EQ(limit.count(), 1u);

  LogLimit once(1, 0);  // once per outage: reset() when it is over
  EXPECT_EQ(once.count(), 1u);
  EXPECT_EQ(once.count(), 0u);
  EXPECT_EQ(once.count(), 0u);
  once.reset();
  EXPECT_EQ(once.count(), 1u);
}

TEST(LogLimit, CountsEveryOccurrenceFromManyThreads) {
  LogLimit limit(10, 1000);
  std::vector<std::thread> threads;
  std::atomic<int> logged{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2500; ++i) logged += limit.count() != 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(limit.seen(), 10'000u);
  EXPECT_EQ(logged.load(), 10 + 9);  // 1..10, then 1001, 2001, ..., 9001
}

}  // namespace
}  // namespace webmon
