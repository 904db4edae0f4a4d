// What a daemon tells systemd (sd_notify): ready, reloading, stopping, status text, and the
// watchdog keep-alive. Every call is a no-op when NOTIFY_SOCKET is unset (not run by systemd).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace webmon::service {

// True when the process was started with a notification socket (Type=notify under systemd).
bool notify_enabled() noexcept;

// READY=1: start-up is complete (after a reload too, to end RELOADING=1).
void notify_ready() noexcept;
// RELOADING=1 with MONOTONIC_USEC (systemd 253+ wants it for Type=notify-reload; 252 ignores it).
// Follow with notify_ready() once the reload is done, whether it succeeded or not.
void notify_reloading() noexcept;
// STOPPING=1: the graceful shutdown has begun.
void notify_stopping() noexcept;
// STATUS=<text>: one line shown by `systemctl status`.
void notify_status(std::string_view text) noexcept;

// The watchdog interval systemd expects keep-alives within (WATCHDOG_USEC, for this pid),
// nullopt when no watchdog is enabled. Send notify_watchdog() at about half of it.
std::optional<std::chrono::microseconds> watchdog_interval() noexcept;
// WATCHDOG=1: the process is alive and its loops are turning.
void notify_watchdog() noexcept;

}  // namespace webmon::service
