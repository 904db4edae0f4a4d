// The metrics endpoint answered over real HTTP on 127.0.0.1 (port 0), as Prometheus and a
// Kubernetes/compose health check would ask it.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>
#include <memory>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "support/http_client.hpp"
#include "support/stack.hpp"
#include "webmon/common/metrics_server.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

tcp::endpoint loopback(unsigned short port) { return {asio::ip::make_address("127.0.0.1"), port}; }

webmon::test::HttpReply request(unsigned short port, http::verb method, const std::string& target) {
  return webmon::test::http_request(port, std::string(http::to_string(method)), target);
}

using Reply = webmon::test::HttpReply;
using webmon::test::http_get;

class MetricsServerTest : public ::testing::Test {
 protected:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::shared_ptr<std::atomic<bool>> ready_ = std::make_shared<std::atomic<bool>>(false);
  webmon::MetricsServer server_{registry_, [r = ready_] { return r->load(); }};
};

TEST_F(MetricsServerTest, ServesRegistryInPrometheusTextFormat) {
  auto& family = prometheus::BuildCounter()
                     .Name("webmon_test_probes_total")
                     .Help("Probes by outcome")
                     .Register(*registry_);
  family.Add({{"outcome", "ok"}}).Increment(3);
  server_.start("127.0.0.1:0");
  ASSERT_NE(server_.port(), 0);
  EXPECT_EQ(server_.local_endpoint(), "127.0.0.1:" + std::to_string(server_.port()));

  const Reply r = http_get(server_.port(), "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("# HELP webmon_test_probes_total Probes by outcome\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("# TYPE webmon_test_probes_total counter\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("webmon_test_probes_total{outcome=\"ok\"} 3"), std::string::npos) << r.body;

  // A scrape sees the current values, not a snapshot from start.
  family.Add({{"outcome", "ok"}}).Increment();
  EXPECT_NE(http_get(server_.port(), "/metrics?x=1").body.find("webmon_test_probes_total{outcome=\"ok\"} 4"),
            std::string::npos);
}

TEST_F(MetricsServerTest, HealthAndReadiness) {
  server_.start("127.0.0.1:0");
  EXPECT_EQ(http_get(server_.port(), "/healthz").status, 200);

  const Reply not_ready = http_get(server_.port(), "/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "not ready\n");

  ready_->store(true);
  const Reply ready = http_get(server_.port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");

  ready_->store(false);
  EXPECT_EQ(http_get(server_.port(), "/readyz").status, 503);
  EXPECT_EQ(http_get(server_.port(), "/healthz").status, 200);  // alive even when not ready
}

TEST_F(MetricsServerTest, UnknownPathsAndMethods) {
  server_.start("127.0.0.1:0");
  EXPECT_EQ(http_get(server_.port(), "/").status, 404);
  EXPECT_EQ(http_get(server_.port(), "/metricsx").status, 404);
  EXPECT_EQ(request(server_.port(), http::verb::post, "/metrics").status, 405);
  const Reply head = request(server_.port(), http::verb::head, "/healthz");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
}

TEST_F(MetricsServerTest, ThrowingReadinessCheckMeansNotReady) {
  webmon::MetricsServer server(registry_, []() -> bool { throw std::runtime_error("kafka handle gone"); });
  server.start("127.0.0.1:0");
  EXPECT_EQ(http_get(server.port(), "/readyz").status, 503);
}

TEST_F(MetricsServerTest, EmptyReadinessCheckMeansReadyWhenAlive) {
  webmon::MetricsServer server(registry_, nullptr);
  server.start("127.0.0.1:0");
  EXPECT_EQ(http_get(server.port(), "/readyz").status, 200);
}

TEST_F(MetricsServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  server_.start("127.0.0.1:0");
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(30));
  stream.connect(loopback(server_.port()));
  for (const char* target : {"/healthz", "/metrics", "/nope"}) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    EXPECT_EQ(res.result_int(), std::string(target) == "/nope" ? 404u : 200u) << target;
  }
}

TEST_F(MetricsServerTest, OversizedRequestIsRefused) {
  server_.start("127.0.0.1:0");
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(30));
  stream.connect(loopback(server_.port()));
  http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
  req.set(http::field::host, "127.0.0.1");
  for (int i = 0; i < 4; ++i) req.set("X-Padding-" + std::to_string(i), std::string(8 * 1024, 'a'));
  beast::error_code ec;
  http::write(stream, req, ec);  // the server may close before reading it all
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res, ec);
  // 431, or a reset when the server closed with the rest of the request unread: never a 200, and
  // never silence (a server that does not answer at all would end in the client's timeout).
  EXPECT_NE(ec, beast::error::timeout) << "the server neither answered nor closed";
  EXPECT_TRUE(ec || res.result_int() == 431u) << res.result_int();
  // And the server still serves others.
  EXPECT_EQ(http_get(server_.port(), "/healthz").status, 200);
}

