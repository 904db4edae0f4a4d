// Name resolution for real: the checker's c-ares resolver and probes against a scripted DNS
// server (support/dns_server.hpp) on the loopback of a private network namespace, with that
// namespace's own /etc/resolv.conf and /etc/hosts. No mock of the resolver; no packet leaves.
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "support/dns_server.hpp"
#include "support/isolation.hpp"
#include "support/stack.hpp"
#include "test_servers.hpp"
#include "webmon/checker/metrics.hpp"
#include "webmon/checker/probe.hpp"
#include "webmon/checker/resolver.hpp"
#include "webmon/checker/scheduler.hpp"
#include "webmon/common/http_url.hpp"

namespace webmon::checker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using test::http_response;
using test::respond_with;
using test::TestServer;

constexpr auto kGenerous = std::chrono::seconds(20);

std::shared_ptr<TargetConfig> make_target(const std::string& name, const std::string& url,
                                          std::chrono::nanoseconds timeout = kGenerous,
                                          IpFamily family = IpFamily::v4) {
  return test::make_target(url, timeout, name, family);
}

// What the child reports of one probe, one tab-separated line.
struct Seen {
  ErrorClass error = ErrorClass::none;
  std::string status, peer, cached, detail;
  double dns = -1, total = 0;
};

std::string line_of(const CheckResult& r) {
  std::ostringstream os;
  os << static_cast<int>(r.error) << '\t' << (r.http_status ? std::to_string(*r.http_status) : "-") << '\t'
     << (r.peer.empty() ? "-" : r.peer) << '\t' << (r.dns_cached ? (*r.dns_cached ? "1" : "0") : "-") << '\t'
     << (r.timings.dns ? *r.timings.dns : -1.0) << '\t' << r.timings.total << '\t' << r.error_detail << '\n';
  return os.str();
}

// The child's report: probe lines, then "Q<tab>name<tab>count" lines and "M<tab>text" notes.
struct Report {
  std::vector<Seen> probes;
  std::map<std::string, std::uint64_t> queries;
  std::map<std::string, std::string> notes;
};

Report parse_report(const std::string& text) {
  Report rep;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string first;
    std::getline(f, first, '\t');
    if (first == "Q") {
      std::string name, n;
      std::getline(f, name, '\t');
      std::getline(f, n);
      rep.queries[name] = std::stoull(n);
      continue;
    }
    if (first == "M") {
      std::string key, value;
      std::getline(f, key, '\t');
      std::getline(f, value);
      rep.notes[key] = value;
      continue;
    }
    Seen s;
    s.error = static_cast<ErrorClass>(std::stoi(first));
    std::string dns, total;
    std::getline(f, s.status, '\t');
    std::getline(f, s.peer, '\t');
    std::getline(f, s.cached, '\t');
    std::getline(f, dns, '\t');
    std::getline(f, total, '\t');
    std::getline(f, s.detail);
    s.dns = std::stod(dns);
    s.total = std::stod(total);
    rep.probes.push_back(s);
  }
  return rep;
}

// Everything inside the namespace: the DNS server on 127.0.0.1:53, an HTTP site on 127.0.0.1 and
// ::1 (one port), a resolver, and probes run on one io_context.
class World {
 public:
  World(const std::string& zone, std::chrono::milliseconds dns_delay, CheckerDns dns_config)
      : dns_(zone, "127.0.0.1", 53, dns_delay),
        v4_(io_, respond_with(http_response(200, "hello")), nullptr, asio::ip::make_address("127.0.0.1")),
        config_(std::move(dns_config)),
        resolver_(std::make_shared<Resolver>(io_.get_executor(), config_)) {
    try {
      v6_.emplace(io_, respond_with(http_response(200, "hello")), nullptr, asio::ip::make_address("::1"),
                  v4_.port());
    } catch (const std::exception&) {
      // No ::1 here; the AAAA test then reports it.
    }
  }

  std::string url(const std::string& host) const { return "http://" + host + ":" + std::to_string(v4_.port()) + "/"; }
  bool has_v6() const { return v6_.has_value(); }
  webmon::test::DnsServer& dns() { return dns_; }
  asio::any_io_executor resolver_executor() { return io_.get_executor(); }
  void use_resolver(std::shared_ptr<Resolver> r) { resolver_ = std::move(r); }
  Resolver& resolver() { return *resolver_; }

  // Runs the probes all at once and waits for every result (in the order given).
  std::vector<CheckResult> probe_all(const std::vector<std::shared_ptr<TargetConfig>>& targets) {
    std::vector<std::optional<CheckResult>> results(targets.size());
    std::size_t left = targets.size();
    std::vector<TargetConfig> configs;
    for (const auto& t : targets) configs.push_back(*t);
    const auto ctx = ProbeContext::for_targets(configs);  // one TLS context set for all: they are alike
    for (std::size_t i = 0; i < targets.size(); ++i) {
      asio::co_spawn(io_, run_probe(targets[i], ctx, resolver_), [&, i](std::exception_ptr e, CheckResult r) {
        if (e) std::rethrow_exception(e);
        results[i] = std::move(r);
        if (--left == 0) io_.stop();
      });
    }
    asio::steady_timer backstop(io_, std::chrono::minutes(2));  // against a hung probe only
    backstop.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) io_.stop();
    });
    io_.restart();
    io_.run();
    std::vector<CheckResult> out;
    for (auto& r : results) {
      if (!r) throw std::runtime_error("a probe never finished");
      out.push_back(std::move(*r));
    }
    return out;
  }
  CheckResult probe(const std::shared_ptr<TargetConfig>& t) { return probe_all({t}).at(0); }

  // Reports `r` and the queries the server saw for `names`.
  std::string report(const std::vector<CheckResult>& results, const std::vector<std::string>& names) {
    std::string out;
    for (const auto& r : results) out += line_of(r);
    for (const auto& n : names) out += "Q\t" + n + "\t" + std::to_string(dns_.queries(n)) + "\n";
    return out;
  }

 private:
  asio::io_context io_;
  webmon::test::DnsServer dns_;
  TestServer v4_;
  std::optional<TestServer> v6_;
  CheckerDns config_;
  std::shared_ptr<Resolver> resolver_;
};

