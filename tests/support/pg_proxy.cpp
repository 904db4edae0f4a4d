#include "support/pg_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace webmon::test {
namespace {

constexpr std::uint32_t kSslRequest = 80877103;
constexpr std::uint32_t kGssEncRequest = 80877104;

std::uint32_t be32(const std::string& b, std::size_t at) {
  return (std::uint32_t(static_cast<unsigned char>(b[at])) << 24) |
         (std::uint32_t(static_cast<unsigned char>(b[at + 1])) << 16) |
         (std::uint32_t(static_cast<unsigned char>(b[at + 2])) << 8) | std::uint32_t(static_cast<unsigned char>(b[at + 3]));
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Appends what is readable; false on EOF or error.
bool read_some(int fd, std::string& into) {
  char buf[16384];
  const auto n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) return false;
  into.append(buf, static_cast<std::size_t>(n));
  return true;
}

std::string upper_query(const std::string& msg) {
  // 'Q', int32 length, then the query text ending in NUL.
  std::string q = msg.substr(5, msg.size() > 6 ? msg.size() - 6 : 0);
  while (!q.empty() && (q.back() == ';' || std::isspace(static_cast<unsigned char>(q.back())))) q.pop_back();
  std::size_t start = 0;
  while (start < q.size() && std::isspace(static_cast<unsigned char>(q[start]))) ++start;
  q.erase(0, start);
  for (char& c : q) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return q;
}

}  // namespace

PgCommitLoser::PgCommitLoser(unsigned short pg_port, Mode mode) : pg_port_(pg_port), mode_(mode) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 16) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(listener_);
    throw std::runtime_error("bind/listen: " + std::string(std::strerror(errno)));
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

PgCommitLoser::~PgCommitLoser() {
  stop_ = true;
  acceptor_.join();
  ::close(listener_);
  std::lock_guard lock(mutex_);
  for (auto& t : sessions_) t.join();
}

std::string PgCommitLoser::uri_through(const std::string& uri) const {
  const auto from = ":" + std::to_string(pg_port_) + "/";
  auto at = uri.find(from);
  if (at == std::string::npos) throw std::invalid_argument("no port " + std::to_string(pg_port_) + " in " + uri);
  std::string out = uri.substr(0, at) + ":" + std::to_string(port_) + "/" + uri.substr(at + from.size());
  out += out.find('?') == std::string::npos ? "?" : "&";
  return out + "sslmode=disable&gssencmode=disable";
}

void PgCommitLoser::accept_loop() {
  while (!stop_) {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    std::lock_guard lock(mutex_);
    sessions_.emplace_back([this, client] { serve(client); });
  }
}

void PgCommitLoser::serve(int client) {
  const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(pg_port_);
  if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (server >= 0) ::close(server);
    ::close(client);
    return;
  }
  std::string from_client;
  std::string from_server;
  bool startup = true;          // the client's untyped startup packets (SSL/GSS requests, then startup)
  int single_byte_replies = 0;  // the server answers an SSL or GSS request with one byte
  bool copy_in_transaction = false;
  bool dropping_replies = false;  // lose_reply: the COMMIT went through, its answer is swallowed
  bool open = true;
  while (open && !stop_) {
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    if (::poll(fds, 2, 100) <= 0) continue;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!read_some(client, from_client)) break;
      while (open) {
        if (startup) {
          if (from_client.size() < 8) break;
          const auto len = be32(from_client, 0);
          if (from_client.size() < len) break;
          const auto code = be32(from_client, 4);
          if (code == kSslRequest || code == kGssEncRequest) {
            ++single_byte_replies;
          } else {
            startup = false;
          }
          open = send_all(server, std::string_view(from_client).substr(0, len));
          from_client.erase(0, len);
          continue;
        }
        if (from_client.size() < 5) break;
        const std::size_t total = 1 + be32(from_client, 1);
        if (from_client.size() < total) break;
        const std::string msg = from_client.substr(0, total);
        from_client.erase(0, total);
        if (msg[0] == 'Q') {
          const auto q = upper_query(msg);
          if (q.rfind("BEGIN", 0) == 0) copy_in_transaction = false;
          if (q.rfind("COPY ", 0) == 0) copy_in_transaction = true;
          if ((q == "COMMIT" || q == "END") && copy_in_transaction && armed_.exchange(false)) {
            if (mode_ == Mode::lose_commit) {
              ++lost_;
              open = false;
              break;
            }
            dropping_replies = true;
          }
        }
        open = send_all(server, msg);
      }
    }
    if (open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      if (!read_some(server, from_server)) break;
      while (open) {
        if (single_byte_replies > 0) {
          if (from_server.empty()) break;
          --single_byte_replies;
          open = send_all(client, std::string_view(from_server).substr(0, 1));
          from_server.erase(0, 1);
          continue;
        }
        if (from_server.size() < 5) break;
        const std::size_t total = 1 + be32(from_server, 1);
        if (from_server.size() < total) break;
        const char type = from_server[0];
        if (dropping_replies) {
          if (type == 'Z') {  // ReadyForQuery: the server has finished the COMMIT
            ++lost_;
            open = false;
          }
        } else {
          open = send_all(client, std::string_view(from_server).substr(0, total));
        }
        from_server.erase(0, total);
      }
    }
  }
  ::close(server);
  ::close(client);
}

}  // namespace webmon::test
