#include "webmon/common/daemon_args.hpp"

#include <algorithm>
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

std::optional<std::string> CommandLine::option(std::string_view name) const {
  if (auto it = options.find(name); it != options.end()) return it->second;
  return std::nullopt;
}

std::variant<CommandLine, std::string> parse_command_line(int argc, const char* const* argv,
                                                          const CommandLineSpec& spec) {
  CommandLine out;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (std::find(spec.flags.begin(), spec.flags.end(), a) != spec.flags.end()) {
      out.flags.emplace(a);
      continue;
    }
    if (!a.starts_with("-")) {
      if (!spec.command || out.command) return "unexpected argument '" + std::string(a) + "'";
      out.command = std::string(a);
      continue;
    }
    const auto eq = a.find('=');
    const std::string_view name = a.substr(0, eq);
    const auto opt = std::find_if(spec.options.begin(), spec.options.end(), [&](const auto& o) { return o.first == name; });
    if (opt == spec.options.end()) return "unknown option '" + std::string(name) + "'";
    if (eq != std::string_view::npos) {
      out.options[std::string(name)] = std::string(a.substr(eq + 1));
    } else if (i + 1 < argc) {
      out.options[std::string(name)] = argv[++i];
    } else {
      return std::string(name) + " needs a " + std::string(opt->second);
    }
  }
  return out;
}

std::optional<DaemonArgs> parse_daemon_args(int argc, const char* const* argv, std::string_view program) {
  static const CommandLineSpec spec{{"--help", "-h", "--version", "--check-config"},
                                    {{"--config", "PATH"}, {"--log-level", "LEVEL"}}};
  auto parsed = parse_command_line(argc, argv, spec);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    std::cerr << program << ": " << *error << "\n" << daemon_usage(program);
    return std::nullopt;
  }
  const auto& line = std::get<CommandLine>(parsed);
  DaemonArgs args;
  args.help = line.flag("--help") || line.flag("-h");
  args.version = line.flag("--version");
  args.check_config = line.flag("--check-config");
  args.config = line.option("--config");
  args.log_level = line.option("--log-level");
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
  for (const auto& notice : load.config->notices) spdlog::info("{}", notice);
  start.config = std::move(load.config);
  return start;
}

}  // namespace webmon