class DnsTest : public ::testing::Test {
 protected:
  // Runs `body` in a namespace whose resolv.conf names 127.0.0.1, where the scripted server
  // serves `zone` (plus `delay` on every answer). c-ares's own timeout is far beyond the probes'.
  Report isolated(const std::string& zone, const std::function<std::string(World&)>& body,
                  std::chrono::milliseconds delay = 0ms, CheckerDns config = {},
                  const std::string& hosts = "127.0.0.1 localhost\n::1 localhost\n") {
    const auto hosts_file = dir_.write("hosts", hosts);
    const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n");
    const auto out = webmon::test::run_isolated(
        [&]() {
          World w(zone, delay, config);
          return body(w);
        },
        hosts_file, resolv);
    skipped_ = out.skipped;
    skip_reason_ = out.text;
    if (out.skipped) return {};
    return parse_report(out.text);
  }

  bool skipped_ = false;
  std::string skip_reason_;
  webmon::test::TempDir dir_;
};

#define REQUIRE_ISOLATED() WEBMON_REQUIRE_ISOLATED((webmon::test::Isolated{skipped_, skip_reason_}))

TEST_F(DnsTest, ASlowNameServerStillAnswersWithinTheDeadline) {
  const auto rep = isolated("slow.test A 127.0.0.1\nslow.test DELAY 300\n", [](World& w) {
    return w.report({w.probe(make_target("slow", w.url("slow.test")))}, {"slow.test"});
  });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 1u);
  const auto& p = rep.probes[0];
  EXPECT_EQ(p.error, ErrorClass::none) << p.detail;
  EXPECT_EQ(p.status, "200");
  EXPECT_THAT(p.peer, ::testing::StartsWith("127.0.0.1:"));
  EXPECT_GE(p.dns, 0.3);  // the time this probe spent resolving, not a cache hit
  EXPECT_EQ(p.cached, "0");
  EXPECT_EQ(rep.queries.at("slow.test"), 1u);
}

TEST_F(DnsTest, ANameServerThatNeverAnswersIsATimeoutAtTheProbesDeadline) {
  const auto rep = isolated("hole.test BLACKHOLE\n", [](World& w) {
    return w.report({w.probe(make_target("hole", w.url("hole.test"), 700ms))}, {"hole.test"});
  });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 1u);
  const auto& p = rep.probes[0];
  EXPECT_EQ(p.error, ErrorClass::timeout) << p.detail;
  EXPECT_THAT(p.detail, HasSubstr("resolving hole.test"));
  EXPECT_GE(p.total, 0.7);   // it waited for its own deadline...
  EXPECT_LT(p.total, 30.0);  // ...not for c-ares's 30 s timeout
  EXPECT_EQ(p.cached, "-");
  EXPECT_GE(rep.queries.at("hole.test"), 1u);
}

TEST_F(DnsTest, NxdomainServfailAndRefusedAreDnsErrorsAPersonCanRead) {
  const auto rep = isolated("gone.test NXDOMAIN\nbroken.test SERVFAIL\nclosed.test REFUSED\n", [](World& w) {
    return w.report(w.probe_all({make_target("a", w.url("gone.test")), make_target("b", w.url("broken.test")),
                                 make_target("c", w.url("closed.test"))}),
                    {});
  });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 3u);
  for (const auto& p : rep.probes) {
    EXPECT_EQ(p.error, ErrorClass::dns) << p.detail;
    EXPECT_EQ(p.status, "-");
    EXPECT_EQ(p.peer, "-");
  }
  EXPECT_EQ(rep.probes[0].detail, "resolve gone.test: NXDOMAIN");
  EXPECT_EQ(rep.probes[1].detail, "resolve broken.test: SERVFAIL from the name server");
  EXPECT_EQ(rep.probes[2].detail, "resolve closed.test: REFUSED by the name server");
}

TEST_F(DnsTest, CnameChainsAreFollowed) {
  const auto rep = isolated("www.shop.test CNAME edge.shop.test\nedge.shop.test CNAME origin.test\n"
                            "origin.test A 127.0.0.1\n",
                            [](World& w) { return w.report({w.probe(make_target("w", w.url("www.shop.test")))}, {}); });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 1u);
  EXPECT_EQ(rep.probes[0].error, ErrorClass::none) << rep.probes[0].detail;
  EXPECT_THAT(rep.probes[0].peer, ::testing::StartsWith("127.0.0.1:"));
}

TEST_F(DnsTest, AnAaaaOnlyNameWorksWithAutoAndIsADnsErrorWithIpv4) {
  const auto rep = isolated("v6only.test AAAA ::1\n", [](World& w) {
    if (!w.has_v6()) return std::string("M\tno_v6\t1\n");
    return w.report(w.probe_all({make_target("auto", w.url("v6only.test"), kGenerous, IpFamily::any),
                                 make_target("v4", w.url("v6only.test"), kGenerous, IpFamily::v4)}),
                    {});
  });
  REQUIRE_ISOLATED();
  if (rep.notes.count("no_v6")) GTEST_SKIP() << "no IPv6 loopback in the namespace";
  ASSERT_EQ(rep.probes.size(), 2u);
  EXPECT_EQ(rep.probes[0].error, ErrorClass::none) << rep.probes[0].detail;
  EXPECT_THAT(rep.probes[0].peer, ::testing::StartsWith("[::1]:"));
  EXPECT_EQ(rep.probes[1].error, ErrorClass::dns);
  EXPECT_EQ(rep.probes[1].detail, "resolve v6only.test: no address of ip_family ipv4 (NODATA)");
}

