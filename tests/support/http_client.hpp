// A blocking HTTP/1.1 request to 127.0.0.1, for tests that look at what a scraper or a person
// would see on a daemon's endpoint (/metrics, /healthz, /readyz).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace webmon::test {

struct HttpReply {
  int status = 0;  // 0: nothing answered (refused, reset, or no reply within 30 s)
  std::string content_type;
  std::string body;
};

// `method` is GET, HEAD, POST, ...
HttpReply http_request(unsigned short port, const std::string& method, const std::string& target);
inline HttpReply http_get(unsigned short port, const std::string& target) { return http_request(port, "GET", target); }

// The value of one series in a Prometheus text exposition: `series` is the metric name with its
// labels exactly as the daemon writes them (`webmon_writer_batches_total{outcome="committed"}`).
// nullopt when the series is not there.
std::optional<double> metric_value(std::string_view exposition, std::string_view series);
// The same, scraped from 127.0.0.1:port/metrics (nullopt also when nothing answers).
std::optional<double> scrape_metric(unsigned short port, std::string_view series);

}  // namespace webmon::test
