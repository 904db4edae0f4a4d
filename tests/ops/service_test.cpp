// sd_notify wrappers against a real AF_UNIX datagram socket standing in for systemd's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/stack.hpp"
#include "webmon/common/service.hpp"

namespace {

// Sets an environment variable for one test and restores the old value afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class NotifySocket {
 public:
  NotifySocket() {
    path_ = dir_.path() / "notify.sock";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string p = path_.string();
    if (p.size() >= sizeof(addr.sun_path)) {
      // Build trees can be deep; fall back to a short abstract-namespace name.
      abstract_ = "@" + webmon::test::unique_name("wmnotify");
      std::copy(abstract_.begin() + 1, abstract_.end(), addr.sun_path + 1);
      bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr),
                      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + abstract_.size())) == 0;
    } else {
      std::copy(p.begin(), p.end(), addr.sun_path);
      bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    }
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  bool bound() const { return bound_; }
  std::string address() const { return abstract_.empty() ? path_.string() : abstract_; }

  // The next datagram, or "" when none arrives within a generous limit.
  std::string receive() const {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 10000) != 1) return {};
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  bool nothing_pending() const {
    pollfd pfd{fd_, POLLIN, 0};
    return ::poll(&pfd, 1, 0) == 0;
  }

 private:
  webmon::test::TempDir dir_;
  std::filesystem::path path_;
  std::string abstract_;
  int fd_ = -1;
  bool bound_ = false;
};

TEST(Service, NoSocketMeansNoOp) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(webmon::service::notify_enabled());
  // Nothing to send to: these must simply return.
  webmon::service::notify_ready();
  webmon::service::notify_reloading();
  webmon::service::notify_stopping();
  webmon::service::notify_status("idle");
  webmon::service::notify_watchdog();
}

TEST(Service, SendsReadyReloadingStoppingStatusWatchdog) {
  NotifySocket sock;
  ASSERT_TRUE(sock.bound());
  ScopedEnv env("NOTIFY_SOCKET", sock.address());
  ASSERT_TRUE(webmon::service::notify_enabled());

  webmon::service::notify_ready();
  EXPECT_EQ(sock.receive(), "READY=1");

  webmon::service::notify_reloading();
  const std::string reloading = sock.receive();
  EXPECT_EQ(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << reloading;
  const std::string usec = reloading.substr(reloading.find('=', 12) + 1);
  EXPECT_GT(std::stoll(usec), 0);

  webmon::service::notify_status("probing 3 targets\nsecond line");
  EXPECT_EQ(sock.receive(), "STATUS=probing 3 targets second line");

  webmon::service::notify_watchdog();
  EXPECT_EQ(sock.receive(), "WATCHDOG=1");

  webmon::service::notify_stopping();
  EXPECT_EQ(sock.receive(), "STOPPING=1");
  EXPECT_TRUE(sock.nothing_pending());
}

TEST(Service, WatchdogIntervalFollowsEnvironment) {
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
    const auto interval = webmon::service::watchdog_interval();
    ASSERT_TRUE(interval.has_value());
    EXPECT_EQ(*interval, std::chrono::seconds(30));
  }
  {
    // A watchdog meant for another process (e.g. the parent shell) is not ours.
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
    EXPECT_FALSE(webmon::service::watchdog_interval().has_value());
  }
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  EXPECT_FALSE(webmon::service::watchdog_interval().has_value());
}

}  // namespace
