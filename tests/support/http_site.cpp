#include "support/http_site.hpp"

#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace webmon::test {
namespace asio = boost::asio;
using asio::ip::tcp;

struct HttpSite::Impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::thread thread;
  mutable std::mutex m;
  std::map<std::string, int> hits;

  asio::awaitable<void> serve(tcp::socket socket) {
    asio::streambuf buf;
    auto [ec, n] = co_await asio::async_read_until(socket, buf, "\r\n\r\n", asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    std::string head(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(n));
    const auto sp1 = head.find(' ');
    const auto sp2 = head.find(' ', sp1 + 1);
    const std::string path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    {
      std::lock_guard l(m);
      ++hits[path];
    }
    std::string status = "200 OK";
    std::string body = "root";
    if (path == "/ok") {
      body = "<html>hello webmon</html>";
    } else if (path == "/missing") {
      status = "404 Not Found";
      body = "no such page";
    } else if (path == "/slow") {
      asio::steady_timer t(io, std::chrono::seconds(5));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    const std::string response = "HTTP/1.1 " + status + "\r\nContent-Type: text/html\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    co_await asio::async_write(socket, asio::buffer(response), asio::as_tuple(asio::use_awaitable));
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(io, serve(std::move(socket)), asio::detached);
    }
  }
};

HttpSite::HttpSite() : impl_(std::make_unique<Impl>()) {
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

HttpSite::~HttpSite() {
  impl_->io.stop();
  impl_->thread.join();
}

unsigned short HttpSite::port() const { return impl_->acceptor.local_endpoint().port(); }

std::string HttpSite::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port()) + path;
}

int HttpSite::hits(const std::string& path) const {
  std::lock_guard l(impl_->m);
  auto it = impl_->hits.find(path);
  return it == impl_->hits.end() ? 0 : it->second;
}

}  // namespace webmon::test