TEST_F(DnsTest, AnEtcHostsEntryNeedsNoDnsRecord) {
  const auto rep = isolated(
      "", [](World& w) { return w.report({w.probe(make_target("h", w.url("only-in-hosts.test")))}, {"only-in-hosts.test"}); },
      0ms, {}, "127.0.0.1 localhost\n127.0.0.1 only-in-hosts.test\n");
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 1u);
  EXPECT_EQ(rep.probes[0].error, ErrorClass::none) << rep.probes[0].detail;
  EXPECT_EQ(rep.queries.at("only-in-hosts.test"), 0u);  // /etc/hosts first, as the host resolves
}

TEST_F(DnsTest, ATtlOf60MeansOneQueryForManyProbesAndTtl0AQueryForEach) {
  const auto rep = isolated("cached.test A 127.0.0.1 ttl=60\nfresh.test A 127.0.0.1 ttl=0\n", [](World& w) {
    std::vector<CheckResult> all;
    for (int i = 0; i < 5; ++i) all.push_back(w.probe(make_target("c", w.url("cached.test"))));
    for (int i = 0; i < 5; ++i) all.push_back(w.probe(make_target("f", w.url("fresh.test"))));
    return w.report(all, {"cached.test", "fresh.test"});
  });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 10u);
  for (const auto& p : rep.probes) EXPECT_EQ(p.error, ErrorClass::none) << p.detail;
  EXPECT_EQ(rep.queries.at("cached.test"), 1u);
  EXPECT_EQ(rep.probes[0].cached, "0");
  for (int i = 1; i < 5; ++i) {
    EXPECT_EQ(rep.probes[static_cast<std::size_t>(i)].cached, "1");
    EXPECT_LT(rep.probes[static_cast<std::size_t>(i)].dns, 0.05);  // no round trip: read from memory
  }
  EXPECT_EQ(rep.queries.at("fresh.test"), 5u);
  for (int i = 5; i < 10; ++i) EXPECT_EQ(rep.probes[static_cast<std::size_t>(i)].cached, "0");
}

TEST_F(DnsTest, ConcurrentLookupsOfOneNameShareOneQuery) {
  const auto rep = isolated("shared.test A 127.0.0.1\nshared.test DELAY 200\n", [](World& w) {
    std::vector<std::shared_ptr<TargetConfig>> targets;
    for (int i = 0; i < 50; ++i) targets.push_back(make_target("s" + std::to_string(i), w.url("shared.test")));
    return w.report(w.probe_all(targets), {"shared.test"});
  });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 50u);
  for (const auto& p : rep.probes) EXPECT_EQ(p.error, ErrorClass::none) << p.detail;
  EXPECT_EQ(rep.queries.at("shared.test"), 1u);
}

// The webmon_checker_dns_* series a scrape shows after lookups of every outcome, as a shard folds
// its resolver's counts into the registry (CheckerMetrics::add_dns): one "M<tab>series<tab>value"
// note per series.
std::string dns_series(CheckerMetrics& metrics) {
  std::string out;
  std::istringstream in(prometheus::TextSerializer().Serialize(metrics.registry()->Collect()));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("webmon_checker_dns", 0) != 0) continue;
    const auto space = line.rfind(' ');
    out += "M\t" + line.substr(0, space) + "\t" + line.substr(space + 1) + "\n";
  }
  return out;
}

TEST_F(DnsTest, TheDnsMetricsCountEachOutcomeSharedLookupsAndQueryDurations) {
  // One lookup (ip_family ipv4: one A query) of each kind the server gives, ten concurrent ones
  // of a name answered after 1.2 s, and one through a resolver whose only server (127.0.0.2)
  // does not listen.
  const auto rep = isolated("gone.test NXDOMAIN\nbroken.test SERVFAIL\nclosed.test REFUSED\nv6only.test AAAA ::1\n"
                            "slow.test A 127.0.0.1\nslow.test DELAY 1200\n",
                            [](World& w) {
                              std::vector<std::shared_ptr<TargetConfig>> targets{
                                  make_target("g", w.url("gone.test")), make_target("b", w.url("broken.test")),
                                  make_target("c", w.url("closed.test")), make_target("v", w.url("v6only.test"))};
                              for (int i = 0; i < 10; ++i) {
                                targets.push_back(make_target("s" + std::to_string(i), w.url("slow.test")));
                              }
                              auto probed = w.report(w.probe_all(targets), {});
                              CheckerMetrics metrics(false);
                              LocalHistogram durations(duration_buckets());
                              metrics.add_dns(w.resolver().take_stats(), durations);
                              CheckerDns nowhere;
                              nowhere.servers = {"127.0.0.2:53"};
                              w.use_resolver(std::make_shared<Resolver>(w.resolver_executor(), nowhere));
                              probed += line_of(w.probe(make_target("n", w.url("nowhere.test"))));
                              metrics.add_dns(w.resolver().take_stats(), durations);
                              return probed + dns_series(metrics) + "M\tserver_queries\t" +
                                     std::to_string(w.dns().total_queries()) + "\n";
                            });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 15u);
  EXPECT_EQ(rep.probes[0].detail, "resolve gone.test: NXDOMAIN");
  EXPECT_EQ(rep.probes[3].detail, "resolve v6only.test: no address of ip_family ipv4 (NODATA)");
  for (std::size_t i = 4; i < 14; ++i) EXPECT_EQ(rep.probes[i].error, ErrorClass::none) << rep.probes[i].detail;
  EXPECT_THAT(rep.probes[14].detail, HasSubstr("no name server gave an answer"));
  std::string all;
  for (const auto& [k, v] : rep.notes) all += k + " " + v + "\n";
  const auto series = [&](const std::string& s) {
    const auto it = rep.notes.find(s);
    return it == rep.notes.end() ? std::string("(absent)") : it->second;
  };
  const std::string lookups = "webmon_checker_dns_lookups_total{outcome=\"";
  EXPECT_EQ(series(lookups + "ok\"}"), "1") << all;  // ten lookups of slow.test, one query
  EXPECT_EQ(series(lookups + "nxdomain\"}"), "1") << all;
  EXPECT_EQ(series(lookups + "servfail\"}"), "1") << all;
  EXPECT_EQ(series(lookups + "refused\"}"), "1") << all;
  EXPECT_EQ(series(lookups + "nodata\"}"), "1") << all;
  EXPECT_EQ(series(lookups + "no_answer\"}"), "1") << all;
  EXPECT_EQ(series(lookups + "error\"}"), "0") << all;
  EXPECT_EQ(series("webmon_checker_dns_lookups_shared_total"), "9") << all;  // the nine that joined
  EXPECT_EQ(series("webmon_checker_dns_cache_hits_total"), "0") << all;
  // One duration per query run: the five the server answered and the one nobody did.
  EXPECT_EQ(rep.notes.at("server_queries"), "5");
  const std::string h = "webmon_checker_dns_lookup_duration_seconds";
  EXPECT_EQ(series(h + "_count"), "6") << all;
  EXPECT_EQ(series(h + "_bucket{le=\"+Inf\"}"), "6") << all;
  // The delayed answer is past 1 s; the others (loopback, no delay) are within it.
  EXPECT_EQ(series(h + "_bucket{le=\"1\"}"), "5") << all;
  EXPECT_EQ(series(h + "_bucket{le=\"60\"}"), "6") << all;
  EXPECT_GE(std::stod(series(h + "_sum")), 1.2) << all;
}

