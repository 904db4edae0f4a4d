// webmon-bench-http-server: the local site bench/checker probes. It answers every request with the
// same tiny 200 and `Connection: close`, as cheaply as it can, so the figures measure the prober.
//
//   webmon-bench-http-server [--address A]... [--port P] [--threads T] [--tls-cert PEM --tls-key PEM]
//
// With --tls-cert and --tls-key it speaks HTTPS instead (a full handshake per connection: no
// session tickets or cache, so every probe pays what a new visitor pays), then sends close_notify.
//
// Listens on each loopback address given (default 127.0.0.1), on port P (default 0: the first
// address gets a free port and the others try the same one), prints one `listening A:P` line per
// address on stdout, and serves until SIGTERM or SIGINT, then prints `served N` on stdout.
#include <sys/resource.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxRequestHead = 16 * 1024;
constexpr std::string_view kHead =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 3\r\n"
    "Connection: close\r\n"
    "\r\n";
constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 3\r\n"
    "Connection: close\r\n"
    "\r\n"
    "ok\n";

std::atomic<std::uint64_t> served{0};

// One request per connection. The server closes first, so TIME_WAIT stays on the server's side
// and the prober's ephemeral ports are free again at once.
asio::awaitable<void> serve(tcp::socket socket) {
  asio::streambuf head(kMaxRequestHead);
  auto [ec, n] = co_await asio::async_read_until(socket, head, "\r\n\r\n", kTuple);
  if (ec) co_return;
  const bool is_head = n >= 5 && std::string_view(static_cast<const char*>(head.data().data()), 5) == "HEAD ";
  const std::string_view reply = is_head ? kHead : kResponse;
  auto [wec, written] = co_await asio::async_write(socket, asio::buffer(reply.data(), reply.size()), kTuple);
  if (!wec) served.fetch_add(1, std::memory_order_relaxed);
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

// The same over TLS; the reply is followed by close_notify (both ways, as a careful server does).
asio::awaitable<void> serve_tls(tcp::socket socket, asio::ssl::context& tls) {
  asio::ssl::stream<tcp::socket> stream(std::move(socket), tls);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
  if (hec) co_return;
  asio::streambuf head(kMaxRequestHead);
  auto [ec, n] = co_await asio::async_read_until(stream, head, "\r\n\r\n", kTuple);
  if (ec) co_return;
  const bool is_head = n >= 5 && std::string_view(static_cast<const char*>(head.data().data()), 5) == "HEAD ";
  const std::string_view reply = is_head ? kHead : kResponse;
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(reply.data(), reply.size()), kTuple);
  if (!wec) served.fetch_add(1, std::memory_order_relaxed);
  co_await stream.async_shutdown(kTuple);
  boost::system::error_code ignored;
  stream.next_layer().close(ignored);
}

asio::ssl::context* tls_context = nullptr;  // --tls-cert/--tls-key: HTTPS

asio::awaitable<void> accept_loop(tcp::acceptor acceptor) {
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors or the like: back off a little rather than spin.
      asio::steady_timer pause(executor, std::chrono::milliseconds(5));
      co_await pause.async_wait(kTuple);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    if (tls_context != nullptr) {
      asio::co_spawn(executor, serve_tls(std::move(socket), *tls_context), asio::detached);
    } else {
      asio::co_spawn(executor, serve(std::move(socket)), asio::detached);
    }
  }
}

tcp::acceptor open_acceptor(asio::io_context& io, const asio::ip::address& address, unsigned short port) {
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  return acceptor;
}

void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

int usage() {
  std::cerr << "usage: webmon-bench-http-server [--address A]... [--port P] [--threads T] "
               "[--tls-cert PEM --tls-key PEM]\n";
  return 2;
}

bool parse_uint(std::string_view s, unsigned& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> addresses;
  unsigned port = 0;
  unsigned threads = 1;
  std::string tls_cert, tls_key;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string_view value = argv[++i];
    if (arg == "--address") {
      addresses.emplace_back(value);
    } else if (arg == "--port") {
      if (!parse_uint(value, port) || port > 65535) return usage();
    } else if (arg == "--tls-cert") {
      tls_cert = value;
    } else if (arg == "--tls-key") {
      tls_key = value;
    } else if (arg == "--threads") {
      if (!parse_uint(value, threads) || threads == 0) return usage();
    } else {
      return usage();
    }
  }
  if (addresses.empty()) addresses.emplace_back("127.0.0.1");
  if (tls_cert.empty() != tls_key.empty()) return usage();

  try {
    raise_fd_limit();
    std::optional<asio::ssl::context> tls;
    if (!tls_cert.empty()) {
      tls.emplace(asio::ssl::context::tls_server);
      tls->use_certificate_chain_file(tls_cert);
      tls->use_private_key_file(tls_key, asio::ssl::context::pem);
      // No resumption: each connection is a full handshake, as a new visitor's is.
      SSL_CTX_set_session_cache_mode(tls->native_handle(), SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(tls->native_handle(), SSL_OP_NO_TICKET);
      SSL_CTX_set_num_tickets(tls->native_handle(), 0);
      tls_context = &*tls;
    }
    asio::io_context io(static_cast<int>(threads));
    for (const auto& text : addresses) {
      const auto address = asio::ip::make_address(text);
      if (!address.is_loopback()) {
        std::cerr << "webmon-bench-http-server: " << text << " is not a loopback address\n";
        return 2;
      }
      tcp::acceptor acceptor(io);
      try {
        acceptor = open_acceptor(io, address, static_cast<unsigned short>(port));
      } catch (const boost::system::system_error&) {
        if (port == 0) throw;
        acceptor = open_acceptor(io, address, 0);  // the first address's port is taken here
      }
      const auto local = acceptor.local_endpoint();
      if (port == 0) port = local.port();
      std::cout << "listening " << local.address().to_string() << ':' << local.port() << '\n';
      asio::co_spawn(io, accept_loop(std::move(acceptor)), asio::detached);
    }
    std::cout.flush();

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&io](const boost::system::error_code&, int) { io.stop(); });

    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
    std::cout << "served " << served.load() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "webmon-bench-http-server: " << e.what() << '\n';
    return 1;
  }
}
