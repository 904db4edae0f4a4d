#include "webmon/common/service.hpp"

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <string>

#include <systemd/sd-daemon.h>

namespace webmon::service {
namespace {

void notify(const std::string& state) noexcept {
  if (!notify_enabled()) return;
  // unset_environment=0: a reload or a second notification must still find the socket.
  (void)sd_notify(0, state.c_str());
}

}  // namespace

bool notify_enabled() noexcept {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && *socket != '\0';
}

void notify_ready() noexcept {
  try { notify("READY=1"); } catch (...) {}
}

void notify_reloading() noexcept {
  try {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const long long usec = static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
  } catch (...) {
  }
}

void notify_stopping() noexcept {
  try { notify("STOPPING=1"); } catch (...) {}
}

void notify_status(std::string_view text) noexcept {
  try {
    std::string line(text);
    // One line: a newline would start another assignment in the notification.
    for (char& c : line) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    notify("STATUS=" + line);
  } catch (...) {
  }
}

std::optional<std::chrono::microseconds> watchdog_interval() noexcept {
  std::uint64_t usec = 0;
  // unset_environment=0; sd_watchdog_enabled also checks WATCHDOG_PID against our pid.
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec);
}

void notify_watchdog() noexcept {
  try { notify("WATCHDOG=1"); } catch (...) {}
}

}  // namespace webmon::service
