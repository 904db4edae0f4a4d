// The config keys as data: every key of config.yml with its type, bounds, default, reload
// behaviour, users and one line of doc, taken from the per-section tables in config.cpp (the
// same tables the parser reads the file with). The key reference in docs/configuration.md, the
// JSON Schema of the file (`webmon config-schema`) and the reload rules all come from here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "webmon/common/config.hpp"

namespace webmon {

// What SIGHUP does with a changed key.
enum class Reload {
  applied,  // the running daemon takes the new value
  restart,  // kept until the next restart; the reload logs that it needs one
  probe,    // a target setting: the target's probes are replaced with the new settings (applied)
};
std::string_view reload_name(Reload r) noexcept;  // "applied", "restart", "probe"

// Which binaries read a key (bit mask).
enum ComponentMask : unsigned { kChecker = 1, kWriter = 2, kAdmin = 4, kEveryone = 7 };

struct KeyInfo {
  std::string path;                   // "kafka.ssl.ca_file", "targets[].name"
  std::vector<std::string> synonyms;  // other names of the same key ("url" for "target")
  std::string type;                   // "integer", "string", "seconds", "one of", "mapping", ...
  std::string bounds;                 // "1..10000", "text, json", "" when none
  std::string default_value;          // as written in config.yml, or a description ("the host name")
  Reload reload = Reload::restart;
  unsigned used_by = kEveryone;       // ComponentMask
  unsigned required_by = 0;           // ComponentMask
  std::string doc;                    // one line
  std::string example;                // a valid YAML value other than the default
  std::string schema;                 // the value's JSON Schema (an object, as JSON text)
  bool section = false;               // a mapping of further keys (listed after it)
};

// Every key, sections before their keys, in the order of the tables.
const std::vector<KeyInfo>& config_keys();

// One key whose value differs between two configs ("targets" for any change to the list).
struct KeyChange {
  std::string path;
  Reload reload;
  unsigned used_by;
};
std::vector<KeyChange> changed_keys(const Config& before, const Config& after);

// What a daemon logs for a reload that changed `changes`: one line per key it reads, e.g.
// "reload: kafka.topic changed: needs a restart to take effect" (warn) or
// "reload: checker.dns.cache changed: applied" (info).
struct ReloadLine {
  bool needs_restart;
  std::string text;
};
std::vector<ReloadLine> reload_lines(const std::vector<KeyChange>& changes, Component component);

// The key reference (a markdown table) and a JSON Schema (draft 2020-12) of config.yml.
std::string config_reference_markdown();
std::string config_json_schema();

}  // namespace webmon
