// Process-wide logging on spdlog: level and format (text or JSON lines), and redaction so that
// passwords in URIs and secret values never reach a log line.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <spdlog/common.h>

namespace webmon {

enum class LogFormat { text, json };

// Parses "trace|debug|info|warn|warning|error|critical|off"; nullopt when unknown.
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);

// Installs the default logger on stderr. Call once at start (other threads log through it).
void init_logging(spdlog::level::level_enum level, LogFormat format);

// Changes the format of the lines logged from now on (log_format on SIGHUP); safe while other
// threads log.
void set_log_format(LogFormat format);
LogFormat log_format();

// The level the command line asked for (--log-level), else $WEBMON_LOG_LEVEL, else info.
// Throws std::invalid_argument naming the bad value.
spdlog::level::level_enum resolve_log_level(std::optional<std::string_view> from_flag);

// Returns the URI with any password replaced by "***" (postgresql://u:***@h/db, key=value
// "password=***" form too). Used wherever a connection string might be logged.
std::string redact_uri(std::string_view uri);

// Registers a secret (a SASL password, a value taken from ${ENV}) that the log sinks replace
// by "***" wherever it appears. Secrets shorter than 4 characters are ignored.
void register_secret(std::string_view secret);

}  // namespace webmon