TEST_F(DnsTest, ManyDistinctNamesAtOnceAreResolvedAFewHundredQueriesAtATime) {
  const auto rep = isolated(
      "*.many.test A 127.0.0.1\n",
      [](World& w) {
        std::vector<std::shared_ptr<TargetConfig>> targets;
        for (int i = 0; i < 1000; ++i) {
          targets.push_back(make_target("m" + std::to_string(i), w.url("n" + std::to_string(i) + ".many.test")));
        }
        std::size_t ok = 0;
        std::string first_failure = "none";
        for (const auto& r : w.probe_all(targets)) {
          if (r.error == ErrorClass::none) {
            ++ok;
          } else if (first_failure == "none") {
            first_failure = r.target + ": " + r.error_detail;
          }
        }
        return "M\tok\t" + std::to_string(ok) + "\nM\tmax_pending\t" + std::to_string(w.dns().max_pending()) +
               "\nM\tqueries\t" + std::to_string(w.dns().total_queries()) + "\nM\tfirst_failure\t" +
               first_failure + "\n";
      },
      50ms);
  REQUIRE_ISOLATED();
  EXPECT_EQ(rep.notes.at("ok"), "1000") << "the first failure: " << rep.notes.at("first_failure");
  EXPECT_EQ(rep.notes.at("queries"), "1000");  // each name once: nothing was lost and retried
  EXPECT_LE(std::stoull(rep.notes.at("max_pending")), 256u);  // the resolver's cap on queries at once
  EXPECT_GE(std::stoull(rep.notes.at("max_pending")), 100u);  // ...and they did run side by side
}

TEST_F(DnsTest, NegativeAnswersAreCachedBrieflyFailuresNotAtAll) {
  const auto rep = isolated("gone.test NXDOMAIN\nbroken.test SERVFAIL\n", [](World& w) {
    std::vector<CheckResult> all;
    for (int i = 0; i < 3; ++i) all.push_back(w.probe(make_target("g", w.url("gone.test"))));
    const auto before = w.dns().queries("broken.test");
    all.push_back(w.probe(make_target("b", w.url("broken.test"))));
    const auto after_one = w.dns().queries("broken.test");
    all.push_back(w.probe(make_target("b", w.url("broken.test"))));
    return w.report(all, {"gone.test", "broken.test"}) + "M\tbroken_first\t" + std::to_string(after_one - before) + "\n";
  });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 5u);
  EXPECT_EQ(rep.queries.at("gone.test"), 1u);
  EXPECT_EQ(rep.probes[1].cached, "1");
  EXPECT_EQ(rep.probes[1].detail, "resolve gone.test: NXDOMAIN");
  // SERVFAIL is not cached: the second probe asked again.
  const auto first = std::stoull(rep.notes.at("broken_first"));
  EXPECT_GE(first, 1u);
  EXPECT_EQ(rep.queries.at("broken.test"), 2 * first);
  EXPECT_EQ(rep.probes[4].cached, "0");
}

TEST_F(DnsTest, WithTheCacheOffEveryProbeResolves) {
  CheckerDns off;
  off.cache = false;
  const auto rep = isolated(
      "cached.test A 127.0.0.1 ttl=60\ngone.test NXDOMAIN\n",
      [](World& w) {
        std::vector<CheckResult> all;
        for (int i = 0; i < 3; ++i) all.push_back(w.probe(make_target("c", w.url("cached.test"))));
        for (int i = 0; i < 3; ++i) all.push_back(w.probe(make_target("g", w.url("gone.test"))));
        return w.report(all, {"cached.test", "gone.test"});
      },
      0ms, off);
  REQUIRE_ISOLATED();
  EXPECT_EQ(rep.queries.at("cached.test"), 3u);
  EXPECT_EQ(rep.queries.at("gone.test"), 3u);
  for (const auto& p : rep.probes) EXPECT_EQ(p.cached, "0");
}

TEST_F(DnsTest, ConfiguredServersReplaceResolvConf) {
  // resolv.conf names 127.0.0.1:53 (whose server knows nothing of moved.test); checker.dns.servers
  // names a second server on another port that does.
  const auto rep = isolated(
      "", [](World& w) {
        webmon::test::DnsServer other("moved.test A 127.0.0.1\n", "127.0.0.1", 0);
        CheckerDns c;
        c.servers = {"127.0.0.1:" + std::to_string(other.port())};
        auto r = std::make_shared<Resolver>(w.resolver_executor(), c);
        w.use_resolver(r);
        const auto probed = w.report({w.probe(make_target("m", w.url("moved.test")))}, {"moved.test"});
        return probed + "Q\tother\t" + std::to_string(other.queries("moved.test")) + "\n";
      });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.probes.size(), 1u);
  EXPECT_EQ(rep.probes[0].error, ErrorClass::none) << rep.probes[0].detail;
  EXPECT_EQ(rep.queries.at("moved.test"), 0u);
  EXPECT_EQ(rep.queries.at("other"), 1u);
}

