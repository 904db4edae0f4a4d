#include "test_servers.hpp"

#include "webmon/common/http_url.hpp"

#include <strings.h>

#include <mutex>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

#include "webmon/common/http_url.hpp"

namespace webmon::checker::test {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using TlsStream = ssl::stream<tcp::socket>;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

template <class Stream>
asio::awaitable<std::optional<RecordedRequest>> read_request_on(Stream& stream, boost::beast::flat_buffer& buffer) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  const auto [ec, n] = co_await http::async_read(stream, buffer, parser, kUse);
  if (ec) co_return std::nullopt;
  const auto& req = parser.get();
  RecordedRequest out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  for (const auto& field : req) out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  out.body = req.body();
  co_return out;
}

}  // namespace

struct TestServer::State {
  State(asio::io_context& io, Handler h, std::shared_ptr<ssl::context> t)
      : acceptor(io), handler(std::move(h)), tls(std::move(t)) {}
  tcp::acceptor acceptor;
  Handler handler;
  std::shared_ptr<ssl::context> tls;
  // A server's io_context may run on several threads (body_budget_test's site does): what it
  // records is guarded.
  mutable std::mutex mutex;
  std::vector<RecordedRequest> requests;
  std::size_t connections = 0;
};

struct ServerConn::Impl {
  std::shared_ptr<TestServer::State> server;  // keeps the handler (and its captures) alive
  std::optional<tcp::socket> plain;
  std::unique_ptr<TlsStream> tls;
  boost::beast::flat_buffer buffer;
  std::string sni;

  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
};

std::string RecordedRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n.size() == name.size() && ::strncasecmp(n.data(), name.data(), n.size()) == 0) return v;
  }
  return {};
}

ServerConn::ServerConn(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServerConn::~ServerConn() = default;

asio::awaitable<std::optional<RecordedRequest>> ServerConn::read_request() {
  // (No co_await inside ?: or conditions: g++ 12 mishandles the temporaries.)
  std::optional<RecordedRequest> req;
  if (impl_->tls) {
    req = co_await read_request_on(*impl_->tls, impl_->buffer);
  } else {
    req = co_await read_request_on(*impl_->plain, impl_->buffer);
  }
  if (req) {
    req->sni = impl_->sni;
    const std::lock_guard lock(impl_->server->mutex);
    impl_->server->requests.push_back(*req);
  }
  co_return req;
}

asio::awaitable<bool> ServerConn::write(std::string data) {
  if (impl_->tls) {
    const auto [ec, n] = co_await asio::async_write(*impl_->tls, asio::buffer(data), kUse);
    co_return !ec;
  }
  const auto [ec, n] = co_await asio::async_write(*impl_->plain, asio::buffer(data), kUse);
  co_return !ec;
}

asio::awaitable<void> ServerConn::sleep(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(kUse);
}

asio::awaitable<void> ServerConn::shutdown() {
  if (impl_->tls) {
    // Bounded: a client that never answers close_notify must not keep this connection forever.
    asio::steady_timer guard(co_await asio::this_coro::executor, std::chrono::seconds(2));
    guard.async_wait([tls = impl_->tls.get()](const error_code& ec) {
      if (!ec) {
        error_code ignored;
        tls->next_layer().close(ignored);
      }
    });
    co_await impl_->tls->async_shutdown(kUse);
    guard.cancel();
  } else {
    error_code ignored;
    impl_->plain->shutdown(tcp::socket::shutdown_send, ignored);
  }
  close();
}

void ServerConn::close() {
  error_code ignored;
  impl_->socket().close(ignored);
}

namespace {

asio::awaitable<void> serve(std::shared_ptr<TestServer::State> state, tcp::socket socket) {
  auto impl = std::make_unique<ServerConn::Impl>();
  impl->server = state;
  if (state->tls) {
    impl->tls = std::make_unique<TlsStream>(std::move(socket), *state->tls);
    const auto [ec] = co_await impl->tls->async_handshake(ssl::stream_base::server, kUse);
    if (ec) co_return;  // the client refused us (as it should in the certificate tests)
    if (const char* name = SSL_get_servername(impl->tls->native_handle(), TLSEXT_NAMETYPE_host_name)) impl->sni = name;
  } else {
    impl->plain.emplace(std::move(socket));
  }
  auto conn = std::make_shared<ServerConn>(std::move(impl));
  try {
    co_await state->handler(conn);
  } catch (const std::exception&) {
    // A handler's failure shows up in the probe's result; nothing to add here.
  }
}

asio::awaitable<void> accept_loop(std::shared_ptr<TestServer::State> state) {
  for (;;) {
    auto [ec, socket] = co_await state->acceptor.async_accept(kUse);
    if (ec) {
      if (!state->acceptor.is_open()) co_return;
      continue;
    }
    {
      const std::lock_guard lock(state->mutex);
      ++state->connections;
    }
    asio::co_spawn(state->acceptor.get_executor(), serve(state, std::move(socket)), asio::detached);
  }
}

}  // namespace

std::shared_ptr<TargetConfig> make_target(const std::string& url, std::chrono::nanoseconds timeout,
                                          const std::string& name, IpFamily family) {
  auto t = std::make_shared<TargetConfig>();
  t->name = name;
  t->url = url;
  std::string why;
  auto parsed = parse_http_url(url, &why);
  if (!parsed) throw std::runtime_error("bad test URL " + url + ": " + why);
  t->parsed_url = *parsed;
  t->interval = std::chrono::minutes(1);
  t->timeout = timeout;
  t->ip_family = family;
  return t;
}

TestServer::TestServer(asio::io_context& io, Handler handler, std::shared_ptr<ssl::context> tls,
                       const asio::ip::address& address, unsigned short port)
    : state_(std::make_shared<State>(io, std::move(handler), std::move(tls))) {
  const tcp::endpoint ep(address, port);
  state_->acceptor.open(ep.protocol());
  state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  state_->acceptor.bind(ep);
  state_->acceptor.listen();
  asio::co_spawn(io, accept_loop(state_), asio::detached);
}

TestServer::~TestServer() {
  error_code ignored;
  state_->acceptor.close(ignored);
}

unsigned short TestServer::port() const { return state_->acceptor.local_endpoint().port(); }

std::string TestServer::url(std::string_view path) const {
  const auto ep = state_->acceptor.local_endpoint();
  const auto host = ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
  return fmt::format("{}://{}:{}{}", state_->tls ? "https" : "http", host, ep.port(), path);
}

std::vector<RecordedRequest> TestServer::requests() const {
  const std::lock_guard lock(state_->mutex);
  return state_->requests;
}
std::size_t TestServer::connections() const {
  const std::lock_guard lock(state_->mutex);
  return state_->connections;
}

std::string http_response(int status, std::string_view body,
                          const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status,
                                std::string_view(http::obsolete_reason(static_cast<http::status>(status))));
  for (const auto& [name, value] : headers) out += fmt::format("{}: {}\r\n", name, value);
  out += fmt::format("Content-Length: {}\r\nConnection: close\r\n\r\n", body.size());
  out += body;
  return out;
}

Handler respond_with(std::string response) {
  return [response = std::move(response)](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (!req) co_return;
    co_await conn->write(response);
    co_await conn->shutdown();
  };
}

}  // namespace webmon::checker::test
