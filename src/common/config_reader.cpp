#include "config_reader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <system_error>

#include "webmon/common/hex.hpp"
#include "webmon/common/logging.hpp"
#include "webmon/common/text.hpp"

namespace webmon::config_detail {
namespace {

using namespace std::chrono;

// Whether a variable name or key path names a secret (PASSWORD, sasl.password, API_TOKEN, ...).
bool looks_secret(std::string_view name) {
  const std::string lower = ascii_lower(name);
  for (const char* word : {"pass", "secret", "token", "credential", "key", "auth"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string show(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      append_hex_byte(out, u);
    } else {
      out += c;
    }
  }
  return out + '"';
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (const auto item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::vector<std::string_view> split_list(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const auto comma = s.find(',');
    out.push_back(s.substr(0, comma));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

std::string Reader::component_name() const {
  switch (component_) {
    case Component::checker: return "webmon-checker";
    case Component::writer: return "webmon-writer";
    case Component::admin: return "webmon";
  }
  return "webmon";
}

std::string Reader::required_sections() const {
  switch (component_) {
    case Component::checker: return "kafka.bootstrap_servers and targets";
    case Component::writer: return "kafka.bootstrap_servers and postgres.uri";
    case Component::admin: return "postgres.uri";
  }
  return "";
}

void Reader::add_error(const YAML::Mark& mark, std::string key, std::string message) {
  ConfigError e;
  e.file = file_.string();
  if (!mark.is_null()) {
    e.line = mark.line + 1;
    e.column = mark.column + 1;
  }
  e.key = std::move(key);
  e.message = std::move(message);
  errors_.push_back(std::move(e));
}

YAML::Mark Reader::where(const Field& f) {
  return f.value.IsNull() || f.value.Mark().is_null() ? f.key.Mark() : f.value.Mark();
}

std::vector<ConfigError> Reader::take_errors() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(errors_);
}

Fields Reader::fields(const Node& node, const std::string& path, const std::vector<std::string_view>& allowed) {
  Fields out;
  std::map<std::string, int, std::less<>> seen;  // key -> line
  std::vector<Node> merges;                       // YAML merge keys: `<<: *defaults`
  auto known = [&](std::string_view name) { return std::find(allowed.begin(), allowed.end(), name) != allowed.end(); };
  for (std::size_t i = 0; i < node.size(); ++i) {
    const Node key = node.key(i);
    if (!key.IsScalar()) {
      add_error(key.Mark(), path, "a key must be a plain name, got " + yaml::kind_name(key));
      continue;
    }
    const std::string name = key.Scalar();
    const std::string key_path = child(path, name);
    if (name == "<<") {
      const Node v = node.value(i);
      if (v.IsMap()) {
        merges.push_back(v);
      } else if (v.IsSequence() && v.size() > 0) {
        for (std::size_t j = 0; j < v.size(); ++j) {
          if (v[j].IsMap()) merges.push_back(v[j]);
          else add_error(v[j].Mark(), key_path, "a merge key takes a mapping (or a list of mappings)");
        }
      } else {
        add_error(key.Mark(), key_path, "a merge key takes a mapping (or a list of mappings)");
      }
      continue;
    }
    if (!known(name)) {
      add_error(key.Mark(), key_path, "unknown key " + show(name) + " (allowed: " + join(allowed) + ")");
      continue;
    }
    if (auto [pos, inserted] = seen.emplace(name, key.Mark().line + 1); !inserted) {
      add_error(key.Mark(), key_path, "duplicate key (first given at line " + std::to_string(pos->second) + ")");
      continue;
    }
    out.add(name, Field{key, node.value(i)});
  }
  // Merged keys count only where the mapping does not set them itself; the first merge wins.
  for (const Node& m : merges) {
    for (std::size_t i = 0; i < m.size(); ++i) {
      const Node key = m.key(i);
      if (!key.IsScalar()) continue;
      const std::string name = key.Scalar();
      if (!known(name)) {
        add_error(key.Mark(), child(path, name),
                  "unknown key " + show(name) + " (merged with <<; allowed: " + join(allowed) + ")");
        continue;
      }
      if (seen.emplace(name, key.Mark().line + 1).second) out.add(name, Field{key, m.value(i)});
    }
  }
  return out;
}

std::optional<std::string> Reader::substitute(const Field& f, const std::string& path, const std::string& text) {
  if (text.find('$') == std::string::npos) return text;
  std::string out;
  out.reserve(text.size());
  bool ok = true;
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 3, "$${") == 0) {  // an escaped literal ${
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    const auto close = text.find('}', i + 2);
    if (close == std::string::npos) {
      error_at(f, path, "unterminated ${ in " + show(text) + " (write $${ for a literal ${)");
      return std::nullopt;
    }
    const std::string name = text.substr(i + 2, close - i - 2);
    const bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                       std::all_of(name.begin(), name.end(), [](char c) {
                         return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                       });
    if (!valid) {
      error_at(f, path, "invalid environment variable name " + show(name) + " in ${...}");
      ok = false;
    } else if (auto value = env_ ? env_(name) : std::nullopt) {
      // A value taken from the environment for a secret-looking key or variable is masked in
      // logs. Not every value: masking a broker address or a database name would hide what an
      // operator needs to read.
      if (looks_secret(name) || looks_secret(path)) register_secret(*value);
      out += *value;
    } else {
      error_at(f, path, "environment variable " + name + " is not set");
      ok = false;
    }
    i = close + 1;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> Reader::scalar(const Field& f, const std::string& path, std::string_view expected) {
  if (!f.value.IsScalar()) {
    error_at(f, path, "expected " + std::string(expected) + ", got " + yaml::kind_name(f.value));
    return std::nullopt;
  }
  return substitute(f, path, f.value.Scalar());
}

std::optional<std::string> Reader::nonempty_string(const Field& f, const std::string& path) {
  auto s = string_value(f, path);
  if (s && s->empty()) {
    error_at(f, path, "must not be empty");
    return std::nullopt;
  }
  return s;
}

std::optional<bool> Reader::bool_value(const Field& f, const std::string& path) {
  auto s = scalar(f, path, "true or false");
  if (!s) return std::nullopt;
  const auto v = ascii_lower(*s);
  if (v == "true" || v == "yes" || v == "on" || v == "y") return true;
  if (v == "false" || v == "no" || v == "off" || v == "n") return false;
  error_at(f, path, "expected true or false, got " + show(*s));
  return std::nullopt;
}

std::optional<std::int64_t> Reader::int_value(const Field& f, const std::string& path, std::int64_t lo, std::int64_t hi) {
  auto s = scalar(f, path, "an integer");
  if (!s) return std::nullopt;
  std::int64_t v = 0;
  const auto* end = s->data() + s->size();
  const auto [ptr, ec] = std::from_chars(s->data(), end, v);
  const std::string range = " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")";
  if (ec == std::errc::result_out_of_range) {
    error_at(f, path, show(*s) + range);
    return std::nullopt;
  }
  if (ec != std::errc{} || ptr != end || s->empty()) {
    error_at(f, path, "expected an integer, got " + show(*s));
    return std::nullopt;
  }
  if (v < lo || v > hi) {
    error_at(f, path, std::to_string(v) + range);
    return std::nullopt;
  }
  return v;
}

std::optional<nanoseconds> Reader::seconds_value(const Field& f, const std::string& path, double max) {
  auto s = scalar(f, path, "a number of seconds");
  if (!s) return std::nullopt;
  double v = 0;
  const auto* end = s->data() + s->size();
  const auto [ptr, ec] = std::from_chars(s->data(), end, v);
  if (ec != std::errc{} || ptr != end || s->empty() || !std::isfinite(v)) {
    error_at(f, path, "expected a number of seconds, got " + show(*s));
    return std::nullopt;
  }
  if (v <= 0) {
    error_at(f, path, "must be > 0, got " + *s);
    return std::nullopt;
  }
  if (v < 0.001) {
    error_at(f, path, "must be at least 0.001 (1 ms), got " + *s);
    return std::nullopt;
  }
  if (v > max) {
    error_at(f, path, "must be at most " + std::to_string(static_cast<long long>(max)) + ", got " + *s);
    return std::nullopt;
  }
  return round<nanoseconds>(duration<double>(v));
}

std::optional<std::size_t> Reader::choice(const Field& f, const std::string& path,
                                          const std::vector<std::string_view>& allowed) {
  auto s = scalar(f, path, "one of " + join(allowed));
  if (!s) return std::nullopt;
  const auto it = std::find(allowed.begin(), allowed.end(), ascii_lower(*s));
  if (it == allowed.end()) {
    error_at(f, path, "expected one of " + join(allowed) + ", got " + show(*s));
    return std::nullopt;
  }
  return static_cast<std::size_t>(it - allowed.begin());
}

namespace {
std::vector<fs::path> candidates(const fs::path& config_file, const std::string& value) {
  std::error_code ec;
  const fs::path p(value);
  if (p.is_absolute()) return {p};
  return {fs::absolute(p, ec), fs::absolute(config_file.parent_path() / p, ec)};
}
}  // namespace

std::optional<std::string> Reader::find_file(const std::string& value) const {
  std::error_code ec;
  for (const auto& c : candidates(file_, value)) {
    if (fs::is_regular_file(c, ec)) return c.lexically_normal().string();
  }
  return std::nullopt;
}

std::optional<std::string> Reader::existing_file(const Field* f, const YAML::Mark& mark, const std::string& path,
                                                 const std::string& value) {
  std::error_code ec;
  const auto looked_at = candidates(file_, value);
  for (const auto& c : looked_at) {
    if (fs::is_regular_file(c, ec)) {
      if (!std::ifstream(c).good()) {
        add_error(f ? where(*f) : mark, path, "cannot read " + c.string());
        return std::nullopt;
      }
      return c.lexically_normal().string();
    }
  }
  std::string looked;
  for (const auto& c : looked_at) looked += (looked.empty() ? "" : ", ") + c.lexically_normal().string();
  add_error(f ? where(*f) : mark, path, "file not found: " + show(value) + " (looked for " + looked + ")");
  return std::nullopt;
}

std::optional<std::string> Reader::listen_address(const Field& f, const std::string& path) {
  auto s = string_value(f, path);
  if (!s || s->empty()) return s;  // empty: no endpoint
  if (!parse_host_port(*s)) {
    error_at(f, path, "expected host:port, [v6]:port or :port (e.g. 127.0.0.1:9100, [::1]:9100, :9100), got " + show(*s));
    return std::nullopt;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------

KeyInfo base_info(const Doc& d, Kind kind, std::int64_t lo, std::int64_t hi, std::string_view choices,
                  const std::string& path) {
  KeyInfo k;
  k.path = path;
  for (const auto s : split_list(d.synonyms_)) k.synonyms.emplace_back(s);
  k.default_value = d.default_text_;
  k.reload = d.reload;
  k.used_by = d.used_by;
  k.required_by = d.required_by_;
  k.doc = d.doc;
  k.example = d.example;
  const std::string env = R"({"type": "string", "pattern": "\\$\\{"})";  // a ${VAR} stands for any type
  auto with_env = [&](const std::string& schema) { return R"({"anyOf": [)" + schema + ", " + env + "]}"; };
  switch (kind) {
    case Kind::string:
      k.type = "string";
      k.schema = R"({"type": "string"})";
      break;
    case Kind::nonempty:
      k.type = "string";
      k.bounds = "not empty";
      k.schema = R"({"type": "string", "minLength": 1})";
      break;
    case Kind::boolean:
      k.type = "boolean";
      k.bounds = "true/false, yes/no, on/off, y/n";
      k.schema = with_env(R"({"type": "boolean"}, {"enum": ["yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "Y", "N", "YES", "NO", "ON", "OFF", "True", "False", "TRUE", "FALSE"]})");
      break;
    case Kind::integer:
      k.type = "integer";
      k.bounds = std::to_string(lo) + ".." + std::to_string(hi);
      k.schema = with_env(R"({"type": "integer", "minimum": )" + std::to_string(lo) + R"(, "maximum": )" +
                          std::to_string(hi) + "}");
      break;
    case Kind::seconds:
      k.type = "seconds";
      k.bounds = "0.001.." + std::to_string(hi);
      k.schema = with_env(R"({"type": "number", "minimum": 0.001, "maximum": )" + std::to_string(hi) + "}");
      break;
    case Kind::choice: {
      k.type = "choice";
      std::string list;
      std::string names;
      for (const auto c : split_list(choices)) {
        list += (list.empty() ? "" : ", ") + std::string(c);
        names += (names.empty() ? "\"" : ", \"") + std::string(c) + "\"";
      }
      k.bounds = list;
      // Case does not matter to the loader; the schema names the lower-case spelling.
      k.schema = with_env(R"({"enum": [)" + names + "]}");
      break;
    }
    case Kind::file:
      k.type = "file";
      k.bounds = "must exist";
      k.schema = R"({"type": "string", "minLength": 1})";
      break;
    case Kind::listen:
      k.type = "host:port";
      k.bounds = "host:port, [v6]:port, :port";
      k.schema = R"({"type": "string", "pattern": "^(|.*:[0-9]{1,5})$"})";
      break;
    case Kind::section:
      k.type = "mapping";
      k.schema = R"({"type": ["object", "null"]})";
      break;
    case Kind::custom:
      k.type = d.type_text_;
      k.schema = d.schema_;
      break;
  }
  return k;
}

}  // namespace webmon::config_detail
