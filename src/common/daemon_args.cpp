#include "webmon/common/daemon_args.hpp"

#include <cstdio>
#include <iostream>

#include <spdlog/spdlog.h>

#include "webmon/common/logging.hpp"
#include "webmon/common/version.hpp"

namespace webmon {

std::string daemon_usage(std::string_view program) {
  std::string p(program);
  return "usage: " + p +
         " [--config PATH] [--check-config] [--log-level LEVEL] [--version] [--help]\n"
         "  --config PATH      config file (default: $WEBMON_CONFIG, else ./config/config.yml)\n"
         "  --check-config     validate the config and exit: 0 valid, 2 invalid\n"
         "  --log-level LEVEL  trace, debug, info, warn, error, critical, off\n"
         "                     (default: $WEBMON_LOG_LEVEL, else info)\n"
         "  --version          print the version and exit\n"
         "  --help             print this help and exit\n";
}

std::optional<DaemonArgs> parse_daemon_args(int argc, const char* const* argv, std::string_view program) {
  DaemonArgs args;
  auto fail = [&](const std::string& msg) -> std::optional<DaemonArgs> {
    std::cerr << program << ": " << msg << "\n" << daemon_usage(program);
    return std::nullopt;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](std::string_view flag, std::optional<std::string>& out) -> bool {
      if (a == flag) {
        if (i + 1 >= argc) return false;
        out = argv[++i];
        return true;
      }
      if (a.size() > flag.size() + 1 && a.substr(0, flag.size()) == flag && a[flag.size()] == '=') {
        out = std::string(a.substr(flag.size() + 1));
        return true;
      }
      return false;
    };
    if (a == "--help" || a == "-h") {
      args.help = true;
    } else if (a == "--version") {
      args.version = true;
    } else if (a == "--check-config") {
      args.check_config = true;
    } else if (a.starts_with("--config")) {
      if (!value("--config", args.config)) return fail("--config needs a PATH");
    } else if (a.starts_with("--log-level")) {
      if (!value("--log-level", args.log_level)) return fail("--log-level needs a LEVEL");
    } else {
      return fail("unknown argument '" + std::string(a) + "'");
    }
  }
  return args;
}

DaemonStart start_daemon(int argc, const char* const* argv, std::string_view program, Component component) {
  DaemonStart start;
  const auto args = parse_daemon_args(argc, argv, program);
  if (!args) {
    start.exit_code = 2;
    return start;
  }
  if (args->help) {
    std::cout << daemon_usage(program);
    return start;
  }
  if (args->version) {
    std::cout << program << " " << version() << "\n";
    return start;
  }
  spdlog::level::level_enum level{};
  try {
    level = resolve_log_level(args->log_level);
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
    start.exit_code = 2;
    return start;
  }
  start.config_path = resolve_config_path(args->config);
  auto load = load_config(start.config_path, component);
  if (!load.ok()) {
    for (const auto& e : load.errors) std::cerr << e.to_string() << "\n";
    std::cerr << program << ": " << load.errors.size() << " error(s) in " << start.config_path.string() << "\n";
    start.exit_code = 2;
    return start;
  }
  if (args->check_config) {
    std::cout << start.config_path.string() << ": OK (" << load.config->targets.size() << " targets)\n";
    return start;
  }
  init_logging(level, load.config->log_format);
  start.config = std::move(load.config);
  return start;
}

}  // namespace webmon
