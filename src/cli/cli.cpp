#include "cli.hpp"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "compact.hpp"
#include "incidents.hpp"
#include "report.hpp"
#include "stats.hpp"
#include "webmon/common/config.hpp"
#include "webmon/common/config_keys.hpp"
#include "webmon/common/daemon_args.hpp"
#include "webmon/common/logging.hpp"
#include "webmon/common/version.hpp"
#include "webmon/writer/compactor.hpp"
#include "webmon/writer/migrations.hpp"
#include "webmon/writer/pg_session.hpp"

namespace webmon::cli {
namespace {

constexpr std::string_view kUsage =
    "usage: webmon <command> [options]\n"
    "\n"
    "commands:\n"
    "  migrate   apply the pending schema migrations (the writer also does this at start)\n"
    "  stats     per target: checks, ok share, p50/p95/p99 response time, last status, last error\n"
    "  incidents runs of failed checks per target: opened after incidents.open_after failures in a\n"
    "            row (2), closed after incidents.close_after successes in a row (1)\n"
    "  report    availability per target and period: checks, availability %, downtime from\n"
    "            incidents, p50/p95/p99 response time (from the hourly rollups)\n"
    "  compact   compact closed days now (the writer does it in the background): one row per\n"
    "            target and day instead of a row per check; check_results still shows every check\n"
    "  config-schema\n"
    "            print every config key from the key tables (no config file needed):\n"
    "            --format markdown (default: the reference table of docs/configuration.md)\n"
    "            or --format json (a JSON Schema of config.yml, for editors)\n"
    "\n"
    "options (every command):\n"
    "  --config PATH      config file (default: $WEBMON_CONFIG, else ./config/config.yml);\n"
    "                     only postgres.uri is required\n"
    "  --log-level LEVEL  trace, debug, info, warn, error, critical, off (default: $WEBMON_LOG_LEVEL, else warn)\n"
    "  --help, --version\n"
    "\n"
    "stats options:\n"
    "  --since DURATION   window back from now: 90s, 15m, 1h, 1h30m, 7d, 2w, or all (default 1h)\n"
    "  --target NAME      one target only\n"
    "  --location NAME    the checks of one checker.location only ('' for those without one);\n"
    "                     rows are per target and location, and a LOCATION column (\"location\"\n"
    "                     in JSON) is added last when any row has a location\n"
    "  --format FORMAT    table (default) or json:\n"
    "                     {\"stats\": [{\"target\", \"checks\", \"ok_ratio\", \"p50_s\", \"p95_s\", \"p99_s\",\n"
    "                     \"last_status\", \"last_error\"[, \"location\"]}]}\n"
    "                     last_status is the most recent check's HTTP status, last_error the most recent\n"
    "                     error in the window (\"class: detail\"); null when there is none.\n"
    "\n"
    "incidents options:\n"
    "  --since DURATION   checks scheduled in this window back from now, as for stats (default 7d);\n"
    "                     an incident under way at its start starts there\n"
    "  --target NAME      one target only\n"
    "  --open             only the incidents still open\n"
    "  --format FORMAT    table (default) or json: {\"incidents\": [{\"target\", \"location\",\n"
    "                     \"started_at\", \"ended_at\", \"duration_s\", \"checks_failed\", \"first_error\",\n"
    "                     \"first_error_detail\", \"first_http_status\"}]}; ended_at is null while open\n"
    "\n"
    "report options:\n"
    "  --period PERIOD    day (default), week (ISO, from Monday) or month, UTC\n"
    "  --since DURATION   checks scheduled in this window back from now, as for stats (default 30d)\n"
    "  --target NAME      one target only\n"
    "  --format FORMAT    table (default), json or csv: {\"report\": [{\"period\", \"target\",\n"
    "                     \"location\", \"checks\", \"availability_pct\", \"downtime_s\", \"p50_s\",\n"
    "                     \"p95_s\", \"p99_s\"}]}; period is the period's first day (YYYY-MM-DD);\n"
    "                     downtime is the incidents' time inside the period\n"
    "\n"
    "compact options:\n"
    "  --day YYYY-MM-DD   that UTC day only (a closed day: before today); default: every day before\n"
    "                     today - writer.compact_after_days (2 when 0). Prints one line per day.\n"
    "\n"
    "exit status: 0 ok, 1 failure (e.g. database unreachable), 2 usage error or invalid config\n";

struct Args {
  std::string command;
  std::optional<std::string> config;
  std::optional<std::string> log_level;
  std::optional<std::string> since;
  std::optional<std::string> target;
  std::optional<std::string> location;
  std::optional<std::string> day;
  std::optional<std::string> period;
  bool open = false;
  std::string format = "table";
  bool help = false;
  bool version = false;
};

// Parses the command line (the same reader as the daemons'); a usage error is returned as text.
std::optional<std::string> parse_args(int argc, const char* const* argv, Args& args) {
  static const CommandLineSpec spec{{"--help", "-h", "--version", "--open"},
                                    {{"--config", "PATH"},
                                     {"--log-level", "LEVEL"},
                                     {"--since", "DURATION"},
                                     {"--target", "NAME"},
                                     {"--location", "NAME"},
                                     {"--format", "FORMAT"},
                                     {"--day", "YYYY-MM-DD"},
                                     {"--period", "PERIOD"}},
                                    true};
  auto parsed = parse_command_line(argc, argv, spec);
  if (auto* error = std::get_if<std::string>(&parsed)) return std::move(*error);
  const auto& line = std::get<CommandLine>(parsed);
  args.command = line.command.value_or("");
  args.help = line.flag("--help") || line.flag("-h") || args.command == "help";
  args.version = line.flag("--version");
  args.config = line.option("--config");
  args.log_level = line.option("--log-level");
  args.since = line.option("--since");
  args.target = line.option("--target");
  args.location = line.option("--location");
  args.day = line.option("--day");
  args.open = line.flag("--open");
  args.period = line.option("--period");
  const auto format = line.option("--format");
  if (args.help || args.version) return std::nullopt;
  if (args.command.empty()) {
    return std::string("a command is needed: migrate, stats, incidents, report, compact or config-schema");
  }
  if (args.command != "migrate" && args.command != "stats" && args.command != "config-schema" &&
      args.command != "compact" && args.command != "incidents" && args.command != "report") {
    return "unknown command '" + args.command + "'";
  }
  if (args.day && args.command != "compact") return args.command + " takes no --day";
  if (args.open && args.command != "incidents") return args.command + " takes no --open";
  if (args.period && args.command != "report") return args.command + " takes no --period";
  if (args.command == "report") {
    if (args.location) return std::string("report takes no --location");
    if (args.period && *args.period != "day" && *args.period != "week" && *args.period != "month") {
      return std::string("--period must be day, week or month");
    }
    args.format = format.value_or("table");
    if (args.format != "table" && args.format != "json" && args.format != "csv") {
      return std::string("--format must be table, json or csv");
    }
    if (args.target && args.target->empty()) return std::string("--target needs a name");
    return std::nullopt;
  }
  if (args.command == "incidents" && args.location) return std::string("incidents takes no --location");
  if (args.command == "compact") {
    if (args.since || args.target || args.location || format) {
      return std::string("compact takes no --since, --target, --location or --format");
    }
    if (args.day) {
      const auto day = writer::parse_iso_date(*args.day);
      const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
      if (!day) return "--day: invalid date '" + *args.day + "' (YYYY-MM-DD, a UTC day)";
      if (*day >= today) return "--day: " + *args.day + " is not closed yet (only days before today, UTC)";
    }
    return std::nullopt;
  }
  if (args.command == "migrate" && args.location) return std::string("migrate takes no --location");
  if (args.command == "config-schema" && args.location) return std::string("config-schema takes no --location");
  if (args.command == "migrate" && (args.since || args.target || format)) {
    return std::string("migrate takes no --since, --target or --format");
  }
  if (args.command == "config-schema") {
    if (args.since || args.target) return std::string("config-schema takes no --since or --target");
    args.format = format.value_or("markdown");
    if (args.format != "markdown" && args.format != "json") return std::string("--format must be markdown or json");
    return std::nullopt;
  }
  args.format = format.value_or("table");
  if (args.format != "table" && args.format != "json") return std::string("--format must be table or json");
  if (args.target && args.target->empty()) return std::string("--target needs a name");
  return std::nullopt;
}

int migrate(const Config& cfg, std::ostream& out, std::ostream& err) {
  const auto report = writer::apply_migrations(writer::pg_session(cfg.postgres).conninfo);
  for (const auto& name : report.applied) out << "applied " << name << "\n";
  if (report.applied.empty()) out << "schema up to date (" << report.already_applied << " migrations applied)\n";
  if (!report.unknown_in_db.empty()) {
    err << "webmon: warning: the database has migrations this webmon does not know (a newer version applied them):";
    for (const auto& m : report.unknown_in_db) err << " " << m;
    err << "\n";
  }
  return 0;
}

int stats(const Config& cfg, const Args& args, std::ostream& out) {
  StatsQuery q;
  if (args.since) q.since = *parse_duration(*args.since);  // validated by the caller
  q.target = args.target;
  q.location = args.location;
  pqxx::connection conn(writer::pg_session(cfg.postgres).conninfo);  // with the deadlines
  const auto rows = query_stats(conn, q);
  out << (args.format == "json" ? format_json(rows) : format_table(rows));
  return 0;
}

int incidents(const Config& cfg, const Args& args, std::ostream& out) {
  IncidentsQuery q;
  if (args.since) q.since = *parse_duration(*args.since);  // validated by the caller
  q.target = args.target;
  q.open_only = args.open;
  q.open_after = cfg.incidents.open_after;
  q.close_after = cfg.incidents.close_after;
  pqxx::connection conn(writer::pg_session(cfg.postgres).conninfo);
  const auto rows = query_incidents(conn, q);
  out << (args.format == "json" ? format_incidents_json(rows) : format_incidents_table(rows));
  return 0;
}

int report(const Config& cfg, const Args& args, std::ostream& out) {
  ReportQuery q;
  q.period = args.period.value_or("day");
  if (args.since) q.since = *parse_duration(*args.since);  // validated by the caller
  q.target = args.target;
  q.open_after = cfg.incidents.open_after;
  q.close_after = cfg.incidents.close_after;
  const auto rows = query_report(writer::pg_session(cfg.postgres).conninfo, q);  // with the deadlines
  out << (args.format == "json" ? format_report_json(rows)
          : args.format == "csv" ? format_report_csv(rows)
                                 : format_report_table(rows));
  return 0;
}

}  // namespace

int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  Args args;
  if (const auto usage_error = parse_args(argc, argv, args)) {
    err << "webmon: " << *usage_error << "\n\n" << kUsage;
    return 2;
  }
  if (args.help) {
    out << kUsage;
    return 0;
  }
  if (args.version) {
    out << "webmon " << version() << "\n";
    return 0;
  }
  if (args.command == "config-schema") {  // from the key tables; no config file is read
    out << (args.format == "json" ? config_json_schema() : config_reference_markdown());
    return 0;
  }
  if (args.since && !parse_duration(*args.since)) {
    err << "webmon: --since: invalid duration '" << *args.since << "' (e.g. 90s, 15m, 1h, 7d, all)\n";
    return 2;
  }