TEST_F(DnsTest, ResolvConfTimeoutAndAttemptsAreHonouredAsGlibcReadsThem) {
  // c-ares 1.18 itself knows only BIND's retrans:/retry:; the checker reads timeout:/attempts:.
  const auto hosts = dir_.write("hosts", "127.0.0.1 localhost\n");
  const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:2\n");
  const auto out = webmon::test::run_isolated(
      [] {
        World w("hole.test BLACKHOLE\n", 0ms, CheckerDns{});
        return w.report({w.probe(make_target("h", w.url("hole.test")))}, {"hole.test"});
      },
      hosts, resolv);
  WEBMON_REQUIRE_ISOLATED(out);
  const auto rep = parse_report(out.text);
  ASSERT_EQ(rep.probes.size(), 1u);
  // Two tries, then c-ares gives up, well before the probe's own 20 s deadline.
  EXPECT_EQ(rep.probes[0].error, ErrorClass::dns) << rep.probes[0].detail;
  EXPECT_EQ(rep.probes[0].detail, "resolve hole.test: no answer from the name servers (2 tries timed out)");
  EXPECT_EQ(rep.queries.at("hole.test"), 2u);
  EXPECT_LT(rep.probes[0].total, 15.0);
}

TEST_F(DnsTest, NoNameServerListeningIsADnsErrorAtOnce) {
  // resolv.conf names 127.0.0.2, where nothing listens: the port-unreachable comes back at once.
  const auto hosts = dir_.write("hosts", "127.0.0.1 localhost\n");
  const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.2\noptions timeout:30 attempts:1\n");
  const auto out = webmon::test::run_isolated(
      [] {
        World w("", 0ms, CheckerDns{});
        return w.report({w.probe(make_target("x", w.url("nowhere.test")))}, {});
      },
      hosts, resolv);
  WEBMON_REQUIRE_ISOLATED(out);
  const auto rep = parse_report(out.text);
  ASSERT_EQ(rep.probes.size(), 1u);
  EXPECT_EQ(rep.probes[0].error, ErrorClass::dns) << rep.probes[0].detail;
  EXPECT_EQ(rep.probes[0].detail,
            "resolve nowhere.test: no name server gave an answer (unreachable, SERVFAIL or REFUSED)");
  EXPECT_LT(rep.probes[0].total, 15.0);  // not c-ares's 30 s timeout
}

// Rewrites a file in place (the namespace's /etc/resolv.conf or /etc/hosts is a bind mount of a
// test file: it must keep its inode).
void rewrite(const char* path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error(std::string("cannot rewrite ") + path);
}

std::string note(const std::string& key, const std::string& value) { return "M\t" + key + "\t" + value + "\n"; }

TEST_F(DnsTest, MaxTtlSecondsCapsAPositiveAnswersTtl) {
  // Both names answer with TTL 3600. capped.test is looked up through a resolver with
  // max_ttl_seconds 1, kept.test through one with the default cap (300): both are looked up again
  // and again until the capped answer has run out and was asked for again.
  const auto rep = isolated("capped.test A 127.0.0.1 ttl=3600\nkept.test A 127.0.0.1 ttl=3600\n", [](World& w) {
    CheckerDns one_second;
    one_second.max_ttl_seconds = 1;
    auto capped = std::make_shared<Resolver>(w.resolver_executor(), one_second);
    auto defaults = std::make_shared<Resolver>(w.resolver_executor(), CheckerDns{});
    std::vector<CheckResult> all;
    const auto both = [&] {
      w.use_resolver(capped);
      all.push_back(w.probe(make_target("c", w.url("capped.test"))));
      w.use_resolver(defaults);
      all.push_back(w.probe(make_target("k", w.url("kept.test"))));
    };
    const auto started = std::chrono::steady_clock::now();
    both();
    double asked_again_after = -1;  // seconds from the first lookup to the one that asked again
    const bool asked_again = webmon::test::eventually(
        [&] {
          both();
          if (w.dns().queries("capped.test") < 2) return false;
          asked_again_after = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
          return true;
        },
        15s, 200ms);
    return w.report(all, {"capped.test", "kept.test"}) + note("asked_again", asked_again ? "1" : "0") +
           note("after", std::to_string(asked_again_after));
  });
  REQUIRE_ISOLATED();
  ASSERT_EQ(rep.notes.at("asked_again"), "1") << "the capped answer was still served after 15 s";
  EXPECT_EQ(rep.queries.at("capped.test"), 2u);
  EXPECT_GE(std::stod(rep.notes.at("after")), 1.0);  // kept for its capped TTL, not less
  ASSERT_GE(rep.probes.size(), 4u);
  for (const auto& p : rep.probes) EXPECT_EQ(p.error, ErrorClass::none) << p.detail;
  // The same wait with the default cap: still the one query, the last lookup from the cache.
  EXPECT_EQ(rep.queries.at("kept.test"), 1u);
  EXPECT_EQ(rep.probes.back().cached, "1");
  EXPECT_EQ(rep.probes[rep.probes.size() - 2].cached, "0");  // the capped name's lookup that asked again
}

