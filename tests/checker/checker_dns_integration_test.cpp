// Integration (real Kafka from scripts/stack, the real webmon-checker binary, a real DNS server):
// the checker runs inside a private network namespace (webmon-test-netns) whose resolv.conf names a
// scripted DNS server on the namespace's loopback; its targets are host names. Kafka's port and the
// test site's port are forwarded into the namespace, so the checker publishes to the real broker,
// and the test reads the topic back as a user would.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <gmock/gmock.h>

#include "support/http_site.hpp"
#include "support/isolation.hpp"
#include "support/kafka_topic.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/common/check_result.hpp"

namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
using webmon::test::ChildProcess;
using webmon::test::TempDir;

unsigned short kafka_port() {
  const auto bootstrap = webmon::test::kafka_bootstrap();
  return static_cast<unsigned short>(std::stoi(bootstrap.substr(bootstrap.rfind(':') + 1)));
}

std::string target_yaml(const std::string& name, const std::string& url) {
  return "  - name: " + name + "\n    target: \"" + url + "\"\n    check_interval_seconds: 1\n" +
         "    timeout_seconds: 0.8\n";
}

std::map<std::string, std::uint64_t> read_counts(const std::filesystem::path& file) {
  std::map<std::string, std::uint64_t> out;
  std::ifstream in(file);
  std::string name;
  std::uint64_t n = 0;
  while (in >> name >> n) out[name] = n;
  return out;
}

// The process webmon-test-netns runs (the checker itself, inside the namespace).
std::optional<pid_t> child_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t child = 0;
  if (in >> child) return child;
  return std::nullopt;
}

// The thread (event loop) a target lives on with `threads` of them, by the rule docs/ARCHITECTURE.md
// gives (Threads): FNV-1a, 64 bit, of the target's name, modulo the number of threads.
unsigned thread_of(const std::string& name, unsigned threads) {
  std::uint64_t h = 14695981039346656037ull;
  for (const unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<unsigned>(h % threads);
}

// Bodies HttpSite does not serve, on 127.0.0.1 (port 0): GET /big is "a", 2 MiB of "x", then "z";
// GET /backtrack a short body on which (x+x+)+[yz] backtracks past PCRE2's match limit without
// reaching the body's end. It counts the requests it answered per path.
class BodySite {
 public:
  static constexpr std::size_t kBigBytes = (2u << 20) + 2;
  BodySite() {
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~BodySite() {
    io_.stop();
    thread_.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  int hits(const std::string& path) const {
    std::lock_guard l(m_);
    const auto it = hits_.find(path);
    return it == hits_.end() ? 0 : it->second;
  }

 private:
  using tcp = boost::asio::ip::tcp;
  boost::asio::awaitable<void> serve(tcp::socket socket) {
    namespace asio = boost::asio;
    asio::streambuf buf;
    auto [ec, n] = co_await asio::async_read_until(socket, buf, "\r\n\r\n", asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    const std::string head(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(n));
    const auto sp1 = head.find(' ');
    const std::string path = head.substr(sp1 + 1, head.find(' ', sp1 + 1) - sp1 - 1);
    {
      std::lock_guard l(m_);
      ++hits_[path];
    }
    const std::string body = path == "/big" ? "a" + std::string(kBigBytes - 2, 'x') + "z"
                                            : "<p>" + std::string(40, 'x') + "!</p>";
    const std::string response = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    co_await asio::async_write(socket, asio::buffer(response), asio::as_tuple(asio::use_awaitable));
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
  }
  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec) co_return;
      boost::asio::co_spawn(io_, serve(std::move(socket)), boost::asio::detached);
    }
  }
  boost::asio::io_context io_{1};
  tcp::acceptor acceptor_{io_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)};
  std::thread thread_;
  mutable std::mutex m_;
  std::map<std::string, int> hits_;
};

// A topic's messages per key, each key's in the order of scheduled_at.
std::map<std::string, std::vector<json::object>> by_target(const std::vector<webmon::test::KafkaRecord>& records) {
  std::map<std::string, std::vector<json::object>> msgs;
  for (const auto& r : records) msgs[r.key].push_back(json::parse(r.value).as_object());
  for (auto& [name, ms] : msgs) {
    std::sort(ms.begin(), ms.end(), [](const json::object& a, const json::object& b) {
      return json::value_to<std::string>(a.at("scheduled_at")) < json::value_to<std::string>(b.at("scheduled_at"));
    });
  }
  return msgs;
}

