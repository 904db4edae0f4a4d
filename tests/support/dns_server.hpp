// A scripted DNS server for tests and benchmarks: real DNS over UDP (RFC 1035 messages), answering
// from a small zone text, with per-name behaviour (answer, NXDOMAIN, SERVFAIL, REFUSED, never
// answer) and delays, and counting the queries it gets per name. It runs on a thread of its own.
// Meant for a loopback address inside a private network namespace (see netns_main.cpp).
//
// Zone text, one entry a line ('#' starts a comment); a name may start with "*." to match every
// name below it:
//   shop.test      A      127.0.0.1   [ttl=N]     (default ttl 60)
//   shop.test      AAAA   ::1         [ttl=N]
//   www.shop.test  CNAME  shop.test   [ttl=N]     (answered with the whole chain, as resolvers do)
//   gone.test      NXDOMAIN
//   broken.test    SERVFAIL
//   closed.test    REFUSED
//   hole.test      BLACKHOLE                       (the query is read and never answered)
//   slow.test      DELAY  250                      (ms, added to the server's own delay)
// A name with records of other types only gets an empty NOERROR answer (NODATA); a name not in
// the zone gets NXDOMAIN.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace webmon::test {

class DnsServer {
 public:
  // Binds udp `address`:`port` (port 0: any free port) at once; throws on a bad zone or bind.
  DnsServer(const std::string& zone_text, const std::string& address, unsigned short port,
            std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  ~DnsServer();  // stops its thread
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  unsigned short port() const noexcept;
  // Queries received for `name` (lower case, no trailing dot), of any type.
  std::uint64_t queries(std::string_view name) const;
  std::uint64_t total_queries() const noexcept;
  // The most queries it held at once while delaying their answers (DELAY or the server's delay).
  std::uint64_t max_pending() const noexcept;
  // "name count" lines, one per name queried, sorted by name.
  std::string counts_text() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace webmon::test