TEST_F(MetricsServerTest, StopClosesTheListenerAndIsIdempotent) {
  server_.start("127.0.0.1:0");
  const auto port = server_.port();
  EXPECT_TRUE(server_.running());

  // An idle keep-alive connection must not hold stop() up.
  asio::io_context ioc;
  tcp::socket idle(ioc);
  idle.connect(loopback(port));

  server_.stop();
  EXPECT_FALSE(server_.running());
  server_.stop();

  tcp::socket s(ioc);
  beast::error_code ec;
  s.connect(loopback(port), ec);
  EXPECT_TRUE(ec) << "still accepting after stop()";
}

TEST_F(MetricsServerTest, BadListenAddressesThrow) {
  EXPECT_THROW(server_.start("127.0.0.1"), std::runtime_error);
  EXPECT_THROW(server_.start("127.0.0.1:http"), std::runtime_error);
  EXPECT_THROW(server_.start("127.0.0.1:70000"), std::runtime_error);
  EXPECT_FALSE(server_.running());

  server_.start("127.0.0.1:0");
  webmon::MetricsServer second(registry_, nullptr);
  try {
    second.start("127.0.0.1:" + std::to_string(server_.port()));
    FAIL() << "bound a port already in use";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(server_.port())), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(server_.start("127.0.0.1:0"), std::logic_error);
}

TEST_F(MetricsServerTest, ConnectionsBeyondTheLimitAreClosed) {
  webmon::MetricsServer::Options options;
  options.max_connections = 1;
  webmon::MetricsServer server(registry_, nullptr, options);
  server.start("127.0.0.1:0");

  // The first connection has been served once (so the server counts it) and stays open.
  asio::io_context ioc;
  auto first = std::make_unique<beast::tcp_stream>(ioc);
  first->expires_after(std::chrono::seconds(30));
  first->connect(loopback(server.port()));
  http::request<http::empty_body> req{http::verb::get, "/healthz", 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(*first, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(*first, buffer, res);
  ASSERT_EQ(res.result_int(), 200u);

  // A second one is accepted and closed without an answer.
  {
    beast::tcp_stream second(ioc);
    second.expires_after(std::chrono::seconds(30));
    second.connect(loopback(server.port()));
    beast::error_code ec;
    http::write(second, req, ec);
    beast::flat_buffer b2;
    http::response<http::string_body> r2;
    http::read(second, b2, r2, ec);
    EXPECT_TRUE(ec) << "answered beyond max_connections: " << r2.result_int();
    EXPECT_NE(ec, beast::error::timeout) << "kept open without an answer instead of closed";
  }

  // Once the first goes away, there is room again.
  first.reset();
  EXPECT_TRUE(webmon::test::eventually([&] {
    try {
      return http_get(server.port(), "/healthz").status == 200;
    } catch (const std::exception&) {
      return false;
    }
  }));
}

TEST_F(MetricsServerTest, StopWhileClientsAreScraping) {
  prometheus::BuildCounter().Name("webmon_test_total").Help("x").Register(*registry_).Add({}).Increment();
  server_.start("127.0.0.1:0");
  const auto port = server_.port();
  std::atomic<bool> done{false};
  std::atomic<int> served{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      while (!done) {
        try {
          if (http_get(port, "/metrics").status == 200) ++served;
        } catch (const std::exception&) {
          // Refused or cut off by stop(): expected once it runs.
        }
      }
    });
  }
  EXPECT_TRUE(webmon::test::eventually([&] { return served.load() >= 20; }));
  server_.stop();  // must return with connections open and requests in flight
  EXPECT_FALSE(server_.running());
  done = true;
  for (auto& t : clients) t.join();
}

