// Name resolution on a shard's event loop: c-ares driven by Asio (its sockets watched with
// stream_descriptor::async_wait, its timeouts on a steady_timer), a cache that honours TTLs, and
// one query for concurrent lookups of one name. Nothing blocks the io_context; no thread is made.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include "webmon/common/config.hpp"

namespace webmon::checker {

// What a name server (or /etc/hosts) said. `nxdomain` and `nodata` are answers (cached for
// checker.dns.negative_ttl_seconds); the others are failures to get one (never cached).
enum class DnsStatus { ok, nxdomain, nodata, servfail, refused, no_answer, error };
inline constexpr int kDnsStatusCount = 7;
std::string_view dns_status_label(DnsStatus s) noexcept;  // "ok", "nxdomain", ... (metric label)

struct DnsAnswer {
  DnsStatus status = DnsStatus::error;
  std::vector<boost::asio::ip::address> addresses;  // ok only; in preference order (RFC 6724)
  std::string detail;   // for error_detail, e.g. "resolve shop.example: NXDOMAIN"
  bool cached = false;  // served from the cache
};

// Thrown by the constructor when c-ares cannot be set up (a bad checker.dns.servers entry).
class DnsSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Counts kept by one resolver on its own thread; the shard folds them into the registry.
struct ResolverStats {
  std::uint64_t by_status[kDnsStatusCount] = {};  // queries finished, by outcome
  std::uint64_t cache_hits = 0;                   // lookups answered from the cache
  std::uint64_t shared = 0;                       // lookups that joined a query already running
  std::vector<double> query_seconds;              // durations of the queries finished (drained)
};

// One per shard. Used only on the executor it was made with, which must not run handlers
// concurrently. Hold it in a shared_ptr: a lookup in flight keeps it alive (a reload replaces a
// shard's resolver while probes still use the old one).
class Resolver {
 public:
  // Reads /etc/resolv.conf and /etc/hosts (through c-ares); `config.servers`, when set, replaces
  // resolv.conf's name servers. Throws DnsSetupError.
  Resolver(boost::asio::any_io_executor ex, const CheckerDns& config);
  ~Resolver();  // ares_destroy: queries still running end, their waiters see the resolver gone
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Looks up `host` (a name, not an address literal) for `family`. Returns nullopt when
  // `deadline` passes first: the waiting ends, while the query itself (bounded by c-ares's own
  // timeout and attempts) may still finish and fill the cache. Never throws for a DNS outcome.
  boost::asio::awaitable<std::optional<DnsAnswer>> resolve(std::string host, IpFamily family,
                                                           std::chrono::steady_clock::time_point deadline);

  // Takes over `older`'s cached answers (a reload keeps what was learnt), within this one's caps.
  void adopt_cache(Resolver& older);

  ResolverStats take_stats();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;  // shared with the handlers of its sockets and timer, as weak_ptr
};

}  // namespace webmon::checker