TEST_F(DnsTest, WithSeveralServersAFailingOneIsPassedOverForTheNext) {
  // resolv.conf names 127.0.0.1, whose server reads every query and never answers, then
  // 127.0.0.2, which answers. glibc's and c-ares's order: the first server first, the next one
  // after `timeout:` (1 s); the probes' own timeout is 10 s.
  const auto hosts = dir_.write("hosts", "127.0.0.1 localhost\n");
  const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.1\nnameserver 127.0.0.2\noptions timeout:1 attempts:2\n");
  const auto out = webmon::test::run_isolated(
      [] {
        World w("*.test BLACKHOLE\n", 0ms, CheckerDns{});
        webmon::test::DnsServer second("one.test A 127.0.0.1\ntwo.test A 127.0.0.1\n", "127.0.0.2", 53);
        const auto probed = w.report(w.probe_all({make_target("1", w.url("one.test"), 10s),
                                                  make_target("2", w.url("two.test"), 10s)}),
                                     {"one.test", "two.test"});
        return probed + "Q\tsecond:one.test\t" + std::to_string(second.queries("one.test")) + "\nQ\tsecond:two.test\t" +
               std::to_string(second.queries("two.test")) + "\n";
      },
      hosts, resolv);
  WEBMON_REQUIRE_ISOLATED(out);
  const auto rep = parse_report(out.text);
  ASSERT_EQ(rep.probes.size(), 2u);
  for (const auto& p : rep.probes) {
    EXPECT_EQ(p.error, ErrorClass::none) << p.detail;  // within the probe's timeout, not a timeout
    EXPECT_EQ(p.status, "200");
    EXPECT_THAT(p.peer, ::testing::StartsWith("127.0.0.1:"));
  }
  for (const std::string name : {"one.test", "two.test"}) {
    EXPECT_GE(rep.queries.at(name), 1u) << name << ": the silent first server was asked first";
    EXPECT_GE(rep.queries.at("second:" + name), 1u) << name << ": ...and then the second one";
  }
}

TEST_F(DnsTest, ResolvConfSearchAndNdotsDecideTheNamesAsked) {
  // `search a.test`, ndots 1 (the default): a bare name is tried with the search domain first,
  // a name with a dot as it is first. With `ndots:2`, read by a new resolver, the dotted name too
  // is tried with the search domain first. The server knows every spelling: which one it was
  // asked shows the order.
  const auto hosts = dir_.write("hosts", "127.0.0.1 localhost\n");
  const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.1\nsearch a.test\noptions timeout:30 attempts:1\n");
  const auto out = webmon::test::run_isolated(
      [] {
        World w("host.a.test A 127.0.0.1\nhost A 127.0.0.1\nb.c A 127.0.0.1\nb.c.a.test A 127.0.0.1\n", 0ms,
                CheckerDns{});
        auto probed = w.report(w.probe_all({make_target("bare", w.url("host")), make_target("dotted", w.url("b.c"))}),
                               {"host.a.test", "host", "b.c", "b.c.a.test"});
        rewrite("/etc/resolv.conf", "nameserver 127.0.0.1\nsearch a.test\noptions ndots:2 timeout:30 attempts:1\n");
        w.use_resolver(std::make_shared<Resolver>(w.resolver_executor(), CheckerDns{}));
        const auto again = w.probe(make_target("dotted2", w.url("b.c")));
        probed += line_of(again);
        for (const std::string n : {"b.c", "b.c.a.test"}) {
          probed += "Q\tndots2:" + n + "\t" + std::to_string(w.dns().queries(n)) + "\n";
        }
        return probed;
      },
      hosts, resolv);
  WEBMON_REQUIRE_ISOLATED(out);
  const auto rep = parse_report(out.text);
  ASSERT_EQ(rep.probes.size(), 3u);
  for (const auto& p : rep.probes) EXPECT_EQ(p.error, ErrorClass::none) << p.detail;
  // ndots 1: "host" (no dot) became host.a.test; "b.c" (one dot) was asked as it is.
  EXPECT_EQ(rep.queries.at("host.a.test"), 1u);
  EXPECT_EQ(rep.queries.at("host"), 0u);
  EXPECT_EQ(rep.queries.at("b.c"), 1u);
  EXPECT_EQ(rep.queries.at("b.c.a.test"), 0u);
  // ndots 2: "b.c" has fewer dots than that, so b.c.a.test was asked first (and answered).
  EXPECT_EQ(rep.queries.at("ndots2:b.c.a.test"), 1u);
  EXPECT_EQ(rep.queries.at("ndots2:b.c"), 1u);  // not asked again
}

TEST_F(DnsTest, ResolvConfRotateSpreadsQueriesOverTheServers) {
  // Two answering servers. Without `rotate` every query goes to the first; with `options rotate`
  // (read by a new resolver) they take turns.
  const auto hosts = dir_.write("hosts", "127.0.0.1 localhost\n");
  const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.1\nnameserver 127.0.0.2\noptions timeout:30 attempts:1\n");
  const auto out = webmon::test::run_isolated(
      [] {
        World w("*.r.test A 127.0.0.1\n", 0ms, CheckerDns{});
        webmon::test::DnsServer second("*.r.test A 127.0.0.1\n", "127.0.0.2", 53);
        std::vector<CheckResult> all;
        const auto four = [&](const std::string& prefix) {  // four names at once, each one query
          std::vector<std::shared_ptr<TargetConfig>> targets;
          for (int i = 0; i < 4; ++i) targets.push_back(make_target("r" + std::to_string(i), w.url(prefix + std::to_string(i) + ".r.test")));
          for (auto& r : w.probe_all(targets)) all.push_back(std::move(r));
        };
        four("plain");
        const auto plain_first = w.dns().total_queries(), plain_second = second.total_queries();
        rewrite("/etc/resolv.conf", "nameserver 127.0.0.1\nnameserver 127.0.0.2\noptions rotate timeout:30 attempts:1\n");
        w.use_resolver(std::make_shared<Resolver>(w.resolver_executor(), CheckerDns{}));
        four("rotated");
        return w.report(all, {}) + note("plain_first", std::to_string(plain_first)) +
               note("plain_second", std::to_string(plain_second)) +
               note("rotate_first", std::to_string(w.dns().total_queries() - plain_first)) +
               note("rotate_second", std::to_string(second.total_queries() - plain_second));
      },
      hosts, resolv);
  WEBMON_REQUIRE_ISOLATED(out);
  const auto rep = parse_report(out.text);
  const auto n = [&](const std::string& k) { return std::stoull(rep.notes.at(k)); };
  ASSERT_EQ(rep.probes.size(), 8u);
  for (const auto& p : rep.probes) EXPECT_EQ(p.error, ErrorClass::none) << p.detail;
  EXPECT_EQ(n("plain_first"), 4u);
  EXPECT_EQ(n("plain_second"), 0u);
  EXPECT_GE(n("rotate_first"), 1u);
  EXPECT_GE(n("rotate_second"), 1u);
  EXPECT_EQ(n("rotate_first") + n("rotate_second"), 4u);  // each lookup one query, none lost
}

