// One HTTP(S) probe as one coroutine: resolve, connect, TLS handshake, request, response headers,
// body up to the cap, within one deadline, on a fresh connection. Every outcome is a CheckResult.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "webmon/checker/resolver.hpp"
#include "webmon/checker/scheduler.hpp"
#include "webmon/checker/tls.hpp"
#include "webmon/common/check_result.hpp"
#include "webmon/common/config.hpp"

namespace webmon::checker {

// The bytes of bodies held for regexp searches, over every probe of the process
// (checker.max_body_memory_bytes). Taken and given back by the probes of every shard.
class BodyBudget {
 public:
  explicit BodyBudget(std::size_t limit) noexcept : limit_(limit) {}
  // False, taking nothing, when `n` more would exceed the limit.
  bool try_take(std::size_t n) noexcept;
  void give_back(std::size_t n) noexcept { used_.fetch_sub(n, std::memory_order_relaxed); }
  void set_limit(std::size_t limit) noexcept { limit_.store(limit, std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
  std::size_t in_use() const noexcept { return used_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> limit_;
  std::atomic<std::size_t> used_{0};
};

struct ProbeLimits {
  // Status line plus header fields; a response with more is a protocol error.
  std::size_t max_header_bytes = 64 * 1024;
  // How long, at most, a TLS close_notify exchange may take after a complete response (still
  // inside the probe's deadline). Its outcome never changes the result.
  std::chrono::milliseconds tls_shutdown_grace{250};
  // Shared by every probe of the process; none: no limit (tests that are not about it).
  std::shared_ptr<BodyBudget> body_budget;
};

// What every probe of one config shares, read-only: TLS contexts and limits. Build it at load
// (and at each reload) and hand a shared_ptr to each probe.
class ProbeContext {
 public:
  explicit ProbeContext(TlsContextCache tls, ProbeLimits limits = {});
  // TLS contexts for every target, including http ones (they may redirect to https).
  // Throws TlsSetupError.
  static std::shared_ptr<const ProbeContext> for_targets(const std::vector<TargetConfig>& targets,
                                                         ProbeLimits limits = {});

  const TlsContextCache& tls() const noexcept { return tls_; }
  const ProbeLimits& limits() const noexcept { return limits_; }
  const std::string& user_agent() const noexcept { return user_agent_; }  // webmon/<version>

 private:
  TlsContextCache tls_;
  ProbeLimits limits_;
  std::string user_agent_;
};

// Probes `target` once and returns its result; never throws, and finishes by its deadline
// (target->timeout after the start, DNS included, or `not_after` if that is sooner: the scheduler
// passes a moment just before the target's next due time) plus scheduling latency.
//
// Runs on the executor it is spawned on, which must not run its handlers concurrently (an
// io_context run by one thread, or a strand), and which `resolver` was made with. Fills url,
// http_response_time, http_status, regexp_match, ok, error, error_detail, timings, body_bytes,
// redirects, tls_cert_not_after, peer and dns_cached; the caller sets target, scheduled_at,
// started_at and checker.
//
// Over redirects: http_status, http_response_time, peer, body and tls_cert_not_after are the last
// hop's; the timings dns, connect, tls, ttfb and transfer are summed over the hops.
// A DNS query still running at the deadline is left to finish (bounded by c-ares's own timeout
// and attempts); its answer then only fills the cache.
boost::asio::awaitable<CheckResult> run_probe(std::shared_ptr<const TargetConfig> target,
                                              std::shared_ptr<const ProbeContext> ctx,
                                              std::shared_ptr<Resolver> resolver,
                                              std::chrono::steady_clock::time_point not_after =
                                                  std::chrono::steady_clock::time_point::max());

// The scheduler's probe function: run_probe with `ctx` bound in and the shard's ProbeRun passed on.
ProbeFn probe_fn(std::shared_ptr<const ProbeContext> ctx);

}  // namespace webmon::checker
