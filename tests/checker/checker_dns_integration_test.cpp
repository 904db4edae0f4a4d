// Integration (real Kafka from scripts/stack, the real webmon-checker binary, a real DNS server):
// the checker runs inside a private network namespace (webmon-test-netns) whose resolv.conf names a
// scripted DNS server on the namespace's loopback; its targets are host names. Kafka's port and the
// test site's port are forwarded into the namespace, so the checker publishes to the real broker,
// and the test reads the topic back as a user would.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <sstream>

#include <boost/json.hpp>

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
                              "hole.test BLACKHOLE\n");
  const auto hosts = dir.write("hosts", "127.0.0.1 localhost\n::1 localhost\n");
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
          target_yaml("hole", "http://hole.test:" + port + "/ok"));
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
  for (const auto& r : webmon::test::read_topic(topic, 15)) msgs[r.key].push_back(json::parse(r.value).as_object());
  ASSERT_EQ(msgs.size(), 5u) << checker.log();
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

  EXPECT_NE(metrics.find("webmon_checker_dns_lookups_total{outcome=\"ok\"}"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("webmon_checker_dns_cache_hits_total "), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("webmon_checker_dns_cache_hits_total 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("webmon_checker_dns_lookups_total{outcome=\"nxdomain\"} 1"), std::string::npos) << metrics;
}

}  // namespace