TEST(CheckerDnsIntegration, HostNameTargetsResolveThroughARealDnsServerAndReachTheTopic) {
  if (::geteuid() != 0) {
    if (webmon::test::must_not_skip()) FAIL() << "CI runs as root; network namespaces need it";
    GTEST_SKIP() << "SKIPPED: needs root for a private network namespace";
  }
  webmon::test::HttpSite site;
  TempDir dir;
  const auto topic = webmon::test::unique_name("dns");
  const std::string port = std::to_string(site.port());
  const auto zone = dir.write("zone.txt",
                              "shop.test A 127.0.0.1 ttl=60\n"
                              "www.shop.test CNAME shop.test\n"
                              "fresh.test A 127.0.0.1 ttl=0\n"
                              "gone.test NXDOMAIN\n"
                              "hole.test BLACKHOLE\n"
                              "ab.test A 127.0.0.1 ttl=60\nij.test A 127.0.0.1 ttl=60\n"
                              "ef.test A 127.0.0.1 ttl=60\nkm.test A 127.0.0.1 ttl=60\n");
  const auto hosts = dir.write("hosts", "127.0.0.1 localhost\n::1 localhost\n");
  // Pairs of targets with one host name each: each thread has its own DNS cache, so a name is
  // asked for once per thread its targets live on (two of these pairs share a thread, two do not).
  const std::vector<std::array<std::string, 3>> pairs{
      {"alpha", "bravo", "ab.test"}, {"india", "juliett", "ij.test"}, {"echo", "foxtrot", "ef.test"},
      {"kilo", "mike", "km.test"}};
  std::string pair_targets;
  for (const auto& [a, b, host] : pairs) {
    pair_targets += target_yaml(a, "http://" + host + ":" + port + "/pair") +
                    target_yaml(b, "http://" + host + ":" + port + "/pair");
  }
  const auto cfg = dir.write(
      "config.yml",
      "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() + "\"\n  topic: " + topic +
          "\n  topic_partitions: 2\n"
          "checker:\n  threads: 2\n  instance_id: dns-it\n  metrics_listen: \"127.0.0.1:9101\"\n"
          "targets:\n" +
          target_yaml("shop", "http://shop.test:" + port + "/ok") +
          target_yaml("www", "http://www.shop.test:" + port + "/ok") +
          target_yaml("fresh", "http://fresh.test:" + port + "/ok") +
          target_yaml("gone", "http://gone.test:" + port + "/ok") +
          target_yaml("hole", "http://hole.test:" + port + "/ok") + pair_targets);
  const auto counts = dir.path() / "dns-counts.txt";
  ChildProcess checker({WEBMON_TEST_NETNS_BIN, "--hosts", hosts.string(), "--dns", zone.string(), "--dns-counts",
                        counts.string(), "--forward", std::to_string(kafka_port()), "--forward", port, "--",
                        WEBMON_CHECKER_BIN, "--config", cfg.string()},
                       dir.path() / "checker.log");
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/ok") >= 15; }, 90s)) << checker.log();

  // /metrics, inside the namespace, as an operator on that host would scrape it.
  std::string metrics;
  if (const auto inner = child_of(checker.pid())) {
    const auto [rc, out] = webmon::test::run_command(
        {"nsenter", "--target", std::to_string(*inner), "--net", "curl", "-s", "http://127.0.0.1:9101/metrics"});
    metrics = out;
    EXPECT_EQ(rc, 0) << out;
  }
  checker.signal(SIGTERM);  // passed on to the checker by webmon-test-netns
  const auto status = checker.wait_for_exit(60s);
  ASSERT_TRUE(status.has_value()) << checker.log();
  EXPECT_EQ(*status, 0) << checker.log();

  std::map<std::string, std::vector<json::object>> msgs;
  for (const auto& r : webmon::test::read_topic(topic, 39)) msgs[r.key].push_back(json::parse(r.value).as_object());
  ASSERT_EQ(msgs.size(), 13u) << checker.log();
  for (auto& [name, ms] : msgs) {
    std::sort(ms.begin(), ms.end(), [](const json::object& a, const json::object& b) {
      return json::value_to<std::string>(a.at("scheduled_at")) < json::value_to<std::string>(b.at("scheduled_at"));
    });
    ASSERT_GE(ms.size(), 3u) << name;
    // One message per due probe: scheduled_at steps by exactly the interval (the black hole too).
    for (std::size_t i = 1; i < ms.size(); ++i) {
      const auto a = webmon::parse_rfc3339(json::value_to<std::string>(ms[i - 1].at("scheduled_at")));
      const auto b = webmon::parse_rfc3339(json::value_to<std::string>(ms[i].at("scheduled_at")));
      ASSERT_TRUE(a && b);
      EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(*b - *a).count(), 1000) << name << " #" << i;
    }
  }
  const std::string peer = "127.0.0.1:" + port;
  for (const auto& name : {"shop", "www", "fresh"}) {
    for (const auto& m : msgs.at(name)) {
      EXPECT_EQ(m.at("ok"), json::value(true)) << name << ": " << json::serialize(m);
      EXPECT_EQ(json::value_to<std::string>(m.at("peer")), peer);
      EXPECT_TRUE(m.at("timings").at("dns").is_number());
    }
  }
  // TTL 60: the first probe asked the server, the later ones were answered from the cache.
  EXPECT_EQ(msgs.at("shop").front().at("dns_cached"), json::value(false));
  EXPECT_EQ(msgs.at("shop").back().at("dns_cached"), json::value(true));
  // TTL 0: every probe asked.
  for (const auto& m : msgs.at("fresh")) EXPECT_EQ(m.at("dns_cached"), json::value(false));
  for (const auto& m : msgs.at("gone")) {
    EXPECT_EQ(json::value_to<std::string>(m.at("error")), "dns");
    EXPECT_EQ(json::value_to<std::string>(m.at("error_detail")), "resolve gone.test: NXDOMAIN");
  }
  for (const auto& m : msgs.at("hole")) {
    EXPECT_EQ(json::value_to<std::string>(m.at("error")), "timeout");
    EXPECT_NE(json::value_to<std::string>(m.at("error_detail")).find("resolving hole.test"), std::string::npos);
  }

  const auto q = read_counts(counts);
  // ip_family auto: one A and one AAAA query, once for the whole run (www's CNAME chain too).
  EXPECT_EQ(q.at("shop.test"), 2u);
  EXPECT_EQ(q.at("www.shop.test"), 2u);
  EXPECT_GE(q.at("fresh.test"), 2 * msgs.at("fresh").size());
  // NXDOMAIN is cached for checker.dns.negative_ttl_seconds (30 s): asked once.
  EXPECT_EQ(q.at("gone.test"), 2u);
  // threads: 2, targets on the thread FNV-1a of their name picks: a pair's name was asked for
  // (A and AAAA) once if both live on one thread, once by each thread if not.
  std::size_t together = 0;
  for (const auto& [a, b, host] : pairs) {
    const bool one_thread = thread_of(a, 2) == thread_of(b, 2);
    together += one_thread ? 1 : 0;
    EXPECT_EQ(q.at(host), one_thread ? 2u : 4u) << a << " and " << b << " on " << (one_thread ? "one thread" : "two");
  }
  EXPECT_EQ(together, 2u);  // the rule above puts the pairs as this test means them

  EXPECT_NE(metrics.find("webmon_checker_dns_lookups_total{outcome=\"ok\"}"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("webmon_checker_dns_cache_hits_total "), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("webmon_checker_dns_cache_hits_total 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("webmon_checker_dns_lookups_total{outcome=\"nxdomain\"} 1"), std::string::npos) << metrics;
}

// SIGHUP in a running checker: checker.dns.servers and checker.max_body_memory_bytes take effect
// for the probes that follow. And a regexp that backtracks past PCRE2's match limit is logged.
TEST(CheckerDnsIntegration, AReloadAppliesDnsServersAndTheBodyBudgetToTheNextProbes) {
  if (::geteuid() != 0) {
    if (webmon::test::must_not_skip()) FAIL() << "CI runs as root; network namespaces need it";
    GTEST_SKIP() << "SKIPPED: needs root for a private network namespace";
  }
  webmon::test::HttpSite site;
  BodySite bodies;
  TempDir dir;
  const auto topic = webmon::test::unique_name("dns-reload");
  const std::string port = std::to_string(site.port()), body_port = std::to_string(bodies.port());
  const auto zone = dir.write("zone.txt", "moved.test A 127.0.0.1 ttl=60\n");
  const auto hosts = dir.write("hosts", "127.0.0.1 localhost\n::1 localhost\n");
  // Before: the only name server is 127.0.0.3, where nothing listens; 1 MiB for bodies, less than
  // /big's regexp (a[^z]*z, a partial match from the first byte) must hold. After: the zone's
  // server (127.0.0.1, also resolv.conf's) and 16 MiB.
  const auto config = [&](const std::string& server, const std::string& budget) {
    return "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() + "\"\n  topic: " + topic +
           "\nchecker:\n  threads: 2\n  instance_id: dns-reload-it\n  max_body_memory_bytes: " + budget +
           "\n  dns:\n    servers: [\"" + server + "\"]\n"
           "targets:\n" +
           target_yaml("moved", "http://moved.test:" + port + "/ok") +
           target_yaml("big", "http://127.0.0.1:" + body_port + "/big") +
           "    regexp: \"a[^z]*z\"\n    max_body_bytes: 4194304\n" +
           target_yaml("backtrack", "http://127.0.0.1:" + body_port + "/backtrack") +
           "    regexp: \"(x+x+)+[yz]\"\n";
  };
  const auto cfg = dir.write("config.yml", config("127.0.0.3:53", "1048576"));
  const auto counts = dir.path() / "dns-counts.txt";
  ChildProcess checker({WEBMON_TEST_NETNS_BIN, "--hosts", hosts.string(), "--dns", zone.string(), "--dns-counts",
                        counts.string(), "--forward", std::to_string(kafka_port()), "--forward", port, "--forward",
                        body_port, "--", WEBMON_CHECKER_BIN, "--config", cfg.string()},
                       dir.path() / "checker.log");
  const std::string gave_up = "regexp '(x+x+)+[yz]' gave up on a 48-byte body (";
  ASSERT_TRUE(webmon::test::eventually(
      [&] { return bodies.hits("/big") >= 2 && checker.log().find(gave_up) != std::string::npos; }, 60s))
      << checker.log();

  dir.write("config.yml", config("127.0.0.1:53", "16777216"));
  checker.signal(SIGHUP);
  ASSERT_TRUE(webmon::test::eventually([&] { return checker.log().find("reloaded:") != std::string::npos; }, 30s))
      << checker.log();
  const int big_at_reload = bodies.hits("/big");
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/ok") >= 2 && bodies.hits("/big") >= big_at_reload + 3; },
                                       60s))
      << checker.log();
  checker.signal(SIGTERM);
  const auto status = checker.wait_for_exit(60s);
  ASSERT_TRUE(status.has_value()) << checker.log();
  EXPECT_EQ(*status, 0) << checker.log();
  const std::string log = checker.log();
  EXPECT_THAT(log, ::testing::HasSubstr("reload: checker.dns.servers changed: applied"));
  EXPECT_THAT(log, ::testing::HasSubstr("reload: checker.max_body_memory_bytes changed: applied"));

  const auto msgs = by_target(webmon::test::read_topic(
      topic, static_cast<std::size_t>(bodies.hits("/big") + bodies.hits("/backtrack") + site.hits("/ok"))));
  ASSERT_EQ(msgs.size(), 3u) << log;
  // checker.dns.servers: the first probes asked 127.0.0.3 and got no answer; the last one resolved
  // through the zone's server, which saw the query.
  const auto& moved = msgs.at("moved");
  ASSERT_GE(moved.size(), 3u);
  EXPECT_EQ(json::value_to<std::string>(moved.front().at("error")), "dns") << json::serialize(moved.front());
  EXPECT_EQ(json::value_to<std::string>(moved.front().at("error_detail")),
            "resolve moved.test: no name server gave an answer (unreachable, SERVFAIL or REFUSED)");
  EXPECT_TRUE(std::any_of(moved.begin(), moved.end(), [](const json::object& m) { return m.at("ok") == json::value(true); }));
  EXPECT_NE(moved.back().at("error"), json::value("dns")) << json::serialize(moved.back());
  EXPECT_GE(read_counts(counts)["moved.test"], 1u);
  // checker.max_body_memory_bytes: at 1 MiB the search of /big found no room and said so; at
  // 16 MiB it read the body to its end and matched.
  const auto& big = msgs.at("big");
  ASSERT_GE(big.size(), 4u);
  const auto& first = big.front();
  EXPECT_EQ(first.at("ok"), json::value(false)) << json::serialize(first);
  EXPECT_TRUE(first.at("regexp_match").is_null()) << json::serialize(first);
  EXPECT_THAT(json::value_to<std::string>(first.at("error_detail")),
              ::testing::MatchesRegex("regexp not searched past [0-9]+ body bytes: checker.max_body_memory_bytes "
                                      "\\(1 MiB\\) is held by other probes"));
  const auto matched = std::find_if(big.begin(), big.end(), [](const json::object& m) {
    return m.at("regexp_match") == json::value(true);
  });
  ASSERT_NE(matched, big.end()) << json::serialize(big.back());
  EXPECT_EQ(matched->at("ok"), json::value(true)) << json::serialize(*matched);
  EXPECT_EQ(json::value_to<std::uint64_t>(matched->at("body_bytes")), BodySite::kBigBytes);
  EXPECT_THAT(json::serialize(big.back()), ::testing::Not(::testing::HasSubstr("max_body_memory_bytes")));
  // The regexp past PCRE2's match limit: no match, and a warning in the checker's log.
  for (const auto& m : msgs.at("backtrack")) {
    EXPECT_EQ(m.at("ok"), json::value(false)) << json::serialize(m);
    EXPECT_EQ(m.at("regexp_match"), json::value(false)) << json::serialize(m);
  }
  const auto at = log.find(gave_up);
  ASSERT_NE(at, std::string::npos) << log;
  const std::string line = log.substr(log.rfind('\n', at) + 1, log.find('\n', at) - log.rfind('\n', at) - 1);
  EXPECT_THAT(line, ::testing::HasSubstr("warn"));
  EXPECT_THAT(line, ::testing::HasSubstr("); counted as no match"));
}

}  // namespace
