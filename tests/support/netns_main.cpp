// webmon-test-netns: runs a command inside a private network namespace made for it (only `lo`,
// up), with its own /etc/hosts and /etc/resolv.conf, a scripted DNS server on the namespace's
// loopback, and chosen TCP ports of the outer loopback (the local Kafka) forwarded in. Nothing in
// the namespace can reach any other address, so no query or probe leaves the machine.
//
//   webmon-test-netns [--hosts FILE] [--resolv-conf FILE] [--forward PORT]...
//                     [--dns ZONE_FILE] [--dns-listen ADDRESS] [--dns-delay-ms N]
//                     [--dns-counts FILE] -- COMMAND [ARG...]
//
// --dns serves ZONE_FILE (see support/dns_server.hpp) on ADDRESS:53 (default 127.0.0.1) and, with
// --dns-counts, writes the queries per name to FILE when the command has ended. Without
// --resolv-conf the namespace's resolv.conf names that server. The exit status is the
// command's; SIGTERM, SIGINT and SIGHUP are passed on to it; if this process is killed, the
// command and the DNS server die with it (PR_SET_PDEATHSIG). Needs root (CAP_SYS_ADMIN).
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>

#include "support/dns_server.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "webmon-test-netns: %s%s%s\n", what.c_str(), errno ? ": " : "", errno ? std::strerror(errno) : "");
  std::_Exit(125);
}

struct Options {
  std::string hosts, resolv_conf, dns_zone, dns_listen = "127.0.0.1", dns_counts;
  int dns_delay_ms = 0;
  std::vector<unsigned short> forwards;
  std::vector<std::string> command;
};

Options parse(int argc, char** argv) {
  Options o;
  int i = 1;
  auto value = [&](const char* flag) -> std::string {
    if (i + 1 >= argc) {
      errno = 0;
      die(std::string(flag) + " needs a value");
    }
    return argv[++i];
  };
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--hosts") o.hosts = value("--hosts");
    else if (a == "--resolv-conf") o.resolv_conf = value("--resolv-conf");
    else if (a == "--forward") o.forwards.push_back(static_cast<unsigned short>(std::stoi(value("--forward"))));
    else if (a == "--dns") o.dns_zone = value("--dns");
    else if (a == "--dns-listen") o.dns_listen = value("--dns-listen");
    else if (a == "--dns-delay-ms") o.dns_delay_ms = std::stoi(value("--dns-delay-ms"));
    else if (a == "--dns-counts") o.dns_counts = value("--dns-counts");
    else {
      errno = 0;
      die("unknown option " + a + " (see the header of tests/support/netns_main.cpp)");
    }
  }
  for (; i < argc; ++i) o.command.emplace_back(argv[i]);
  if (o.command.empty()) {
    errno = 0;
    die("no command after --");
  }
  return o;
}

void send_fd(int channel, int fd) {
  char byte = 'f';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  if (::sendmsg(channel, &msg, 0) != 1) die("sendmsg");
}

int receive_fd(int channel) {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (::recvmsg(channel, &msg, 0) != 1) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

void bind_over(const std::string& file, const char* target) {
  if (file.empty()) return;
  if (::mount(file.c_str(), target, nullptr, MS_BIND, nullptr) != 0) die(std::string("bind ") + file + " over " + target);
}

void loopback_up() {
  const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) die("lo flags");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) die("lo up");
  ::close(s);
}

int listen_on(unsigned short port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  const int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind 127.0.0.1:" + std::to_string(port));
  if (::listen(s, 128) != 0) die("listen");
  return s;
}

