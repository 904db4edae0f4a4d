// What comes from the key tables besides parsing: the reload lines, the markdown key reference
// (docs/configuration.md holds it verbatim) and a JSON Schema of config.yml for editors.
#include <algorithm>
#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "webmon/common/config_keys.hpp"

namespace webmon {
namespace {

unsigned bit_of(Component c) {
  switch (c) {
    case Component::checker: return kChecker;
    case Component::writer: return kWriter;
    case Component::admin: return kAdmin;
  }
  return 0;
}

std::string users(unsigned mask) {
  if (mask == kEveryone) return "all";
  std::string out;
  for (const auto& [bit, name] : {std::pair{kChecker, "checker"}, std::pair{kWriter, "writer"}, std::pair{kAdmin, "CLI"}}) {
    if (mask & bit) out += (out.empty() ? "" : ", ") + std::string(name);
  }
  return out;
}

std::string cell(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '|') out += "\\|";
    else out += c;
  }
  return out;
}

// The direct children of `prefix` ("" for the top level, "kafka." or "targets[]." below).
std::vector<const KeyInfo*> children(std::string_view prefix) {
  std::vector<const KeyInfo*> out;
  for (const auto& k : config_keys()) {
    if (!k.path.starts_with(prefix)) continue;
    const auto rest = std::string_view(k.path).substr(prefix.size());
    if (!rest.empty() && rest.find('.') == std::string_view::npos) out.push_back(&k);
  }
  return out;
}

boost::json::object object_schema(const std::string& prefix);

boost::json::value key_schema(const KeyInfo& k) {
  boost::json::value v = boost::json::parse(k.schema.empty() ? "{}" : k.schema);
  if (k.section && k.schema.find("array") != std::string::npos) {  // the list of targets
    v.as_object()["items"] = object_schema(k.path + "[].");
  } else if (k.section) {
    for (auto& [name, value] : object_schema(k.path + ".")) v.as_object()[name] = value;
  } else {
    // A key with no value is the same as leaving it out.
    v = boost::json::object{{"anyOf", boost::json::array{v, boost::json::object{{"type", "null"}}}}};
  }
  std::string description = k.doc;
  if (!k.default_value.empty() && !k.section) description += " (default: " + k.default_value + ")";
  v.as_object()["description"] = description;
  return v;
}

boost::json::object object_schema(const std::string& prefix) {
  boost::json::object o;
  if (prefix.empty()) o["type"] = "object";
  else o["type"] = boost::json::array{"object", "null"};
  boost::json::object props;
  boost::json::array required;
  boost::json::array alternatives;
  for (const auto* k : children(prefix)) {
    const std::string name = k->path.substr(prefix.size());
    const auto schema = key_schema(*k);
    props[name] = schema;
    for (const auto& s : k->synonyms) props[s] = schema;
    // Required by every binary (the targets' keys); the others depend on which binary reads the file.
    if (k->required_by == kEveryone && k->synonyms.empty()) required.push_back(boost::json::string(name));
    if (k->required_by == kEveryone && !k->synonyms.empty()) {
      alternatives.push_back(boost::json::object{{"required", boost::json::array{boost::json::string(name)}}});
      for (const auto& s : k->synonyms) alternatives.push_back(boost::json::object{{"required", boost::json::array{boost::json::string(s)}}});
    }
  }
  o["properties"] = std::move(props);
  o["patternProperties"] = boost::json::object{{"^<<$", boost::json::object{}}};  // YAML merge keys
  o["additionalProperties"] = false;
  if (!required.empty()) o["required"] = std::move(required);
  if (!alternatives.empty()) o["anyOf"] = std::move(alternatives);
  return o;
}

}  // namespace

std::string_view reload_name(Reload r) noexcept {
  switch (r) {
    case Reload::applied: return "applied";
    case Reload::restart: return "restart";
    case Reload::probe: return "probe";
  }
  return "restart";
}

std::vector<ReloadLine> reload_lines(const std::vector<KeyChange>& changes, Component component) {
  std::vector<ReloadLine> out;
  for (const auto& c : changes) {
    if (!(c.used_by & bit_of(component))) continue;
    const bool restart = c.reload == Reload::restart;
    out.push_back({restart, "reload: " + c.path + " changed: " + (restart ? "needs a restart to take effect" : "applied")});
  }
  return out;
}

std::string config_reference_markdown() {
  std::string out =
      "| key | type | default | example | on SIGHUP | read by | description |\n"
      "|-----|------|---------|---------|-----------|---------|-------------|\n";
  for (const auto& k : config_keys()) {
    std::string type = k.type;
    if (!k.bounds.empty()) type += " (" + k.bounds + ")";
    std::string doc = k.doc;
    if (!k.synonyms.empty()) {
      doc += "; also written";
      for (const auto& s : k.synonyms) doc += " `" + s + "`";
    }
    if (k.required_by == kEveryone) doc += "; **required**";
    else if (k.required_by) doc += "; **required** by " + users(k.required_by);
    const std::string reload = k.section ? "" : k.reload == Reload::restart ? "restart" : "applied";
    const std::string example = k.example.empty() ? "" : "`" + cell(k.example) + "`";
    out += "| `" + k.path + "` | " + cell(type) + " | " + (k.section ? "" : cell(k.default_value)) + " | " + example +
           " | " + reload + " | " + users(k.used_by) + " | " + cell(doc) + " |\n";
  }
  return out;
}

std::string config_json_schema() {
  auto schema = object_schema("");
  boost::json::object top;
  top["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  top["title"] = "webmon config.yml";
  top["description"] = "Generated by `webmon config-schema --format json` from the key tables in src/common/config.cpp.";
  for (auto& [name, value] : schema) top[name] = value;
  return boost::json::serialize(top) + "\n";
}

}  // namespace webmon
