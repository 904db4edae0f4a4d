// The command line both daemons share:
//   <name> [--config PATH] [--check-config] [--log-level LEVEL] [--version] [--help]
// and what they do before their real work: --help, --version, --check-config, logging set-up.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "webmon/common/config.hpp"

namespace webmon {

struct DaemonArgs {
  std::optional<std::string> config;     // --config PATH
  std::optional<std::string> log_level;  // --log-level LEVEL
  bool check_config = false;
  bool version = false;
  bool help = false;
};

// Parses argv; on a usage error returns nullopt after printing the message and usage to stderr.
std::optional<DaemonArgs> parse_daemon_args(int argc, const char* const* argv, std::string_view program);

std::string daemon_usage(std::string_view program);

// Handles --help, --version and --check-config, sets up logging, and loads the config.
// Returns the loaded config to run with, or an exit code: 0 after --help/--version/a valid
// --check-config, 2 for a usage error or an invalid config (every error printed to stderr).
struct DaemonStart {
  std::optional<Config> config;
  std::filesystem::path config_path;
  int exit_code = 0;  // meaningful when config is empty
};
DaemonStart start_daemon(int argc, const char* const* argv, std::string_view program, Component component);

}  // namespace webmon
