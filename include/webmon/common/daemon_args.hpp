// The command line both daemons share:
//   <name> [--config PATH] [--check-config] [--log-level LEVEL] [--version] [--help]
// and what they do before their real work: --help, --version, --check-config, logging set-up.
// Also the one command-line reader that the daemons and the CLI `webmon` use.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "webmon/common/config.hpp"

namespace webmon {

// What a program accepts: flags without a value, options with one (--name VALUE or --name=VALUE)
// and, when `command` is set, one word that does not start with '-' (the CLI's subcommand).
struct CommandLineSpec {
  std::vector<std::string_view> flags;                                 // "--help", "-h", ...
  std::vector<std::pair<std::string_view, std::string_view>> options;  // {"--config", "PATH"}
  bool command = false;
};

struct CommandLine {
  std::optional<std::string> command;
  std::map<std::string, std::string, std::less<>> options;  // the last one given wins
  std::set<std::string, std::less<>> flags;
  std::optional<std::string> option(std::string_view name) const;
  bool flag(std::string_view name) const { return flags.count(name) > 0; }
};

// The parsed line, or the usage error as text ("unknown option '--x'", "--config needs a PATH").
std::variant<CommandLine, std::string> parse_command_line(int argc, const char* const* argv,
                                                          const CommandLineSpec& spec);

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