// The inside: namespaces, files, the DNS server, then exec.
[[noreturn]] void run_inside(const Options& o, int channel, const std::string& resolv_written) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) die("unshare(CLONE_NEWNET | CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die("mount --make-rprivate /");
  bind_over(o.hosts, "/etc/hosts");
  bind_over(o.resolv_conf.empty() ? resolv_written : o.resolv_conf, "/etc/resolv.conf");
  loopback_up();
  for (const auto port : o.forwards) {
    const int s = listen_on(port);
    send_fd(channel, s);
    ::close(s);
  }
  ::close(channel);
  if (!o.dns_zone.empty()) {
    std::ifstream in(o.dns_zone);
    if (!in) die("cannot read " + o.dns_zone);
    std::stringstream zone;
    zone << in.rdbuf();
    int ready[2];
    if (::pipe(ready) != 0) die("pipe");
    const pid_t dns = ::fork();
    if (dns < 0) die("fork");
    if (dns == 0) {
      ::close(ready[0]);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the command's end (this process after exec) ends it
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGINT);
      ::sigprocmask(SIG_BLOCK, &set, nullptr);
      try {
        webmon::test::DnsServer server(zone.str(), o.dns_listen, 53, std::chrono::milliseconds(o.dns_delay_ms));
        if (::write(ready[1], "r", 1) != 1) std::_Exit(125);
        ::close(ready[1]);
        int sig = 0;
        ::sigwait(&set, &sig);
        if (!o.dns_counts.empty()) std::ofstream(o.dns_counts) << server.counts_text();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "webmon-test-netns: DNS server: %s\n", e.what());
        std::_Exit(125);
      }
      std::_Exit(0);
    }
    ::close(ready[1]);
    char byte = 0;
    if (::read(ready[0], &byte, 1) != 1) {
      errno = 0;
      die("the DNS server did not start");
    }
    ::close(ready[0]);
  }
  std::vector<char*> argv;
  for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  die("exec " + o.command[0]);
}

// One forwarded connection: bytes both ways until either side ends.
class Pipe : public std::enable_shared_from_this<Pipe> {
 public:
  Pipe(tcp::socket inside, tcp::socket outside) : in_(std::move(inside)), out_(std::move(outside)) {}
  void start() {
    pump(in_, out_, a_);
    pump(out_, in_, b_);
  }

 private:
  void pump(tcp::socket& from, tcp::socket& to, std::array<char, 65536>& buf) {
    from.async_read_some(asio::buffer(buf), [self = shared_from_this(), &from, &to, &buf](boost::system::error_code ec,
                                                                                         std::size_t n) {
      if (ec) return self->close();
      asio::async_write(to, asio::buffer(buf.data(), n), [self, &from, &to, &buf](boost::system::error_code wec, std::size_t) {
        if (wec) return self->close();
        self->pump(from, to, buf);
      });
    });
  }
  void close() {
    boost::system::error_code ignored;
    in_.close(ignored);
    out_.close(ignored);
  }
  tcp::socket in_, out_;
  std::array<char, 65536> a_{}, b_{};
};

void accept_loop(const std::shared_ptr<tcp::acceptor>& acceptor, unsigned short port) {
  acceptor->async_accept([acceptor, port](boost::system::error_code ec, tcp::socket inside) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      auto outside = std::make_shared<tcp::socket>(acceptor->get_executor());
      auto in = std::make_shared<tcp::socket>(std::move(inside));
      outside->async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port),
                             [outside, in](boost::system::error_code cec) {
                               if (cec) return;  // the inside sees its connection closed
                               std::make_shared<Pipe>(std::move(*in), std::move(*outside))->start();
                             });
    }
    accept_loop(acceptor, port);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::string resolv_written;
  if (o.resolv_conf.empty() && !o.dns_zone.empty()) {
    char path[] = "/tmp/webmon-netns-resolv-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) die("mkstemp");
    const std::string text = "nameserver " + o.dns_listen + "\n";
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) die("write resolv.conf");
    ::close(fd);
    resolv_written = path;
  }
  // The DNS server (the command's child) is reparented here when the command ends, so that its
  // counts are written before this process exits.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) die("socketpair");
  const pid_t child = ::fork();
  if (child < 0) die("fork");
  if (child == 0) {
    ::close(pair[0]);
    run_inside(o, pair[1], resolv_written);
  }
  ::close(pair[1]);

  asio::io_context io;
  for (const auto port : o.forwards) {
    const int fd = receive_fd(pair[0]);
    if (fd < 0) break;  // the child failed; its status says why
    auto acceptor = std::make_shared<tcp::acceptor>(io, tcp::v4(), fd);
    accept_loop(acceptor, port);
  }
  ::close(pair[0]);
  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void()> pass_on = [&] {
    signals.async_wait([&, child](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      ::kill(child, sig);
      pass_on();
    });
  };
  pass_on();
  std::thread forwarder([&io] { io.run(); });
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  io.stop();
  forwarder.join();
  int ignored = 0;
  while (::waitpid(-1, &ignored, 0) > 0 || errno == EINTR) {
  }
  if (!resolv_written.empty()) ::unlink(resolv_written.c_str());
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}