// A raw loopback client: connects (with a small receive buffer when asked, set before connect so
// that the window stays small), sends `request`, reads nothing until told to.
class RawClient {
 public:
  RawClient(unsigned short port, const std::string& request, int rcvbuf = 0) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (fd_ < 0) throw std::runtime_error("socket");
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    timeval tv{120, 0};  // far beyond the server's 30 s: a client-side timeout is a failure
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect");
    if (!request.empty() && ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      throw std::runtime_error("send");
    }
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Reads until the server ends the connection. Returns the bytes read, and whether it was the
  // server that ended it (EOF or reset) rather than this client's own timeout.
  std::pair<std::size_t, bool> read_to_end() {
    std::size_t total = 0;
    char buf[64 * 1024];
    for (;;) {
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        total += static_cast<std::size_t>(n);
        continue;
      }
      if (n == 0 || errno == ECONNRESET) return {total, true};
      if (errno == EINTR) continue;
      return {total, false};  // EAGAIN: the 120 s timeout
    }
  }

 private:
  int fd_;
};

// operations.md, "Metrics and health": 30 s idle limit, and a slow scrape never holds anything
// up. With the default options, three stalled clients: one that never sends, one that stops
// half-way through its request, and one that asks for a 7 MB /metrics and never reads it (so
// the server's write blocks). While they hang, other scrapes are answered; each is closed by the
// server, not before 30 s (a lower bound: a loaded machine only makes it later), and the unread
// scrape got less than its whole answer.
TEST_F(MetricsServerTest, StalledClientsAreClosedAtTheThirtySecondIdleLimitAndHoldUpNoOne) {
  auto& family = prometheus::BuildGauge().Name("webmon_test_bulk").Help("bulk").Register(*registry_);
  const std::string padding(200, 'p');
  for (int i = 0; i < 30000; ++i) family.Add({{"series", std::to_string(i)}, {"padding", padding}}).Set(i);
  server_.start("127.0.0.1:0");
  const auto port = server_.port();
  const auto whole = http_get(port, "/metrics").body.size();
  ASSERT_GT(whole, 6u * 1000 * 1000);  // beyond the socket buffers (tcp_wmem 4 MB at most); under the test client's 8 MB limit

  // The unread scrape first: its answer's write times out before the other two are closed, so
  // that reading it after them cannot complete the write in time.
  RawClient unread(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 4096);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(http_get(port, "/healthz").status, 200) << "held up by a stalled client";
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  const auto began = std::chrono::steady_clock::now();
  RawClient silent(port, "");
  RawClient half(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  EXPECT_EQ(http_get(port, "/metrics").body.size(), whole) << "a scrape held up by a stalled client";

  const auto [silent_bytes, silent_closed] = silent.read_to_end();
  EXPECT_TRUE(silent_closed) << "a silent connection was kept open past 120 s";
  EXPECT_EQ(silent_bytes, 0u);
  const auto [half_bytes, half_closed] = half.read_to_end();
  EXPECT_TRUE(half_closed) << "a half-sent request was kept open past 120 s";
  EXPECT_EQ(half_bytes, 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - began, std::chrono::seconds(29)) << "closed before the idle limit";
  const auto [unread_bytes, unread_closed] = unread.read_to_end();
  EXPECT_TRUE(unread_closed) << "a scrape that is not read was kept open past 120 s";
  EXPECT_LT(unread_bytes, whole) << "the server waited for the whole answer to be read";
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
}

TEST(SplitHostPort, Forms) {
  std::string host;
  std::string port;
  ASSERT_TRUE(webmon::split_host_port("127.0.0.1:9100", host, port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, "9100");
  ASSERT_TRUE(webmon::split_host_port("[::1]:0", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, "0");
  ASSERT_TRUE(webmon::split_host_port(":9101", host, port));
  EXPECT_EQ(host, "");
  ASSERT_TRUE(webmon::split_host_port("localhost:9100", host, port));
  EXPECT_EQ(host, "localhost");
  EXPECT_FALSE(webmon::split_host_port("::1:9100", host, port));
  EXPECT_FALSE(webmon::split_host_port("9100", host, port));
  EXPECT_FALSE(webmon::split_host_port("host:", host, port));
  EXPECT_FALSE(webmon::split_host_port("[::1]9100", host, port));
}

}  // namespace
