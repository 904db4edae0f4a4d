// config.yml from disk and config's small free helpers: where the file is, reading it, the
// process environment for ${VAR}, an error's text. What needs the key tables is in config.cpp.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "webmon/common/config.hpp"

namespace webmon {

std::string_view ip_family_name(IpFamily f) noexcept {
  switch (f) {
    case IpFamily::any: return "auto";
    case IpFamily::v4: return "ipv4";
    case IpFamily::v6: return "ipv6";
  }
  return "auto";
}

bool TargetConfig::status_is_valid(int status) const noexcept {
  return std::any_of(valid_status_codes.begin(), valid_status_codes.end(),
                     [status](const StatusRange& r) { return status >= r.lo && status <= r.hi; });
}

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

ConfigLoad load_config(const std::filesystem::path& file, Component component, const EnvLookup& env) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    ConfigLoad out;
    std::error_code ec;
    const bool exists = std::filesystem::exists(file, ec);
    out.errors.push_back({file.string(), 0, 0, "", exists ? "cannot read the file" : "no such file"});
    return out;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), file, component, env);
}

std::filesystem::path resolve_config_path(std::optional<std::string_view> from_flag) {
  if (from_flag && !from_flag->empty()) return std::filesystem::path(*from_flag);
  if (const char* env = std::getenv("WEBMON_CONFIG"); env && *env) return std::filesystem::path(env);
  if (const char* dir = std::getenv("WEBSITE_MONITOR_CONFIG_PATH"); dir && *dir) {
    return std::filesystem::path(dir) / "config.yml";
  }
  return std::filesystem::path("config") / "config.yml";
}

}  // namespace webmon
