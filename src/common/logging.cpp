#include "webmon/common/logging.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace webmon {
namespace {

std::mutex g_secrets_mutex;
// Read by the sink on every record, so that a reload changes the format of the next line without
// replacing the logger other threads are writing through.
std::atomic<LogFormat> g_format{LogFormat::text};
std::vector<std::string> g_secrets;  // grows only at load/reload; read on every log line

// A JSON string literal, quotes included (Boost.JSON does the escaping).
std::string json_quote(std::string_view s) { return boost::json::serialize(boost::json::string(s)); }

void redact_secrets(std::string& line) {
  std::lock_guard lock(g_secrets_mutex);
  for (const auto& secret : g_secrets) {
    for (auto pos = line.find(secret); pos != std::string::npos; pos = line.find(secret, pos + 3)) {
      line.replace(pos, secret.size(), "***");
    }
  }
}

// Writes each record to stderr as text or as one JSON object per line, with secrets masked.
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string text(msg.payload.data(), msg.payload.size());
    redact_secrets(text);
    std::string line;
    if (g_format.load(std::memory_order_relaxed) == LogFormat::json) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
      const auto level = spdlog::level::to_string_view(msg.level);
      line = fmt::format(R"({{"ts_ms":{},"level":"{}","logger":{},"msg":{}}})", ms,
                         std::string_view(level.data(), level.size()),
                         json_quote(std::string_view(msg.logger_name.data(), msg.logger_name.size())),
                         json_quote(text));
      line += '\n';
    } else {
      spdlog::details::log_msg copy(msg);
      copy.payload = text;
      spdlog::memory_buf_t buf;
      formatter_->format(copy, buf);
      line.assign(buf.data(), buf.size());
    }
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn" || name == "warning") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  if (name == "critical") return spdlog::level::critical;
  if (name == "off") return spdlog::level::off;
  return std::nullopt;
}

void init_logging(spdlog::level::level_enum level, LogFormat format) {
  g_format = format;
  auto sink = std::make_shared<StderrSink>();
  sink->set_formatter(std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l [%n] %v",
                                                                   spdlog::pattern_time_type::utc));
  auto logger = std::make_shared<spdlog::logger>("webmon", std::move(sink));
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

void set_log_format(LogFormat format) { g_format = format; }

LogFormat log_format() { return g_format.load(); }

spdlog::level::level_enum resolve_log_level(std::optional<std::string_view> from_flag) {
  std::string_view name = "info";
  if (from_flag) {
    name = *from_flag;
  } else if (const char* env = std::getenv("WEBMON_LOG_LEVEL"); env && *env) {
    name = env;
  }
  if (auto level = parse_log_level(name)) return *level;
  throw std::invalid_argument("unknown log level '" + std::string(name) +
                              "' (trace, debug, info, warn, error, critical, off)");
}

std::string redact_uri(std::string_view uri) {
  std::string out(uri);
  // URI form: scheme://user:password@host...
  if (const auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto auth_start = scheme + 3;
    const auto at = out.find('@', auth_start);
    const auto slash = out.find('/', auth_start);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      const auto colon = out.find(':', auth_start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // key=value form and URI query parameters: password=...
  for (auto pos = out.find("password="); pos != std::string::npos; pos = out.find("password=", pos + 1)) {
    const auto value = pos + 9;
    auto end = out.find_first_of(" &", value);
    if (end == std::string::npos) end = out.size();
    out.replace(value, end - value, "***");
  }
  return out;
}

void register_secret(std::string_view secret) {
  if (secret.size() < 4) return;
  std::lock_guard lock(g_secrets_mutex);
  if (std::find(g_secrets.begin(), g_secrets.end(), secret) == g_secrets.end()) g_secrets.emplace_back(secret);
}

}  // namespace webmon
