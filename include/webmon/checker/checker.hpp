// The webmon-checker process: config -> probe context, scheduler, producer, metrics endpoint;
// signals handled in an event loop on the main thread (SIGHUP reload, SIGTERM/SIGINT graceful
// stop), and systemd told READY / RELOADING / STOPPING and fed its watchdog.
#pragma once

#include <filesystem>

#include "webmon/common/config.hpp"

namespace webmon::checker {

// Runs until SIGTERM or SIGINT; returns the process exit code (0 after a graceful stop).
int run_checker(Config config, std::filesystem::path config_path);

}  // namespace webmon::checker
