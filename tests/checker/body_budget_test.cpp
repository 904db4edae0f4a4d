// Memory for bodies has a bound: regexp targets are searched as their bodies arrive (only what a
// match may still need is kept), and what is held over all probes counts against
// checker.max_body_memory_bytes; a probe that finds no room says so in its result.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "test_servers.hpp"
#include "webmon/checker/metrics.hpp"
#include "webmon/checker/probe.hpp"
#include "webmon/checker/scheduler.hpp"
#include "webmon/common/regex.hpp"

namespace webmon::checker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::size_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// Runs one probe per target at once on `io` (a second io serves the site) until all are in.
std::vector<CheckResult> probe_all_at_once(asio::io_context& io, const std::vector<TargetConfig>& targets,
                                           const ProbeLimits& limits) {
  auto ctx = ProbeContext::for_targets(targets, limits);
  auto resolver = std::make_shared<Resolver>(io.get_executor(), CheckerDns{});
  std::vector<CheckResult> out;
  for (const auto& t : targets) {
    asio::co_spawn(io, run_probe(std::make_shared<const TargetConfig>(t), ctx, resolver),
                   [&](std::exception_ptr e, CheckResult r) {
                     if (e) std::rethrow_exception(e);
                     out.push_back(std::move(r));
                     if (out.size() == targets.size()) io.stop();
                   });
  }
  io.run();
  return out;
}

// The site runs in a child process of its own, so that the test's peak RSS is the probes' alone.
struct BigSite {
  explicit BigSite(std::size_t body_bytes) : body(std::string(body_bytes - 19, 'x') + "<status>up</status>") {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork");
    if (pid == 0) {
      ::close(fds[0]);
      asio::io_context io;
      test::TestServer server(io, test::respond_with(test::http_response(200, body)));
      const unsigned short p = server.port();
      if (::write(fds[1], &p, sizeof p) != static_cast<ssize_t>(sizeof p)) ::_exit(1);
      std::thread second([&io] { io.run(); });
      io.run();  // until the test kills it
      ::_exit(0);
    }
    ::close(fds[1]);
    if (::read(fds[0], &port, sizeof port) != static_cast<ssize_t>(sizeof port)) throw std::runtime_error("no site");
    ::close(fds[0]);
  }
  ~BigSite() {
    ::kill(pid, SIGKILL);  // our own child
    ::waitpid(pid, nullptr, 0);
  }
  std::vector<TargetConfig> targets(int n) const {
    auto compiled = Regex::compile("<status>up</status>");
    auto regexp = std::get<std::shared_ptr<const Regex>>(compiled);
    std::vector<TargetConfig> out;
    for (int i = 0; i < n; ++i) {
      auto t = test::make_target("http://127.0.0.1:" + std::to_string(port) + "/" + std::to_string(i), 120s,
                                 "big" + std::to_string(i));
      t->regexp = regexp;
      t->regexp_source = "<status>up</status>";
      t->max_body_bytes = 8u << 20;
      out.push_back(*t);
    }
    return out;
  }
  std::string body;
  pid_t pid = -1;
  unsigned short port = 0;
};

TEST(BodyBudget, ManyLargeBodiesWithARegexpAtOnceStayWithinTheBudget) {
  constexpr int kTargets = 400;
  constexpr std::size_t kBudget = 16u << 20;
  BigSite site(4u << 20);  // 400 x 4 MiB: 1.6 GiB if every body were held whole
  ProbeLimits limits;
  limits.body_budget = std::make_shared<BodyBudget>(kBudget);
  const std::size_t rss_before = peak_rss_bytes();
  asio::io_context io;
  const auto results = probe_all_at_once(io, site.targets(kTargets), limits);
  const std::size_t grew = peak_rss_bytes() - rss_before;

  ASSERT_EQ(results.size(), static_cast<std::size_t>(kTargets));
  EXPECT_EQ(limits.body_budget->in_use(), 0u) << "every probe gave back what it held";
  std::size_t matched = 0, refused = 0;
  for (const auto& r : results) {
    ASSERT_EQ(r.error, ErrorClass::none) << r.error_detail;
    EXPECT_EQ(r.http_status, std::optional<int>(200));
    if (r.regexp_match == true) {
      ++matched;
      EXPECT_TRUE(r.ok);
      EXPECT_EQ(r.body_bytes, site.body.size());  // searched to its last bytes, where the match is
    } else {
      ++refused;
      EXPECT_FALSE(r.ok);
      EXPECT_FALSE(r.regexp_match.has_value());
      EXPECT_NE(r.error_detail.find("checker.max_body_memory_bytes (16 MiB) is held by other probes"),
                std::string::npos)
          << r.error_detail;
    }
  }
  EXPECT_GT(matched, 0u);
  EXPECT_LT(grew, kBudget + (200u << 20)) << "peak RSS grew by " << (grew >> 20) << " MiB; " << matched
                                          << " bodies searched whole, " << refused << " refused";
}

TEST(BodyBudget, AProbeThatFindsNoRoomSaysSoInItsResult) {
  BigSite site(256u << 10);
  ProbeLimits limits;
  limits.body_budget = std::make_shared<BodyBudget>(1024);  // less than one piece
  asio::io_context io;
  const auto results = probe_all_at_once(io, site.targets(1), limits);
  ASSERT_EQ(results.size(), 1u);
  const auto& r = results[0];
  EXPECT_EQ(r.error, ErrorClass::none);
  EXPECT_EQ(r.http_status, std::optional<int>(200));
  EXPECT_FALSE(r.ok) << "a regexp that could not be searched is not a match";
  EXPECT_FALSE(r.regexp_match.has_value());
  EXPECT_EQ(r.error_detail,
            "regexp not searched past 0 body bytes: checker.max_body_memory_bytes (1024 bytes) is held by other probes");
  EXPECT_EQ(limits.body_budget->in_use(), 0u);
}

TEST(BodyBudget, WithRoomTheStreamedSearchFindsWhatTheWholeBodySearchFinds) {
  BigSite site(3u << 20);
  asio::io_context io;
  const auto results = probe_all_at_once(io, site.targets(3), ProbeLimits{});
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.ok) << r.error_detail;
    EXPECT_EQ(r.regexp_match, std::optional<bool>(true));
    EXPECT_EQ(r.body_bytes, site.body.size());
  }
}

}  // namespace
}  // namespace webmon::checker
