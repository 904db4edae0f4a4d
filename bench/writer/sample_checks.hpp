// The checks both writer benchmarks feed: a realistic mix of results for `targets` targets.
#pragma once

#include <chrono>
#include <string>

#include <fmt/format.h>

#include "webmon/common/check_result.hpp"

namespace webmon::bench {

// A realistic mix: most probes answer 200 over TLS, some 5xx, some time out or fail DNS.
inline webmon::CheckResult make_check(long i, int targets) {
  using namespace std::chrono;
  webmon::CheckResult r;
  const long t = i % targets;
  r.target = fmt::format("site-{:05}", t);
  r.url = fmt::format("https://www.site-{:05}.example.com/health?probe=webmon", t);
  const auto base = floor<days>(system_clock::now());
  // 1,000 targets every 15 s, laid out over the day: i-th message at (i / targets) * 15 s.
  r.scheduled_at = webmon::SysMillis(duration_cast<milliseconds>(base.time_since_epoch())) +
                   milliseconds((i / targets) * 15000 % 86'400'000 + t);
  r.started_at = r.scheduled_at + milliseconds(1 + i % 5);
  r.checker = "checker-a";
  const long kind = i % 100;
  if (kind == 0) {
    r.error = webmon::ErrorClass::timeout;
    r.error_detail = "no complete response within 10 s";
    r.timings.dns = 0.0012;
    r.timings.connect = 0.034;
    r.timings.total = 10.0;
  } else if (kind == 1) {
    r.error = webmon::ErrorClass::dns;
    r.error_detail = "Host not found (authoritative)";
    r.timings.total = 0.021;
  } else {
    r.http_status = kind < 4 ? 503 : 200;
    r.ok = r.http_status == 200;
    r.http_response_time = 0.05 + 0.0001 * static_cast<double>(i % 3000);
    r.regexp_match = kind % 2 == 0;
    r.timings.dns = 0.0011;
    r.timings.connect = 0.012;
    r.timings.tls = 0.025;
    r.timings.ttfb = 0.03 + 0.0001 * static_cast<double>(i % 3000);
    r.timings.transfer = 0.002;
    r.timings.total = *r.http_response_time + 0.002;
    r.body_bytes = static_cast<std::uint64_t>(2000 + i % 30000);
    r.peer = fmt::format("203.0.113.{}:443", 1 + t % 250);
    r.tls_cert_not_after = floor<seconds>(system_clock::now()) + hours(24 * 60);
  }
  return r;
}

}  // namespace webmon::bench
