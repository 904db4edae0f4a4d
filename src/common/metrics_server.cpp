#include "webmon/common/metrics_server.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include "webmon/common/backoff.hpp"
#include "webmon/common/text.hpp"
#include "webmon/common/version.hpp"

namespace webmon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxBodyBytes = 1024;  // scrapes and probes send none
constexpr std::string_view kTextFormat = "text/plain; version=0.0.4; charset=utf-8";

std::string format_endpoint(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
  return addr.to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

bool split_host_port(std::string_view listen, std::string& host, std::string& port) {
  const auto hp = parse_host_port(listen);
  if (!hp) return false;
  host.assign(hp->host);
  port = std::to_string(*hp->port);
  return true;
}

struct MetricsServer::Impl {
  // Declared before the io_context: coroutine frames still pending when the io_context is
  // destroyed unregister their streams from `streams` as they go.
  std::shared_ptr<prometheus::Registry> registry;
  ReadinessCheck ready;
  Options options;
  std::set<beast::tcp_stream*> streams;  // open connections; server thread only
  prometheus::TextSerializer serializer;

  asio::io_context ioc{1};
  std::optional<tcp::acceptor> acceptor;
  std::thread thread;
  std::mutex lifecycle;  // start() and stop() from different threads
  std::atomic<bool> started{false};
  std::atomic<bool> running{false};
  std::atomic<unsigned short> port{0};
  std::string endpoint;  // written in start() before the thread exists

  http::response<http::string_body> respond(const http::request<http::string_body>& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "webmon/" + std::string(version()));
    res.keep_alive(req.keep_alive());
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    std::string body;
    std::string_view type = "text/plain; charset=utf-8";

    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "GET, HEAD");
      body = "method not allowed\n";
    } else if (path == "/metrics") {
      body = registry ? serializer.Serialize(registry->Collect()) : std::string();
      type = kTextFormat;
    } else if (path == "/healthz") {
      body = "ok\n";
    } else if (path == "/readyz") {
      bool is_ready = true;
      if (ready) {
        try {
          is_ready = ready();
        } catch (const std::exception& e) {
          spdlog::warn("metrics server: readiness check threw: {}", e.what());
          is_ready = false;
        }
      }
      if (!is_ready) res.result(http::status::service_unavailable);
      body = is_ready ? "ready\n" : "not ready\n";
    } else {
      res.result(http::status::not_found);
      body = "not found; try /metrics, /healthz or /readyz\n";
    }
    res.set(http::field::content_type, type);
    res.content_length(body.size());
    if (req.method() != http::verb::head) res.body() = std::move(body);
    return res;
  }

  // One connection: requests are answered in turn until the peer closes, idles out or errs.
  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    streams.insert(&stream);
    struct Forget {
      std::set<beast::tcp_stream*>& set;
      beast::tcp_stream* s;
      ~Forget() { set.erase(s); }
    } forget{streams, &stream};

    beast::flat_buffer buffer(options.max_header_bytes + kMaxBodyBytes);
    const auto timeout = std::chrono::seconds(options.idle_timeout_seconds);
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(kMaxBodyBytes);
      stream.expires_after(timeout);
      auto [rec, n] = co_await http::async_read(stream, buffer, parser, kUseTuple);
      (void)n;
      if (rec) {
        // An oversized request gets an answer; anything else (EOF, timeout, garbage) just ends.
        std::optional<http::status> status;
        if (rec == http::error::header_limit || rec == http::error::buffer_overflow) {
          status = http::status::request_header_fields_too_large;
        } else if (rec == http::error::body_limit) {
          status = http::status::payload_too_large;
        } else if (rec == http::error::bad_method || rec == http::error::bad_target ||
                   rec == http::error::bad_version) {
          status = http::status::bad_request;
        }
        if (status) {
          http::response<http::string_body> res{*status, 11};
          res.keep_alive(false);
          res.set(http::field::content_type, "text/plain; charset=utf-8");
          res.body() = std::string(http::obsolete_reason(*status)) + "\n";
          res.prepare_payload();
          stream.expires_after(timeout);
          co_await http::async_write(stream, res, kUseTuple);
        }
        break;
      }
      const auto& req = parser.get();
      auto res = respond(req);
      const bool keep_alive = res.keep_alive();
      stream.expires_after(timeout);
      auto [wec, wn] = co_await http::async_write(stream, res, kUseTuple);
      (void)wn;
      if (wec || !keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  asio::awaitable<void> accept_loop() {
    asio::steady_timer backoff(ioc);
    Backoff waits(std::chrono::milliseconds(100), std::chrono::seconds(2));
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(kUseTuple);
      if (!acceptor->is_open()) co_return;
      if (ec) {
        // E.g. out of file descriptors: wait, longer each time, instead of spinning on the error.
        spdlog::warn("metrics server: accept failed: {}", ec.message());
        backoff.expires_after(waits.next());
        co_await backoff.async_wait(kUseTuple);
        continue;
      }
      waits.reset();
      if (streams.size() >= options.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
        continue;
      }
      asio::co_spawn(ioc, session(std::move(socket)), [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::warn("metrics server: connection failed: {}", ex.what());
        }
      });
    }
  }
};

