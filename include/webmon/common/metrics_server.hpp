// The daemons' HTTP endpoint on `metrics_listen`: Prometheus text format on /metrics (from a
// prometheus-cpp registry), liveness on /healthz and readiness on /readyz. It runs on a thread
// and io_context of its own, so a scrape never competes with the checker's probe loops.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
}

namespace webmon {

class MetricsServer {
 public:
  // Whether the daemon can do its work (e.g. connected to Kafka and PostgreSQL). Called on the
  // server's thread for every /readyz request, so it must be thread-safe and quick (read an atomic).
  using ReadinessCheck = std::function<bool()>;

  struct Options {
    std::size_t max_header_bytes = 8 * 1024;  // a scrape request is a few hundred bytes
    std::size_t max_connections = 64;         // further connections are closed at once
    int idle_timeout_seconds = 30;            // per read or write on a connection
  };

  // `ready` may be empty: then /readyz answers like /healthz.
  MetricsServer(std::shared_ptr<prometheus::Registry> registry, ReadinessCheck ready);
  MetricsServer(std::shared_ptr<prometheus::Registry> registry, ReadinessCheck ready, Options options);
  ~MetricsServer();  // stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds `listen` ("host:port", "[v6]:port"; port 0 picks a free one) and starts serving on a
  // new thread. Throws std::runtime_error (naming the address) when it cannot parse, resolve or
  // bind; throws std::logic_error when already started.
  void start(std::string_view listen);
  // Closes the listener and every connection, and joins the thread. Idempotent.
  void stop();

  bool running() const noexcept;
  // The bound port (the real one after port 0); 0 before start().
  unsigned short port() const noexcept;
  // The bound address as "host:port", for logs and tests; empty before start().
  std::string local_endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" / "[v6]:port" / ":port" (host empty: all interfaces). Returns false for
// anything else, e.g. a missing or non-numeric port.
bool split_host_port(std::string_view listen, std::string& host, std::string& port);

}  // namespace webmon
