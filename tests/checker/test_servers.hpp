// In-process HTTP and HTTPS servers for probe tests. Each accepted connection runs a scripted
// handler (a coroutine) that can answer, stall, cut off or talk nonsense; servers listen on a
// loopback address, port 0, on the test's own io_context.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>

#include "webmon/common/config.hpp"

namespace webmon::checker::test {

struct RecordedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string sni;  // https: the server name the client sent ("" without SNI)
  // The value of a header (names case-insensitive); "" when absent.
  std::string header(std::string_view name) const;
};

// One accepted connection, as a handler sees it.
class ServerConn {
 public:
  struct Impl;
  explicit ServerConn(std::unique_ptr<Impl> impl);
  ~ServerConn();
  ServerConn(const ServerConn&) = delete;
  ServerConn& operator=(const ServerConn&) = delete;

  // Reads one request (headers and body) and records it; nullopt when the client sent none.
  boost::asio::awaitable<std::optional<RecordedRequest>> read_request();
  // Writes raw bytes; false once the client is gone.
  boost::asio::awaitable<bool> write(std::string data);
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds d);
  // TLS: close_notify first (bounded); then the socket is closed.
  boost::asio::awaitable<void> shutdown();
  // Closes the socket at once (TLS: without close_notify).
  void close();

 private:
  std::unique_ptr<Impl> impl_;
};

using Handler = std::function<boost::asio::awaitable<void>(std::shared_ptr<ServerConn>)>;

class TestServer {
 public:
  // Serves on `address`:`port` (0: any free one) with `handler` for each connection; https when
  // `tls` is given.
  TestServer(boost::asio::io_context& io, Handler handler, std::shared_ptr<boost::asio::ssl::context> tls = nullptr,
             const boost::asio::ip::address& address = boost::asio::ip::make_address("127.0.0.1"),
             unsigned short port = 0);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  unsigned short port() const;
  // http(s)://<address>:<port><path>
  std::string url(std::string_view path = "/") const;
  std::vector<RecordedRequest> requests() const;
  std::size_t connections() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// A target for `url` (parsed), checked every minute, with `timeout` as its probe's deadline.
std::shared_ptr<TargetConfig> make_target(const std::string& url, std::chrono::nanoseconds timeout,
                                          const std::string& name = "probe-test", IpFamily family = IpFamily::any);

// A complete response with Content-Length and Connection: close.
std::string http_response(int status, std::string_view body,
                          const std::vector<std::pair<std::string, std::string>>& headers = {});

// A handler that reads the request, writes `response` and shuts the connection down.
Handler respond_with(std::string response);

}  // namespace webmon::checker::test
