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
//
// Plain HTTP is served by a bare epoll loop per thread (accept4, one read, one write, close), not
// by Asio: at 10,000 probes a second on two cores the site's CPU is CPU the prober cannot have,
// and a site elsewhere would cost the prober's machine nothing. HTTPS stays on Asio's ssl::stream.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
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

// HTTPS: one request per connection; the reply is followed by close_notify (both ways, as a
// careful server does). The server closes first, so TIME_WAIT stays on the server's side and the
// prober's ephemeral ports are free again at once.
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

asio::ssl::context* tls_context = nullptr;  // set in main before the accept loops start

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
    asio::co_spawn(executor, serve_tls(std::move(socket), *tls_context), asio::detached);
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

// --- Plain HTTP on a bare epoll loop --------------------------------------------------------

bool head_complete(std::string_view data) { return data.find("\r\n\r\n") != std::string_view::npos; }

void reply_and_close(int fd, std::string_view request) {
  const std::string_view reply = request.starts_with("HEAD ") ? kHead : kResponse;
  if (::write(fd, reply.data(), reply.size()) == static_cast<ssize_t>(reply.size())) {
    served.fetch_add(1, std::memory_order_relaxed);
  }
  // The whole request has been read, so close sends a FIN (not a reset) after the reply. The
  // server closes first, so TIME_WAIT stays on its side and the prober's ports are free at once.
  ::close(fd);
}

// One thread's loop. The listeners are shared by every thread's epoll with EPOLLEXCLUSIVE, so a
// connection wakes one thread; a connection stays on the thread that accepted it.
void serve_plain(const std::vector<int>& listeners, int stop_fd) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) throw std::runtime_error("epoll_create1 failed");
  constexpr std::uint64_t kListener = 1ull << 32;
  constexpr std::uint64_t kStop = 2ull << 32;
  for (const int l : listeners) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.u64 = kListener | static_cast<std::uint32_t>(l);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  }
  epoll_event sev{};
  sev.events = EPOLLIN;
  sev.data.u64 = kStop;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &sev);

  std::unordered_map<int, std::string> partial;  // connections whose request head is not all here yet
  char buf[4096];
  // Reads what has arrived; replies once the head is complete. True when the connection is done.
  auto advance = [&](int fd, std::string* so_far) {
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        const std::string_view got(buf, static_cast<std::size_t>(n));
        if (so_far == nullptr && head_complete(got)) {
          reply_and_close(fd, got);
          return true;
        }
        std::string& data = so_far != nullptr ? *so_far : partial[fd];
        so_far = &data;
        data.append(got);
        if (head_complete(data)) {
          reply_and_close(fd, data);
          partial.erase(fd);  // after the reply: data may be this entry
          return true;
        }
        if (data.size() > kMaxRequestHead) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return false;
      break;  // end of stream or an error before a whole head
    }
    ::close(fd);
    partial.erase(fd);  // a descriptor number is reused: no stale head for the next connection
    return true;
  };

  epoll_event events[256];
  for (;;) {
    const int n = ::epoll_wait(ep, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("epoll_wait failed");
    }
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      if (tag == kStop) {
        ::close(ep);
        for (const auto& [fd, data] : partial) ::close(fd);
        return;
      }
      if ((tag & kListener) != 0) {
        const int l = static_cast<int>(tag & 0xffffffffu);
        for (int accepted = 0; accepted < 64; ++accepted) {
          const int fd = ::accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
              ::usleep(5000);  // out of descriptors or memory: back off a little rather than spin
            }
            break;
          }
          // The prober writes its request once connected, which is often before the accept.
          if (!advance(fd, nullptr)) {
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.u64 = static_cast<std::uint32_t>(fd);
            if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
              partial.erase(fd);
              ::close(fd);
            }
          }
        }
        continue;
      }
      const int fd = static_cast<int>(tag);
      const auto it = partial.find(fd);
      std::string data = it != partial.end() ? std::move(it->second) : std::string();
      if (it != partial.end()) partial.erase(it);
      if (!advance(fd, &data)) partial.emplace(fd, std::move(data));  // close() also leaves the epoll set
    }
  }
}

// A non-blocking listening socket on address:port (0: a free port); -1 if the port is taken.
int open_plain_listener(const asio::ip::address& address, unsigned short port) {
  const tcp::endpoint endpoint(address, port);
  const int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

unsigned short local_port(int fd, asio::ip::address& address) {
  tcp::endpoint local;
  socklen_t size = static_cast<socklen_t>(local.capacity());
  ::getsockname(fd, local.data(), &size);
  local.resize(size);
  address = local.address();
  return local.port();
}

// Plain HTTP: the listeners, `threads` epoll loops, until SIGINT or SIGTERM.
int run_plain(const std::vector<std::string>& addresses, unsigned port, unsigned threads) {
  std::vector<int> listeners;
  for (const auto& text : addresses) {
    const auto address = asio::ip::make_address(text);
    if (!address.is_loopback()) {
      std::cerr << "webmon-bench-http-server: " << text << " is not a loopback address\n";
      return 2;
    }
    int fd = open_plain_listener(address, static_cast<unsigned short>(port));
    if (fd < 0 && port != 0) fd = open_plain_listener(address, 0);  // the first address's port is taken here
    if (fd < 0) throw std::runtime_error("cannot listen on " + text);
    asio::ip::address bound;
    const unsigned short got = local_port(fd, bound);
    if (port == 0) port = got;
    std::cout << "listening " << bound.to_string() << ':' << got << '\n';
    listeners.push_back(fd);
  }
  std::cout.flush();

  // The signals are taken by sigwait below, in this thread only.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);  // never read: wakes every loop
  if (stop_fd < 0) throw std::runtime_error("eventfd failed");
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back([&listeners, stop_fd] { serve_plain(listeners, stop_fd); });
  int signal = 0;
  sigwait(&stop_signals, &signal);
  const std::uint64_t one = 1;
  if (::write(stop_fd, &one, sizeof one) != sizeof one) std::abort();
  for (auto& t : pool) t.join();
  for (const int l : listeners) ::close(l);
  ::close(stop_fd);
  std::cout << "served " << served.load() << std::endl;
  return 0;
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
    if (tls_cert.empty()) return run_plain(addresses, port, threads);
    std::optional<asio::ssl::context> tls;
    {
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