MetricsServer::MetricsServer(std::shared_ptr<prometheus::Registry> registry, ReadinessCheck ready)
    : MetricsServer(std::move(registry), std::move(ready), Options{}) {}

MetricsServer::MetricsServer(std::shared_ptr<prometheus::Registry> registry, ReadinessCheck ready,
                             Options options)
    : impl_(std::make_unique<Impl>()) {
  impl_->registry = std::move(registry);
  impl_->ready = std::move(ready);
  impl_->options = options;
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start(std::string_view listen) {
  std::lock_guard lock(impl_->lifecycle);
  if (impl_->started) throw std::logic_error("metrics server: already started");
  std::string host;
  std::string port;
  if (!split_host_port(listen, host, port)) {
    throw std::runtime_error("metrics_listen \"" + std::string(listen) +
                             "\": expected host:port, e.g. 127.0.0.1:9100 or [::1]:9100");
  }
  if (host.empty()) host = "0.0.0.0";

  boost::system::error_code ec;
  tcp::resolver resolver(impl_->ioc);
  const auto results = resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec) throw std::runtime_error("metrics_listen " + std::string(listen) + ": " + ec.message());

  std::string last_error = "no address";
  for (const auto& entry : results) {
    tcp::acceptor acceptor(impl_->ioc);
    const auto ep = entry.endpoint();
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      last_error = ec.message();
      continue;
    }
    const auto bound = acceptor.local_endpoint(ec);
    if (ec) { last_error = ec.message(); continue; }
    impl_->acceptor.emplace(std::move(acceptor));
    impl_->port = bound.port();
    impl_->endpoint = format_endpoint(bound);
    break;
  }
  if (!impl_->acceptor) throw std::runtime_error("metrics_listen " + std::string(listen) + ": " + last_error);

  asio::co_spawn(impl_->ioc, impl_->accept_loop(), asio::detached);
  impl_->started = true;
  impl_->running = true;
  impl_->thread = std::thread([impl = impl_.get()] {
    try {
      impl->ioc.run();
    } catch (const std::exception& e) {
      spdlog::error("metrics server stopped: {}", e.what());
    }
    impl->running = false;
  });
  spdlog::info("metrics endpoint on http://{}/metrics", impl_->endpoint);
}

void MetricsServer::stop() {
  std::lock_guard lock(impl_->lifecycle);
  if (!impl_->thread.joinable()) return;
  // Close from the server's own thread: the acceptor and streams are not thread-safe.
  asio::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor->close(ignored);
    for (auto* s : impl->streams) s->socket().close(ignored);
  });
  impl_->thread.join();
  impl_->running = false;
}

bool MetricsServer::running() const noexcept { return impl_->running; }

unsigned short MetricsServer::port() const noexcept { return impl_->port; }

std::string MetricsServer::local_endpoint() const {
  std::lock_guard lock(impl_->lifecycle);
  return impl_->endpoint;
}

}  // namespace webmon