  // The CLI's own output is the answer; log lines (stderr) only for warnings unless asked.
  spdlog::level::level_enum level = spdlog::level::warn;
  try {
    if (args.log_level || std::getenv("WEBMON_LOG_LEVEL")) level = resolve_log_level(args.log_level);
  } catch (const std::exception& e) {
    err << "webmon: " << e.what() << "\n";
    return 2;
  }

  const auto path = resolve_config_path(args.config);
  const auto load = load_config(path, Component::admin);
  if (!load.ok()) {
    err << "webmon: invalid config " << path.string() << ":\n";
    for (const auto& e : load.errors) err << "  " << e.to_string() << "\n";
    return 2;
  }
  const Config& cfg = *load.config;
  init_logging(level, cfg.log_format);

  try {
    if (args.command == "incidents") return incidents(cfg, args, out);
    if (args.command == "report") return report(cfg, args, out);
    if (args.command == "compact") {
      std::optional<std::chrono::sys_days> day;
      if (args.day) day = writer::parse_iso_date(*args.day);  // validated by parse_args
      return compact(cfg, day, out, err);
    }
    return args.command == "migrate" ? migrate(cfg, out, err) : stats(cfg, args, out);
  } catch (const writer::MigrationError& e) {
    err << "webmon: migration refused: " << e.what() << "\n";
  } catch (const pqxx::broken_connection& e) {
    err << "webmon: cannot connect to PostgreSQL (" << redact_uri(cfg.postgres.uri) << "): " << e.what() << "\n";
  } catch (const pqxx::undefined_table& e) {
    err << "webmon: the schema is missing (run `webmon migrate` first): " << e.what() << "\n";
  } catch (const pqxx::undefined_function& e) {
    err << "webmon: the schema is older than this webmon (run `webmon migrate`): " << e.what() << "\n";
  } catch (const pqxx::undefined_column& e) {
    err << "webmon: the schema is older than this webmon (run `webmon migrate`): " << e.what() << "\n";
  } catch (const std::exception& e) {
    err << "webmon: " << args.command << " failed: " << e.what() << "\n";
  }
  return 1;
}

}  // namespace webmon::cli
