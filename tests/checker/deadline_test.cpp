// One result per due probe, always: a site that accepts connections and never answers, probed by
// the real scheduler and probe with the default timeout users get (the interval, up to 10 s),
// gets a `timeout` result for every due time, none skipped: the probe's deadline ends just before
// its target's next due time.
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "test_servers.hpp"
#include "webmon/checker/metrics.hpp"
#include "webmon/checker/probe.hpp"
#include "webmon/checker/scheduler.hpp"
#include "webmon/common/config.hpp"

namespace webmon::checker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

TEST(ProbeDeadline, AHangingSiteGetsATimeoutResultForEveryDueProbeWithTheDefaultTimeout) {
  asio::io_context site_io;
  test::TestServer hangs(site_io, [](std::shared_ptr<test::ServerConn> c) -> asio::awaitable<void> {
    (void)co_await c->read_request();
    co_await c->sleep(std::chrono::minutes(2));  // accepts, reads, never answers
  });
  std::thread site_thread([&] { site_io.run(); });

  // The defaults users get: no timeout_seconds, so the timeout is the interval itself.
  const std::string url = hangs.url("/");
  auto load = parse_config("kafka: {bootstrap_servers: \"127.0.0.1:1\"}\ntargets:\n"
                           "  - {name: every-1s, target: \"" + url + "\", check_interval_seconds: 1}\n"
                           "  - {name: every-2s, target: \"" + url + "\", check_interval_seconds: 2}\n",
                           "deadline.yml", Component::checker);
  ASSERT_TRUE(load.ok()) << load.errors.at(0).to_string();
  ASSERT_EQ(load.config->targets.at(0).timeout, load.config->targets.at(0).interval);

  std::mutex m;
  std::map<std::string, std::vector<CheckResult>> results;
  CheckerMetrics metrics(false);
  Scheduler scheduler({1, 100, "deadline-test"},
                      [&](const CheckResult& r) {
                        std::lock_guard lock(m);
                        results[r.target].push_back(r);
                      },
                      metrics);
  scheduler.start();
  auto ctx = ProbeContext::for_targets(load.config->targets);
  scheduler.apply(share_targets(std::move(load.config->targets)),
                  probe_fn(ctx));
  std::this_thread::sleep_for(9s);
  scheduler.stop(5s);
  site_io.stop();
  site_thread.join();

  EXPECT_EQ(scheduler.skipped(), 0u) << "a due probe left no result";
  std::lock_guard lock(m);
  for (const auto& [name, interval_ms] : {std::pair{"every-1s", 1000}, std::pair{"every-2s", 2000}}) {
    auto& rs = results[name];
    // 9 s: at least 8 due times at 1 s, 4 at 2 s (the last one may still be running at stop).
    EXPECT_GE(rs.size(), static_cast<std::size_t>(9000 / interval_ms - 1)) << name;
    std::sort(rs.begin(), rs.end(), [](const auto& a, const auto& b) { return a.scheduled_at < b.scheduled_at; });
    for (std::size_t i = 0; i < rs.size(); ++i) {
      EXPECT_EQ(rs[i].error, ErrorClass::timeout) << name << ": " << rs[i].error_detail;
      EXPECT_NE(rs[i].error_detail.find("waiting for the response headers"), std::string::npos) << rs[i].error_detail;
      if (i == 0) continue;
      const auto step = (rs[i].scheduled_at - rs[i - 1].scheduled_at).count();
      EXPECT_NEAR(step, interval_ms, 2) << name << ": result " << i << " is " << step << " ms after the previous";
    }
  }
}

}  // namespace
}  // namespace webmon::checker
