// CheckResults of the shapes a checker produces (success, DNS error, redirect, HTTPS, timeout...),
// shared by the codec test and the tool whose output is validated against the JSON Schema.
#pragma once

#include <chrono>
#include <vector>

#include "webmon/common/check_result.hpp"

namespace webmon::test {

inline SysMillis sample_time(int ms_after) {
  using namespace std::chrono;
  return SysMillis{sys_days{2024y / 5 / 1} + 12h} + milliseconds{ms_after};
}

inline CheckResult sample_success() {
  CheckResult r;
  r.target = "example";
  r.url = "http://example.com/";
  r.scheduled_at = sample_time(0);
  r.started_at = sample_time(2);
  r.http_response_time = 0.125;
  r.http_status = 200;
  r.ok = true;
  r.timings = {0.001, 0.002, std::nullopt, 0.12, 0.005, 0.25};
  r.body_bytes = 1256;
  r.peer = "93.184.216.34:80";
  r.checker = "host-a";
  r.dns_cached = false;
  return r;
}

inline CheckResult sample_dns_error() {
  CheckResult r;
  r.target = "nowhere";
  r.url = "https://no-such-host.invalid/";
  r.scheduled_at = sample_time(1000);
  r.started_at = sample_time(1000);
  r.ok = false;
  r.error = ErrorClass::dns;
  r.error_detail = "resolve no-such-host.invalid: NXDOMAIN";
  r.timings.dns = std::nullopt;
  r.timings.total = 0.0312;
  r.checker = "host-a";
  return r;
}

inline CheckResult sample_redirect() {
  CheckResult r = sample_success();
  r.target = "moved";
  r.url = "http://example.com/old";
  r.redirects = 2;
  r.http_status = 404;
  r.ok = false;
  r.regexp_match = false;
  return r;
}

inline CheckResult sample_https() {
  using namespace std::chrono;
  CheckResult r = sample_success();
  r.target = "secure site \xc3\xa9";
  r.url = "https://[2001:db8::1]:8443/health?x=\"1\"";
  r.timings.tls = 0.0456789;
  r.regexp_match = true;
  r.tls_cert_not_after = floor<seconds>(sys_days{2025y / 1 / 31} + 23h + 59min + 59s);
  r.peer = "[2001:db8::1]:8443";
  r.dns_cached = true;
  return r;
}

inline CheckResult sample_timeout() {
  CheckResult r = sample_success();
  r.target = "slow";
  r.http_status = 200;
  r.http_response_time = 1.5;
  r.ok = false;
  r.error = ErrorClass::timeout;
  r.error_detail = "deadline of 10 s reached while reading the body";
  r.timings.transfer = std::nullopt;
  r.timings.total = 10;
  r.body_bytes = 65536;
  return r;
}

inline CheckResult sample_too_many_redirects() {
  CheckResult r = sample_success();
  r.target = "loop";
  r.http_status = 302;
  r.ok = false;
  r.error = ErrorClass::too_many_redirects;
  r.error_detail = "more than 10 redirects";
  r.redirects = 10;
  r.body_bytes = 0;
  return r;
}

// From a checker with checker.location set (the other samples have none, as by default).
inline CheckResult sample_located() {
  CheckResult r = sample_https();
  r.target = "shop";
  r.checker = "fra-2";
  r.location = "eu-west";
  return r;
}

inline std::vector<CheckResult> sample_results() {
  return {sample_success(), sample_dns_error(), sample_redirect(), sample_https(), sample_timeout(),
          sample_too_many_redirects(), sample_located()};
}

}  // namespace webmon::test
