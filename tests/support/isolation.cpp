#include "support/isolation.hpp"

#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace webmon::test {
namespace {

void write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

bool must_not_skip() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

Isolated run_isolated(const std::function<std::string()>& fn, const std::filesystem::path& hosts,
                      const std::filesystem::path& resolv_conf, std::chrono::seconds limit) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    ::close(fds[0]);
    auto report = [&](char kind, const std::string& text) {
      write_all(fds[1], std::string(1, kind) + text);
      ::_exit(0);
    };
    if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) report('S', std::string("unshare: ") + std::strerror(errno));
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      report('S', std::string("mount --make-rprivate /: ") + std::strerror(errno));
    }
    if (!hosts.empty() && ::mount(hosts.c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) != 0) {
      report('S', std::string("bind /etc/hosts: ") + std::strerror(errno));
    }
    if (!resolv_conf.empty() && ::mount(resolv_conf.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) {
      report('S', std::string("bind /etc/resolv.conf: ") + std::strerror(errno));
    }
    const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) report('S', std::string("lo flags: ") + std::strerror(errno));
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) report('S', std::string("lo up: ") + std::strerror(errno));
    ::close(s);
    try {
      report('R', fn());
    } catch (const std::exception& e) {
      report('E', e.what());
    }
    report('E', "unknown exception");
  }
  ::close(fds[1]);
  std::string out;
  const auto until = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == 0) {
    ::kill(pid, SIGKILL);  // our own child, stuck
    ::waitpid(pid, &status, 0);
  }
  if (out.empty()) throw std::runtime_error("the isolated child reported nothing");
  if (out[0] == 'S') return Isolated{true, out.substr(1)};
  if (out[0] == 'E') throw std::runtime_error("isolated child failed: " + out.substr(1));
  return Isolated{false, out.substr(1)};
}

}  // namespace webmon::test