// A reload as webmon-checker does it on SIGHUP: Scheduler::apply with the new config gives each
// shard a new resolver (which reads /etc/resolv.conf and /etc/hosts again) that takes over the
// old one's cache.
std::string run_reload() {
  webmon::test::DnsServer first("kept.test A 127.0.0.1 ttl=60\nmoved.test A 127.0.0.1\n", "127.0.0.1", 53);
  webmon::test::DnsServer second("moved.test A 127.0.0.1\n", "127.0.0.2", 53);  // knows nothing of kept.test
  asio::io_context http_io;
  TestServer site(http_io, respond_with(http_response(200, "ok")), nullptr, asio::ip::make_address("127.0.0.1"));
  std::thread http_thread([&] { http_io.run(); });

  const auto target = [&](const std::string& name, const std::string& host) {
    auto t = make_target(name, "http://" + host + ":" + std::to_string(site.port()) + "/", 900ms);
    t->interval = 1s;
    return *t;
  };
  std::mutex m;
  std::map<std::string, std::vector<CheckResult>> results;
  const auto count = [&](const std::string& name) {
    std::lock_guard lock(m);
    return results[name].size();
  };
  const auto any_ok_after = [&](const std::string& name, std::size_t from) {
    std::lock_guard lock(m);
    const auto& rs = results[name];
    for (std::size_t i = from; i < rs.size(); ++i) {
      if (rs[i].ok) return true;
    }
    return false;
  };
  CheckerMetrics metrics(false);
  Scheduler scheduler({1, 10000, "dns-test"},
                      [&](const CheckResult& r) {
                        std::lock_guard lock(m);
                        results[r.target].push_back(r);
                      },
                      metrics);
  scheduler.start();
  std::vector<TargetConfig> before{target("kept", "kept.test")};
  auto ctx = ProbeContext::for_targets(before);
  scheduler.apply(share_targets(std::move(before)), probe_fn(ctx), CheckerDns{});
  const bool learnt = webmon::test::eventually([&] { return any_ok_after("kept", 0); }, 20s);

  rewrite("/etc/resolv.conf", "nameserver 127.0.0.2\noptions timeout:30 attempts:1\n");
  rewrite("/etc/hosts", "127.0.0.1 localhost\n127.0.0.1 added.test\n");
  // A probe of kept.test in flight may still end with the old resolver: look at those that
  // started after the one after it.
  const auto kept_from = count("kept") + 1;
  std::vector<TargetConfig> after{target("kept", "kept.test"), target("moved", "moved.test"),
                                  target("added", "added.test")};
  ctx = ProbeContext::for_targets(after);
  scheduler.apply(share_targets(std::move(after)), probe_fn(ctx), CheckerDns{});
  const bool reloaded = webmon::test::eventually(
      [&] { return count("kept") > kept_from && any_ok_after("moved", 0) && any_ok_after("added", 0); }, 20s);
  scheduler.stop(5s);
  http_io.stop();
  http_thread.join();

  std::lock_guard lock(m);
  std::size_t kept_after = 0, kept_after_not_cached = 0;
  for (std::size_t i = kept_from; i < results["kept"].size(); ++i) {
    ++kept_after;
    if (results["kept"][i].dns_cached != true) ++kept_after_not_cached;  // the new server: NXDOMAIN
  }
  return note("learnt", learnt ? "1" : "0") + note("reloaded", reloaded ? "1" : "0") +
         note("kept_after", std::to_string(kept_after)) + note("kept_after_not_cached", std::to_string(kept_after_not_cached)) +
         "Q\tfirst:kept.test\t" + std::to_string(first.queries("kept.test")) + "\nQ\tsecond:kept.test\t" +
         std::to_string(second.queries("kept.test")) + "\nQ\tfirst:moved.test\t" + std::to_string(first.queries("moved.test")) +
         "\nQ\tsecond:moved.test\t" + std::to_string(second.queries("moved.test")) + "\nQ\tadded.test\t" +
         std::to_string(first.queries("added.test") + second.queries("added.test")) + "\n";
}

TEST_F(DnsTest, AReloadRereadsResolvConfAndHostsAndKeepsTheCache) {
  const auto hosts = dir_.write("hosts", "127.0.0.1 localhost\n");
  const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n");
  const auto out = webmon::test::run_isolated([] { return run_reload(); }, hosts, resolv);
  WEBMON_REQUIRE_ISOLATED(out);
  const auto rep = parse_report(out.text);
  ASSERT_EQ(rep.notes.at("learnt"), "1");
  ASSERT_EQ(rep.notes.at("reloaded"), "1");
  // The cache was kept: kept.test, learnt before the reload, was asked for once, of the old
  // server, and every probe after the reload read it from the cache (the new server would have
  // said NXDOMAIN).
  EXPECT_EQ(rep.queries.at("first:kept.test"), 1u);
  EXPECT_EQ(rep.queries.at("second:kept.test"), 0u);
  EXPECT_GE(std::stoull(rep.notes.at("kept_after")), 1u);
  EXPECT_EQ(rep.notes.at("kept_after_not_cached"), "0");
  // resolv.conf was read again: a name first looked up after the reload went to the new server.
  EXPECT_GE(rep.queries.at("second:moved.test"), 1u);
  EXPECT_EQ(rep.queries.at("first:moved.test"), 0u);
  // /etc/hosts too: the entry added before the reload answered without a query.
  EXPECT_EQ(rep.queries.at("added.test"), 0u);
}

