// Fuzz target: the config loader. The input is the text of a config.yml; it is loaded as each
// component would load it (checker, writer, admin CLI). Whatever the text, the loader returns
// either errors, each naming the file, a line and column inside the text (or none, for the
// file as a whole) and a message, or a config that keeps the promises config.hpp makes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "webmon/common/config.hpp"

namespace {

using namespace webmon;

// A fixed environment, so that ${VAR} substitution is exercised and every run is the same.
std::optional<std::string> fuzz_env(std::string_view name) {
  if (name == "WEBMON_FUZZ_BROKERS") return std::string("127.0.0.1:9092");
  if (name == "WEBMON_FUZZ_PASSWORD") return std::string("s3cret");
  if (name == "WEBMON_FUZZ_EMPTY") return std::string();
  if (name == "WEBMON_FUZZ_INTERVAL") return std::string("30");
  return std::nullopt;
}

// A file name no relative path in the input can reach (ca_file and the like are looked up
// beside it).
constexpr const char* kFile = "/nonexistent/webmon-fuzz/config.yml";

bool has_control_or_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// RFC 9110 token characters.
bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

void check_errors(const ConfigLoad& load, std::string_view yaml) {
  const auto lines = static_cast<int>(std::count(yaml.begin(), yaml.end(), '\n'));
  for (const auto& e : load.errors) {
    const std::string text = e.to_string();
    WEBMON_FUZZ_CHECK(e.file == kFile, text);
    WEBMON_FUZZ_CHECK(!e.message.empty(), text);
    WEBMON_FUZZ_CHECK((e.line == 0) == (e.column == 0), text);
    WEBMON_FUZZ_CHECK(e.line >= 0 && e.column >= 0, text);
    // A position inside the text (yaml-cpp may point just past its last line).
    WEBMON_FUZZ_CHECK(e.line <= lines + 2, text + " (the text has " + std::to_string(lines) + " newlines)");
    WEBMON_FUZZ_CHECK(text.rfind(kFile, 0) == 0, text);
  }
}

void check_config(const Config& cfg, Component component) {
  if (component != Component::admin) WEBMON_FUZZ_CHECK(!cfg.kafka.bootstrap_servers.empty(), "no bootstrap_servers");
  if (component != Component::checker) WEBMON_FUZZ_CHECK(!cfg.postgres.uri.empty(), "no postgres.uri");
  WEBMON_FUZZ_CHECK(cfg.checker.threads > 0, "checker.threads not resolved");
  std::set<std::string> names;
  for (const auto& t : cfg.targets) {
    WEBMON_FUZZ_CHECK(!t.name.empty() && t.name.size() <= 128, "target name '" + t.name + "'");
    WEBMON_FUZZ_CHECK(names.insert(t.name).second, "duplicate target name '" + t.name + "'");
    WEBMON_FUZZ_CHECK(t.interval.count() > 0, t.name + ": interval <= 0");
    WEBMON_FUZZ_CHECK(t.timeout.count() > 0 && t.timeout <= t.interval, t.name + ": timeout not in (0, interval]");
    WEBMON_FUZZ_CHECK(!t.parsed_url.host.empty() && !t.parsed_url.port.empty(), t.name + ": url " + t.url);
    WEBMON_FUZZ_CHECK(!t.parsed_url.target.empty() && t.parsed_url.target.front() == '/', t.name + ": url " + t.url);
    WEBMON_FUZZ_CHECK(t.regexp_source.empty() == (t.regexp == nullptr), t.name + ": regexp /" + t.regexp_source + "/");
    WEBMON_FUZZ_CHECK(!t.valid_status_codes.empty(), t.name + ": no valid_status_codes");
    for (const auto& r : t.valid_status_codes) {
      WEBMON_FUZZ_CHECK(r.lo <= r.hi, t.name + ": status range " + std::to_string(r.lo) + "-" + std::to_string(r.hi));
    }
    WEBMON_FUZZ_CHECK(t.max_redirects >= 0, t.name + ": max_redirects < 0");
    // Nothing the request is built from can break its framing.
    WEBMON_FUZZ_CHECK(!has_control_or_space(t.parsed_url.host) && !has_control_or_space(t.parsed_url.target),
                      t.name + ": url " + t.url);
    for (const auto& [name, value] : t.headers) {
      WEBMON_FUZZ_CHECK(is_token(name), t.name + ": header name '" + name + "'");
      WEBMON_FUZZ_CHECK(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
                        t.name + ": header " + name + " value with CR, LF or NUL");
    }
    WEBMON_FUZZ_CHECK(t.same_probe(t), t.name + ": not the same probe as itself");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml = webmon::fuzz::as_text(data, size);
  static const EnvLookup env = fuzz_env;
  for (const Component component : {Component::checker, Component::writer, Component::admin}) {
    const ConfigLoad load = parse_config(yaml, kFile, component, env);
    WEBMON_FUZZ_CHECK(load.ok() == load.config.has_value(), "ok() and config disagree");
    check_errors(load, yaml);
    if (load.config) check_config(*load.config, component);
  }
  return 0;
}