// The case that made healthy sites look down with getaddrinfo: a few names whose server never
// answers among many healthy ones, through the real scheduler on two shards.
struct FleetOutcome {
  std::size_t healthy_results = 0, healthy_bad = 0, hole_results = 0, hole_not_timeout = 0, min_per_target = 0;
  std::uint64_t skipped = 0;
  std::string first_bad, first_hole_bad;
};

std::string run_fleet(bool cache) {
  webmon::test::DnsServer dns("*.site.test A 127.0.0.1\n*.hole.test BLACKHOLE\n", "127.0.0.1", 53, 20ms);
  asio::io_context http_io;
  TestServer site(http_io, respond_with(http_response(200, "ok")), nullptr, asio::ip::make_address("127.0.0.1"));
  std::thread http_thread([&] { http_io.run(); });

  std::vector<TargetConfig> configs;
  const auto add = [&](const std::string& name, const std::string& host) {
    // 250 probes/s: the case is about a black hole's cost to the others, not about the rate, and
    // it has to hold beside the other tests ctest runs at the same time under ASan.
    auto t = make_target(name, "http://" + host + ":" + std::to_string(site.port()) + "/", 3000ms);
    t->interval = 4s;
    configs.push_back(*t);
  };
  for (int i = 0; i < 1000; ++i) add("site" + std::to_string(i), "n" + std::to_string(i) + ".site.test");
  for (int i = 0; i < 5; ++i) add("hole" + std::to_string(i), "n" + std::to_string(i) + ".hole.test");

  std::mutex m;
  std::map<std::string, std::vector<CheckResult>> results;
  CheckerMetrics metrics(false);
  Scheduler scheduler({2, 10000, "dns-test"},
                      [&](const CheckResult& r) {
                        std::lock_guard lock(m);
                        results[r.target].push_back(r);
                      },
                      metrics);
  scheduler.start();
  auto ctx = ProbeContext::for_targets(configs);
  CheckerDns dns_config;
  dns_config.cache = cache;
  scheduler.apply(share_targets(std::move(configs)),
                  probe_fn(ctx),
                  dns_config);
  std::this_thread::sleep_for(13000ms);
  scheduler.stop(5s);
  http_io.stop();
  http_thread.join();

  FleetOutcome o;
  o.skipped = scheduler.skipped();
  o.min_per_target = 1u << 30;
  std::lock_guard lock(m);
  for (int i = 0; i < 1000; ++i) {
    const auto& rs = results["site" + std::to_string(i)];
    o.min_per_target = std::min(o.min_per_target, rs.size());
    for (const auto& r : rs) {
      ++o.healthy_results;
      if (!r.ok) {
        if (o.first_bad.empty()) o.first_bad = r.target + ": " + r.error_detail;
        ++o.healthy_bad;
      }
    }
  }
  for (int i = 0; i < 5; ++i) {
    for (const auto& r : results["hole" + std::to_string(i)]) {
      ++o.hole_results;
      // A timeout while resolving, or c-ares's own end of the query: with timeout:5 attempts:2 it
      // gives up 15 s after the first query (5 + 10 s), the very deadline of the probe due at
      // 12 s, which then gets either (seen: "no answer from the name servers (2 tries timed out)"),
      // after waiting most of its 3 s, not at once.
      const bool timed_out = r.error == ErrorClass::timeout && r.error_detail.find("resolving") != std::string::npos;
      const bool gave_up = r.error == ErrorClass::dns &&
                           r.error_detail.find("no answer from the name servers") != std::string::npos &&
                           r.timings.total >= 1.5;
      if (!timed_out && !gave_up) {
        if (o.first_hole_bad.empty()) o.first_hole_bad = r.target + ": " + r.error_detail;
        ++o.hole_not_timeout;
      }
    }
  }
  std::ostringstream os;
  os << "M\thealthy_results\t" << o.healthy_results << "\nM\thealthy_bad\t" << o.healthy_bad << "\nM\tfirst_bad\t"
     << o.first_bad << "\nM\thole_results\t" << o.hole_results << "\nM\thole_not_timeout\t" << o.hole_not_timeout << "\nM\tfirst_hole_bad\t" << o.first_hole_bad
     << "\nM\tmin_per_target\t" << o.min_per_target << "\nM\tskipped\t" << o.skipped << "\nM\tqueries\t"
     << dns.total_queries() << "\n";
  return os.str();
}

class DnsFleetTest : public DnsTest, public ::testing::WithParamInterface<bool> {};

TEST_P(DnsFleetTest, ABlackHoleNameNeverCostsTheHealthyTargetsAProbe) {
  const bool cache = GetParam();
  const auto hosts = dir_.write("hosts", "127.0.0.1 localhost\n");
  const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n");
  const auto out = webmon::test::run_isolated([cache] { return run_fleet(cache); }, hosts, resolv);
  WEBMON_REQUIRE_ISOLATED(out);
  const auto rep = parse_report(out.text);
  const auto n = [&](const std::string& k) { return std::stoull(rep.notes.at(k)); };
  EXPECT_EQ(n("healthy_bad"), 0u) << rep.notes.at("first_bad");
  EXPECT_EQ(n("skipped"), 0u);
  // 13 s at a 4 s interval: every target was due at least three times, and reported each.
  EXPECT_GE(n("min_per_target"), 3u);
  EXPECT_GE(n("hole_results"), 5u * 3u);
  EXPECT_EQ(n("hole_not_timeout"), 0u) << rep.notes.at("first_hole_bad");
  if (!cache) {
    EXPECT_GE(n("queries"), n("healthy_results"));  // every probe asked the server
  }
}

INSTANTIATE_TEST_SUITE_P(CacheOnAndOff, DnsFleetTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "cache" : "no_cache"; });

}  // namespace
}  // namespace webmon::checker
