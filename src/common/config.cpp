#include "webmon/common/config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>

#include <librdkafka/rdkafka.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "webmon/common/kafka.hpp"
#include "webmon/common/text.hpp"

namespace webmon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

constexpr std::size_t kMaxNameLength = 128;
constexpr double kMaxIntervalSeconds = 7 * 24 * 3600;
constexpr std::size_t kMaxBodyBytesLimit = 256u * 1024 * 1024;

std::string show(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out + '"';
}

// "ip", "ip:port" or "[v6]:port": what c-ares takes for a name server (a host name cannot be:
// it would need a resolver to find the resolver).
bool name_server_address(const std::string& s) {
  auto is_ip = [](const std::string& text, bool v6) {
    unsigned char buf[16];
    return ::inet_pton(v6 ? AF_INET6 : AF_INET, text.c_str(), buf) == 1;
  };
  auto is_port = [](std::string_view p) {
    unsigned port = 0;
    const auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    return !p.empty() && ec == std::errc{} && ptr == p.data() + p.size() && port > 0 && port <= 65535;
  };
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || !is_ip(s.substr(1, close - 1), true)) return false;
    if (close + 1 == s.size()) return true;
    return s[close + 1] == ':' && is_port(std::string_view(s).substr(close + 2));
  }
  if (is_ip(s, true) || is_ip(s, false)) return true;
  const auto colon = s.rfind(':');
  return colon != std::string::npos && is_ip(s.substr(0, colon), false) && is_port(std::string_view(s).substr(colon + 1));
}

std::string join(std::initializer_list<std::string_view> items) {
  std::string out;
  for (const auto item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}


// ---------------------------------------------------------------------------------------------
// The document as a compact tree built from yaml-cpp's parser events. yaml-cpp's own Node
// tree costs about 4 KiB per target (460 MB for 100,000 targets, measured); this one keeps a
// 20-byte record per node, the children's ids in one array and the scalars in one string, with
// the same marks (positions) yaml-cpp reports.

enum class NodeKind : std::uint8_t { undefined, null, scalar, sequence, map };

class Tree;

class Node {
 public:
  Node() = default;
  Node(const Tree* tree, std::uint32_t id) : tree_(tree), id_(id) {}
  NodeKind kind() const;
  bool IsDefined() const { return kind() != NodeKind::undefined; }
  bool IsNull() const { return kind() == NodeKind::null; }
  bool IsScalar() const { return kind() == NodeKind::scalar; }
  bool IsSequence() const { return kind() == NodeKind::sequence; }
  bool IsMap() const { return kind() == NodeKind::map; }
  std::string Scalar() const;
  YAML::Mark Mark() const;
  std::size_t size() const;              // elements of a sequence, pairs of a map
  Node operator[](std::size_t i) const;  // element i of a sequence
  Node key(std::size_t i) const;         // pair i of a map
  Node value(std::size_t i) const;

 private:
  const Tree* tree_ = nullptr;
  std::uint32_t id_ = 0;
};

class Tree final : public YAML::EventHandler {
 public:
  // Parses the first document; throws YAML::ParserException like YAML::Load.
  explicit Tree(std::string_view text) {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    parser.HandleNextDocument(*this);
  }
  Node root() const { return root_ == kNone ? Node() : Node(this, root_); }

 private:
  friend class Node;
  static constexpr std::uint32_t kNone = 0xffffffff;
  struct Record {
    NodeKind kind;
    std::int32_t line;
    std::int32_t column;
    std::uint32_t begin;  // scalar: offset in text_; container: offset in kids_
    std::uint32_t count;  // scalar: length; container: number of kids
  };

  std::uint32_t add(NodeKind kind, const YAML::Mark& mark, std::uint32_t begin = 0, std::uint32_t count = 0) {
    const auto id = static_cast<std::uint32_t>(nodes_.size());
    nodes_.push_back({kind, mark.line, mark.column, begin, count});
    attach(id);
    return id;
  }
  void attach(std::uint32_t id) {
    if (open_.empty()) {
      if (root_ == kNone) root_ = id;
    } else {
      pending_.push_back(id);
    }
  }
  void remember(YAML::anchor_t anchor, std::uint32_t id) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = id;
  }
  void open(NodeKind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    const auto id = add(kind, mark);
    remember(anchor, id);
    open_.push_back({id, static_cast<std::uint32_t>(pending_.size())});
  }
  void close() {
    const auto [id, first] = open_.back();
    open_.pop_back();
    nodes_[id].begin = static_cast<std::uint32_t>(kids_.size());
    nodes_[id].count = static_cast<std::uint32_t>(pending_.size() - first);
    kids_.insert(kids_.end(), pending_.begin() + first, pending_.end());
    pending_.resize(first);
  }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { remember(anchor, add(NodeKind::null, mark)); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override {
    if (auto it = anchors_.find(anchor); it != anchors_.end()) attach(it->second);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    const auto begin = static_cast<std::uint32_t>(text_.size());
    text_ += value;
    remember(anchor, add(NodeKind::scalar, mark, begin, static_cast<std::uint32_t>(value.size())));
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(NodeKind::sequence, mark, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(NodeKind::map, mark, anchor);
  }
  void OnMapEnd() override { close(); }

  std::vector<Record> nodes_;
  std::vector<std::uint32_t> kids_;
  std::string text_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> open_;  // container id, first pending kid
  std::vector<std::uint32_t> pending_;                          // kids of the open containers
  std::unordered_map<YAML::anchor_t, std::uint32_t> anchors_;
  std::uint32_t root_ = kNone;
};

NodeKind Node::kind() const { return tree_ ? tree_->nodes_[id_].kind : NodeKind::undefined; }
std::string Node::Scalar() const {
  if (!IsScalar()) return {};
  const auto& r = tree_->nodes_[id_];
  return tree_->text_.substr(r.begin, r.count);
}
YAML::Mark Node::Mark() const {
  if (!tree_) return YAML::Mark::null_mark();
  YAML::Mark m;
  m.line = tree_->nodes_[id_].line;
  m.column = tree_->nodes_[id_].column;
  return m;
}
std::size_t Node::size() const {
  if (!IsSequence() && !IsMap()) return 0;
  const auto n = tree_->nodes_[id_].count;
  return IsMap() ? n / 2 : n;
}
Node Node::operator[](std::size_t i) const {
  return Node(tree_, tree_->kids_[tree_->nodes_[id_].begin + i]);
}
Node Node::key(std::size_t i) const { return Node(tree_, tree_->kids_[tree_->nodes_[id_].begin + 2 * i]); }
Node Node::value(std::size_t i) const { return Node(tree_, tree_->kids_[tree_->nodes_[id_].begin + 2 * i + 1]); }

std::string kind_name(const Node& n) {
  switch (n.kind()) {
    case NodeKind::map: return "a mapping";
    case NodeKind::sequence: return "a list";
    case NodeKind::scalar: return "a scalar";
    default: return "nothing";
  }
}

std::string host_name() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0 || buf[0] == '\0') return "webmon";
  return std::string(buf.data());
}

// Whether a variable name or key path names a secret (PASSWORD, sasl.password, API_TOKEN, ...).
bool looks_secret(std::string_view name) {
  const std::string lower = ascii_lower(name);
  for (const char* word : {"pass", "secret", "token", "credential", "key", "auth"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}


bool is_secret_header(std::string_view name) {
  const auto n = ascii_lower(name);
  return n == "authorization" || n == "proxy-authorization" || n == "cookie" || n.find("token") != std::string::npos ||
         n.find("api-key") != std::string::npos || n.find("secret") != std::string::npos;
}

bool is_secret_property(std::string_view name) {
  const auto n = ascii_lower(name);
  return n.find("password") != std::string::npos || n.find("secret") != std::string::npos ||
         n.find("token") != std::string::npos;
}

// One key of a mapping as written: the key node (for its position) and the value node.
struct Field {
  Node key;
  Node value;
};

// A mapping's fields in file order, after unknown and duplicate keys were reported.
class Fields {
 public:
  void add(std::string name, Field f) { items_.emplace_back(std::move(name), std::move(f)); }
  // The field, or nullptr when it is absent or null (a key with no value counts as not given).
  const Field* get(std::string_view name) const {
    for (const auto& [n, f] : items_) {
      if (n == name) return f.value.IsNull() ? nullptr : &f;
    }
    return nullptr;
  }
  const Field* get_even_null(std::string_view name) const {
    for (const auto& [n, f] : items_) {
      if (n == name) return &f;
    }
    return nullptr;
  }

 private:
  std::vector<std::pair<std::string, Field>> items_;
};

class Loader {
 public:
  Loader(fs::path file, Component component, const EnvLookup& env)
      : file_(std::move(file)), component_(component), env_(env) {}

  ConfigLoad run(std::string_view yaml) {
    ConfigLoad out;
    Config cfg;
    cfg.source = file_;
    std::unique_ptr<Tree> tree;
    try {
      tree = std::make_unique<Tree>(yaml);
    } catch (const YAML::ParserException& e) {
      add_error(e.mark, "", "YAML syntax: " + e.msg);
      return finish(std::move(cfg));
    }
    const Node root = tree->root();
    if (!root.IsDefined() || root.IsNull()) {
      errors_.push_back({file_.string(), 1, 1, "", "the file is empty; it needs at least " + required_sections()});
      return finish(std::move(cfg));
    }
    if (!root.IsMap()) {
      add_error(root.Mark(), "", "expected a mapping of sections (kafka, postgres, targets, ...), got " + kind_name(root));
      return finish(std::move(cfg));
    }
    root_mark_ = root.Mark();
    const auto top = fields(root, "", {"kafka", "postgres", "targets", "checker", "writer", "log_format"});

    if (const auto* f = top.get("log_format")) {
      if (auto v = choice(*f, "log_format", {"text", "json"})) {
        cfg.log_format = *v == "json" ? LogFormat::json : LogFormat::text;
      }
    }
    parse_kafka(top, cfg.kafka);
    parse_postgres(top, cfg.postgres);
    parse_targets(top, cfg.targets);
    parse_checker(top, cfg.checker);
    parse_writer(top, cfg.writer);
    return finish(std::move(cfg));
  }

 private:
  // ------------------------------------------------------------------------------------------
  // Errors

  void add_error(const YAML::Mark& mark, std::string key, std::string message) {
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

  // Where a value's error points: at the value, or at its key when the value is empty (yaml-cpp
  // places an empty value on the next line).
  static YAML::Mark where(const Field& f) { return f.value.IsNull() || f.value.Mark().is_null() ? f.key.Mark() : f.value.Mark(); }

  void error_at(const Field& f, std::string key, std::string message) { add_error(where(f), std::move(key), std::move(message)); }

  ConfigLoad finish(Config cfg) {
    ConfigLoad out;
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    out.errors = std::move(errors_);
    if (out.errors.empty()) out.config = std::move(cfg);
    return out;
  }

  std::string component_name() const {
    switch (component_) {
      case Component::checker: return "webmon-checker";
      case Component::writer: return "webmon-writer";
      case Component::admin: return "webmon";
    }
    return "webmon";
  }

  std::string required_sections() const {
    switch (component_) {
      case Component::checker: return "kafka.bootstrap_servers and targets";
      case Component::writer: return "kafka.bootstrap_servers and postgres.uri";
      case Component::admin: return "postgres.uri";
    }
    return "";
  }

  // ------------------------------------------------------------------------------------------
  // Structure

  static std::string child(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  // Checks that `node` is a mapping whose keys are all in `allowed`, each given once.
  Fields fields(const Node& node, const std::string& path, std::initializer_list<std::string_view> allowed) {
    Fields out;
    std::map<std::string, int, std::less<>> seen;  // key -> line
    std::vector<Node> merges;                       // YAML merge keys: `<<: *defaults`
    for (std::size_t i = 0; i < node.size(); ++i) {
      const Node key = node.key(i);
      if (!key.IsScalar()) {
        add_error(key.Mark(), path, "a key must be a plain name, got " + kind_name(key));
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
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
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
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
          add_error(key.Mark(), child(path, name),
                    "unknown key " + show(name) + " (merged with <<; allowed: " + join(allowed) + ")");
          continue;
        }
        if (seen.emplace(name, key.Mark().line + 1).second) out.add(name, Field{key, m.value(i)});
      }
    }
    return out;
  }

  // A section that must be a mapping; nullopt (error reported) when it is something else.
  std::optional<Fields> section(const Fields& parent, std::string_view name, const std::string& path,
                                std::initializer_list<std::string_view> allowed) {
    const auto* f = parent.get(name);
    if (!f) return std::nullopt;
    if (!f->value.IsMap()) {
      error_at(*f, path, "expected a mapping, got " + kind_name(f->value));
      return std::nullopt;
    }
    return fields(f->value, path, allowed);
  }

  void required(const Fields* parent, const YAML::Mark& parent_mark, std::string_view name, const std::string& path) {
    if (parent && parent->get(name)) return;
    const Field* null_field = parent ? parent->get_even_null(name) : nullptr;
    add_error(null_field ? null_field->key.Mark() : parent_mark, path,
              "required by " + component_name() + " but not given");
  }

  // ------------------------------------------------------------------------------------------
  // Scalars. ${VAR} is substituted in every scalar value before its type is checked.

  std::optional<std::string> substitute(const Field& f, const std::string& path, const std::string& text) {
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

  std::optional<std::string> scalar(const Field& f, const std::string& path, std::string_view expected) {
    if (!f.value.IsScalar()) {
      error_at(f, path, "expected " + std::string(expected) + ", got " + kind_name(f.value));
      return std::nullopt;
    }
    return substitute(f, path, f.value.Scalar());
  }

  std::optional<std::string> string_value(const Field& f, const std::string& path) {
    return scalar(f, path, "a string");
  }

  std::optional<std::string> nonempty_string(const Field& f, const std::string& path) {
    auto s = string_value(f, path);
    if (s && s->empty()) {
      error_at(f, path, "must not be empty");
      return std::nullopt;
    }
    return s;
  }

  std::optional<bool> bool_value(const Field& f, const std::string& path) {
    auto s = scalar(f, path, "true or false");
    if (!s) return std::nullopt;
    const auto v = ascii_lower(*s);
    if (v == "true" || v == "yes" || v == "on" || v == "y") return true;
    if (v == "false" || v == "no" || v == "off" || v == "n") return false;
    error_at(f, path, "expected true or false, got " + show(*s));
    return std::nullopt;
  }

  std::optional<std::int64_t> int_value(const Field& f, const std::string& path, std::int64_t lo, std::int64_t hi) {
    auto s = scalar(f, path, "an integer");
    if (!s) return std::nullopt;
    std::int64_t v = 0;
    const auto* end = s->data() + s->size();
    const auto [ptr, ec] = std::from_chars(s->data(), end, v);
    if (ec == std::errc::result_out_of_range) {
      error_at(f, path, show(*s) + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
      return std::nullopt;
    }
    if (ec != std::errc{} || ptr != end || s->empty()) {
      error_at(f, path, "expected an integer, got " + show(*s));
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      error_at(f, path, std::to_string(v) + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
      return std::nullopt;
    }
    return v;
  }

  // A number of seconds (integer or decimal), > 0 and at most `max`.
  std::optional<nanoseconds> seconds_value(const Field& f, const std::string& path, double max) {
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

  std::optional<std::string> choice(const Field& f, const std::string& path,
                                    std::initializer_list<std::string_view> allowed) {
    auto s = scalar(f, path, "one of " + join(allowed));
    if (!s) return std::nullopt;
    const auto v = ascii_lower(*s);
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      error_at(f, path, "expected one of " + join(allowed) + ", got " + show(*s));
      return std::nullopt;
    }
    return v;
  }

  // A file that must exist. A relative path is looked up in the working directory first, then in
  // the config file's directory; the result is absolute so that a later chdir cannot change it.
  std::optional<std::string> existing_file(const Field* f, const YAML::Mark& mark, const std::string& path,
                                           const std::string& value) {
    std::error_code ec;
    fs::path p(value);
    std::vector<fs::path> candidates;
    if (p.is_absolute()) {
      candidates.push_back(p);
    } else {
      candidates.push_back(fs::absolute(p, ec));
      candidates.push_back(fs::absolute(file_.parent_path() / p, ec));
    }
    for (const auto& c : candidates) {
      if (fs::is_regular_file(c, ec)) {
        if (!std::ifstream(c).good()) {
          add_error(f ? where(*f) : mark, path, "cannot read " + c.string());
          return std::nullopt;
        }
        return c.lexically_normal().string();
      }
    }
    std::string looked;
    for (const auto& c : candidates) looked += (looked.empty() ? "" : ", ") + c.lexically_normal().string();
    add_error(f ? where(*f) : mark, path, "file not found: " + show(value) + " (looked for " + looked + ")");
    return std::nullopt;
  }

  // host:port, [v6]:port; port 0 means "any free port" (tests use it).
  void listen_address(const Field& f, const std::string& path, std::string& out) {
    auto s = string_value(f, path);
    if (!s) return;
    if (s->empty()) return;  // no endpoint
    const auto colon = s->rfind(':');
    bool ok = colon != std::string::npos && colon > 0 && colon + 1 < s->size();
    if (ok) {
      const std::string host = s->substr(0, colon);
      if (host.find(':') != std::string::npos && !(host.front() == '[' && host.back() == ']')) ok = false;
      unsigned port = 0;
      const auto* b = s->data() + colon + 1;
      const auto* e = s->data() + s->size();
      const auto [ptr, ec] = std::from_chars(b, e, port);
      if (ec != std::errc{} || ptr != e || port > 65535) ok = false;
    }
    if (!ok) {
      error_at(f, path, "expected host:port (e.g. 127.0.0.1:9100 or [::1]:9100), got " + show(*s));
      return;
    }
    out = *s;
  }

  // ------------------------------------------------------------------------------------------
  // Sections

  void parse_kafka(const Fields& top, KafkaConfig& k) {
    const bool needed = component_ != Component::admin;
    const auto* section_field = top.get("kafka");
    auto sec = section(top, "kafka", "kafka",
                       {"bootstrap_servers", "topic", "topic_partitions", "security_protocol", "ssl", "sasl",
                        "properties"});
    const YAML::Mark sec_mark = section_field ? section_field->key.Mark() : root_mark_;
    if (!sec) {
      if (needed && !section_field) required(&top, root_mark_, "kafka", "kafka.bootstrap_servers");
      return;
    }
    const Fields& s = *sec;
    if (const auto* f = s.get("bootstrap_servers")) {
      // The earlier tool wrote a string; a YAML list of host:port is accepted too.
      std::vector<std::string> servers;
      if (f->value.IsSequence()) {
        for (std::size_t i = 0; i < f->value.size(); ++i) {
          const Field item{f->key, f->value[i]};
          const auto item_path = "kafka.bootstrap_servers[" + std::to_string(i) + "]";
          if (auto v = string_value(item, item_path)) servers.push_back(*v);
        }
      } else if (auto v = string_value(*f, "kafka.bootstrap_servers")) {
        std::stringstream ss(*v);
        for (std::string part; std::getline(ss, part, ',');) {
          part.erase(0, part.find_first_not_of(" \t"));
          part.erase(part.find_last_not_of(" \t") + 1);
          servers.push_back(part);
        }
      }
      bool ok = !servers.empty();
      for (const auto& srv : servers) {
        const auto colon = srv.rfind(':');
        unsigned port = 0;
        const auto* b = srv.data() + (colon == std::string::npos ? srv.size() : colon + 1);
        const auto* e = srv.data() + srv.size();
        const auto [ptr, ec] = std::from_chars(b, e, port);
        if (colon == std::string::npos || colon == 0 || ec != std::errc{} || ptr != e || port == 0 || port > 65535) {
          error_at(*f, "kafka.bootstrap_servers", "expected host:port[,host:port...], got " + show(srv));
          ok = false;
          break;
        }
      }
      if (ok) {
        for (const auto& srv : servers) k.bootstrap_servers += (k.bootstrap_servers.empty() ? "" : ",") + srv;
      } else if (servers.empty()) {
        error_at(*f, "kafka.bootstrap_servers", "must not be empty");
      }
    }
    if (const auto* f = s.get("topic")) {
      if (auto v = nonempty_string(*f, "kafka.topic")) {
        const bool legal = v->size() <= 249 && *v != "." && *v != ".." &&
                           std::all_of(v->begin(), v->end(), [](char c) {
                             return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
                           });
        if (legal) k.topic = *v;
        else error_at(*f, "kafka.topic", "not a legal Kafka topic name (1..249 of a-z A-Z 0-9 . _ -): " + show(*v));
      }
    }
    if (const auto* f = s.get("topic_partitions")) {
      if (auto v = int_value(*f, "kafka.topic_partitions", 1, 10000)) k.topic_partitions = static_cast<int>(*v);
    }
    if (const auto* f = s.get("security_protocol")) {
      if (auto v = choice(*f, "kafka.security_protocol", {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"})) {
        k.security_protocol = *v;
      }
    }
    const bool ssl = k.security_protocol == "ssl" || k.security_protocol == "sasl_ssl";
    const bool sasl = k.security_protocol == "sasl_plaintext" || k.security_protocol == "sasl_ssl";

    const auto* ssl_field = s.get("ssl");
    if (auto ssl_sec = section(s, "ssl", "kafka.ssl", {"ca_file", "cert_file", "key_file"})) {
      const std::pair<std::string_view, std::string*> files[] = {
          {"ca_file", &k.ssl.ca_file}, {"cert_file", &k.ssl.cert_file}, {"key_file", &k.ssl.key_file}};
      for (const auto& [name, dest] : files) {
        const auto path = "kafka.ssl." + std::string(name);
        if (const auto* f = ssl_sec->get(name)) {
          if (auto v = nonempty_string(*f, path)) {
            if (auto resolved = existing_file(f, {}, path, *v)) *dest = *resolved;
          }
        }
      }
    }
    if (ssl && k.ssl.ca_file.empty() && k.ssl.cert_file.empty() && k.ssl.key_file.empty() &&
        !(ssl_field && (ssl_field->value.IsMap() && ssl_field->value.size() > 0))) {
      // As the earlier tool: with TLS and no paths, the files Aiven hands out, under config/kafka/.
      const YAML::Mark mark = ssl_field ? ssl_field->key.Mark() : sec_mark;
      const std::pair<std::string_view, std::string*> defaults[] = {{"config/kafka/ca.pem", &k.ssl.ca_file},
                                                                    {"config/kafka/service.cert", &k.ssl.cert_file},
                                                                    {"config/kafka/service.key", &k.ssl.key_file}};
      for (const auto& [file, dest] : defaults) {
        if (auto resolved = existing_file(nullptr, mark, "kafka.ssl", std::string(file))) *dest = *resolved;
      }
    }

    const auto* sasl_field = s.get("sasl");
    if (auto sasl_sec = section(s, "sasl", "kafka.sasl", {"mechanism", "username", "password"})) {
      if (const auto* f = sasl_sec->get("mechanism")) {
        if (auto v = scalar(*f, "kafka.sasl.mechanism", "a SASL mechanism")) {
          static constexpr std::string_view kMechanisms[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER",
                                                             "GSSAPI"};
          std::string upper(*v);
          std::transform(upper.begin(), upper.end(), upper.begin(),
                         [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
          if (std::find(std::begin(kMechanisms), std::end(kMechanisms), upper) != std::end(kMechanisms)) {
            k.sasl.mechanism = upper;
          } else {
            error_at(*f, "kafka.sasl.mechanism",
                     "expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI, got " + show(*v));
          }
        }
      }
      if (const auto* f = sasl_sec->get("username")) {
        if (auto v = string_value(*f, "kafka.sasl.username")) k.sasl.username = *v;
      }
      if (const auto* f = sasl_sec->get("password")) {
        if (auto v = string_value(*f, "kafka.sasl.password")) {
          k.sasl.password = *v;
          register_secret(*v);
        }
      }
    }
    if (sasl && k.sasl.mechanism.empty()) {
      add_error(sasl_field ? sasl_field->key.Mark() : sec_mark, "kafka.sasl.mechanism",
                "required with security_protocol " + k.security_protocol +
                    " (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI)");
    }
    if (sasl && (k.sasl.mechanism == "PLAIN" || k.sasl.mechanism.starts_with("SCRAM")) &&
        (k.sasl.username.empty() || k.sasl.password.empty())) {
      add_error(sasl_field ? sasl_field->key.Mark() : sec_mark, "kafka.sasl",
                "username and password are required with mechanism " + k.sasl.mechanism);
    }

    bool bootstrap_in_properties = false;
    if (const auto* f = s.get("properties")) {
      if (!f->value.IsMap()) {
        error_at(*f, "kafka.properties", "expected a mapping of librdkafka properties, got " + kind_name(f->value));
      } else {
        // librdkafka is the judge of its own properties: each is set on a scratch conf and its
        // refusal, in its own words, is reported at the property's line.
        kafka::ConfPtr scratch(rd_kafka_conf_new());
        std::map<std::string, int, std::less<>> seen;
        for (std::size_t i = 0; i < f->value.size(); ++i) {
          const Field item{f->value.key(i), f->value.value(i)};
          if (!item.key.IsScalar()) {
            add_error(item.key.Mark(), "kafka.properties", "a property name must be a string");
            continue;
          }
          const std::string name = item.key.Scalar();
          const std::string path = "kafka.properties." + name;
          if (auto [pos, inserted] = seen.emplace(name, item.key.Mark().line + 1); !inserted) {
            add_error(item.key.Mark(), path, "duplicate key (first given at line " + std::to_string(pos->second) + ")");
            continue;
          }
          if (item.value.IsNull()) {
            error_at(item, path, "needs a value");
            continue;
          }
          auto value = scalar(item, path, "a scalar value");
          if (!value) continue;
          std::array<char, 512> err{};
          if (rd_kafka_conf_set(scratch.get(), name.c_str(), value->c_str(), err.data(), err.size()) !=
              RD_KAFKA_CONF_OK) {
            error_at(item, path, "librdkafka: " + std::string(err.data()));
            continue;
          }
          if (is_secret_property(name)) register_secret(*value);
          if (name == "bootstrap.servers" || name == "metadata.broker.list") bootstrap_in_properties = true;
          k.properties.emplace_back(name, *value);
        }
      }
    }
    if (needed && k.bootstrap_servers.empty() && !bootstrap_in_properties && !s.get("bootstrap_servers")) {
      required(&s, sec_mark, "bootstrap_servers", "kafka.bootstrap_servers");
    }
  }

  void parse_postgres(const Fields& top, PostgresConfig& pg) {
    const bool needed = component_ != Component::checker;
    const auto* section_field = top.get("postgres");
    auto sec = section(top, "postgres", "postgres",
                       {"uri", "connect_timeout_seconds", "keepalives_idle_seconds", "keepalives_interval_seconds",
                        "keepalives_count", "statement_timeout_ms"});
    if (!sec) {
      if (needed && !section_field) required(&top, root_mark_, "postgres", "postgres.uri");
      return;
    }
    if (const auto* f = sec->get("uri")) {
      if (auto v = nonempty_string(*f, "postgres.uri")) {
        // The URI is logged only through redact_uri(); its password is not registered as a
        // free-text secret, which with the local stack's password "webmon" would mask the
        // product's own name in every log line.
        pg.uri = *v;
      }
    } else if (needed) {
      required(&*sec, section_field->key.Mark(), "uri", "postgres.uri");
    }
    for (auto [key, slot, lo, hi] : {std::tuple{"connect_timeout_seconds", &pg.connect_timeout_seconds, 1, 3'600},
                                     std::tuple{"keepalives_idle_seconds", &pg.keepalives_idle_seconds, 1, 3'600},
                                     std::tuple{"keepalives_interval_seconds", &pg.keepalives_interval_seconds, 1, 3'600},
                                     std::tuple{"keepalives_count", &pg.keepalives_count, 1, 100},
                                     std::tuple{"statement_timeout_ms", &pg.statement_timeout_ms, 0, 86'400'000}}) {
      if (const auto* f = sec->get(key)) {
        if (auto v = int_value(*f, std::string("postgres.") + key, lo, hi)) *slot = static_cast<int>(*v);
      }
    }
  }

  void parse_targets(const Fields& top, std::vector<TargetConfig>& targets) {
    const auto* f = top.get("targets");
    if (!f) {
      if (component_ == Component::checker) required(&top, root_mark_, "targets", "targets");
      return;
    }
    if (!f->value.IsSequence()) {
      error_at(*f, "targets", "expected a list of targets, got " + kind_name(f->value));
      return;
    }
    std::unordered_map<std::string, int> names;  // name -> line
    std::unordered_map<std::string, std::shared_ptr<const Regex>> compiled;  // one compile per pattern
    targets.reserve(f->value.size());
    for (std::size_t i = 0; i < f->value.size(); ++i) {
      const Node node = f->value[i];
      const std::string path = "targets[" + std::to_string(i) + "]";
      if (!node.IsMap()) {
        add_error(node.Mark().is_null() ? f->key.Mark() : node.Mark(), path,
                  "expected a mapping with name, target and check_interval_seconds, got " + kind_name(node));
        continue;
      }
      TargetConfig t;
      if (parse_target(node, path, t, names, compiled)) targets.push_back(std::move(t));
    }
  }

  bool parse_target(const Node& node, const std::string& path, TargetConfig& t,
                    std::unordered_map<std::string, int>& names,
                    std::unordered_map<std::string, std::shared_ptr<const Regex>>& compiled) {
    const auto before = errors_.size();
    const auto s = fields(node, path,
                          {"name", "target", "url", "check_interval_seconds", "timeout_seconds", "regexp", "method",
                           "headers", "body", "valid_status_codes", "follow_redirects", "max_redirects", "ip_family",
                           "tls_verify", "ca_file", "max_body_bytes"});
    const YAML::Mark mark = node.Mark();

    if (const auto* f = s.get("name")) {
      if (auto v = nonempty_string(*f, path + ".name")) {
        const bool ascii = std::all_of(v->begin(), v->end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return u >= 0x20 && u < 0x7f;
        });
        if (v->size() > kMaxNameLength) {
          error_at(*f, path + ".name", "longer than 128 characters (" + std::to_string(v->size()) + ")");
        } else if (!ascii) {
          error_at(*f, path + ".name", "must be printable ASCII (it is the Kafka key and a label): " + show(*v));
        } else if (auto [pos, inserted] = names.emplace(*v, where(*f).line + 1); !inserted) {
          error_at(*f, path + ".name",
                   "duplicate target name " + show(*v) + " (first at line " + std::to_string(pos->second) + ")");
        } else {
          t.name = *v;
        }
      }
    } else {
      required(&s, mark, "name", path + ".name");
    }

    const auto* target_f = s.get("target");
    const auto* url_f = s.get("url");
    if (target_f && url_f) {
      error_at(*url_f, path + ".url", "give either target or url (synonyms), not both");
    } else if (const auto* f = target_f ? target_f : url_f) {
      const auto key = path + (target_f ? ".target" : ".url");
      if (auto v = nonempty_string(*f, key)) {
        std::string why;
        if (auto parsed = parse_http_url(*v, &why)) {
          t.url = *v;
          t.parsed_url = std::move(*parsed);
        } else {
          error_at(*f, key, "not an http:// or https:// URL: " + why + ": " + show(*v));
        }
      }
    } else {
      add_error(s.get_even_null("target") ? s.get_even_null("target")->key.Mark()
                : s.get_even_null("url") ? s.get_even_null("url")->key.Mark()
                                         : mark,
                path + ".target", "required (the URL to probe; `url` is accepted too) but not given");
    }

    bool interval_ok = false;
    if (const auto* f = s.get("check_interval_seconds")) {
      if (auto v = seconds_value(*f, path + ".check_interval_seconds", kMaxIntervalSeconds)) {
        t.interval = *v;
        interval_ok = true;
      }
    } else {
      required(&s, mark, "check_interval_seconds", path + ".check_interval_seconds");
    }
    if (const auto* f = s.get("timeout_seconds")) {
      if (auto v = seconds_value(*f, path + ".timeout_seconds", kMaxIntervalSeconds)) {
        if (interval_ok && *v > t.interval) {
          error_at(*f, path + ".timeout_seconds",
                   "must not exceed check_interval_seconds (" +
                       fmt_seconds(t.interval) + "), got " + fmt_seconds(*v));
        } else {
          t.timeout = *v;
        }
      }
    } else if (interval_ok) {
      t.timeout = std::min<nanoseconds>(seconds{10}, t.interval);
    }

    if (const auto* f = s.get("regexp")) {
      if (auto v = string_value(*f, path + ".regexp"); v && !v->empty()) {
        if (auto it = compiled.find(*v); it != compiled.end()) {
          t.regexp_source = *v;
          t.regexp = it->second;
        } else {
          auto r = Regex::compile(*v);
          if (auto* e = std::get_if<Regex::CompileError>(&r)) {
            error_at(*f, path + ".regexp",
                     "PCRE2 refuses " + show(*v) + ": " + e->message + " at offset " + std::to_string(e->offset));
          } else {
            t.regexp_source = *v;
            t.regexp = std::get<std::shared_ptr<const Regex>>(r);
            compiled.emplace(*v, t.regexp);
          }
        }
      }
    }
    if (const auto* f = s.get("method")) {
      if (auto v = choice(*f, path + ".method", {"get", "head", "post"})) {
        t.method = *v == "post" ? HttpMethod::post : *v == "head" ? HttpMethod::head : HttpMethod::get;
      }
    }
    if (const auto* f = s.get("headers")) parse_headers(*f, path + ".headers", t);
    if (const auto* f = s.get("body")) {
      if (auto v = string_value(*f, path + ".body")) {
        if (t.method != HttpMethod::post && !v->empty()) {
          error_at(*f, path + ".body", "a body is sent only with method POST");
        } else {
          t.body = *v;
        }
      }
    }
    if (const auto* f = s.get("valid_status_codes")) parse_status_codes(*f, path + ".valid_status_codes", t);
    if (const auto* f = s.get("follow_redirects")) {
      if (auto v = bool_value(*f, path + ".follow_redirects")) t.follow_redirects = *v;
    }
    if (const auto* f = s.get("max_redirects")) {
      if (auto v = int_value(*f, path + ".max_redirects", 0, 100)) t.max_redirects = static_cast<int>(*v);
    }
    if (const auto* f = s.get("ip_family")) {
      if (auto v = choice(*f, path + ".ip_family", {"auto", "ipv4", "ipv6"})) {
        t.ip_family = *v == "ipv4" ? IpFamily::v4 : *v == "ipv6" ? IpFamily::v6 : IpFamily::any;
      }
    }
    if (const auto* f = s.get("tls_verify")) {
      if (auto v = bool_value(*f, path + ".tls_verify")) t.tls_verify = *v;
    }
    if (const auto* f = s.get("ca_file")) {
      if (auto v = nonempty_string(*f, path + ".ca_file")) {
        if (auto resolved = existing_file(f, {}, path + ".ca_file", *v)) t.ca_file = *resolved;
      }
    }
    if (const auto* f = s.get("max_body_bytes")) {
      if (auto v = int_value(*f, path + ".max_body_bytes", 0, static_cast<std::int64_t>(kMaxBodyBytesLimit))) {
        t.max_body_bytes = static_cast<std::size_t>(*v);
      }
    }
    return errors_.size() == before;
  }

  static std::string fmt_seconds(nanoseconds d) {
    std::array<char, 32> buf{};
    const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), duration<double>(d).count());
    return std::string(buf.data(), r.ptr) + " s";
  }

  void parse_headers(const Field& f, const std::string& path, TargetConfig& t) {
    if (!f.value.IsMap()) {
      error_at(f, path, "expected a mapping of header names to values, got " + kind_name(f.value));
      return;
    }
    std::map<std::string, int, std::less<>> seen;
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      const Field item{f.value.key(i), f.value.value(i)};
      if (!item.key.IsScalar()) {
        add_error(item.key.Mark(), path, "a header name must be a string");
        continue;
      }
      const std::string name = item.key.Scalar();
      const std::string key = path + "." + name;
      const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
      });
      if (!token) {
        add_error(item.key.Mark(), key, "not a valid HTTP header name: " + show(name));
        continue;
      }
      const auto lname = ascii_lower(name);
      if (lname == "content-length" || lname == "transfer-encoding" || lname == "connection") {
        add_error(item.key.Mark(), key, "set by the checker itself; it cannot be configured");
        continue;
      }
      if (auto [pos, inserted] = seen.emplace(lname, item.key.Mark().line + 1); !inserted) {
        add_error(item.key.Mark(), key, "duplicate header (first given at line " + std::to_string(pos->second) + ")");
        continue;
      }
      if (item.value.IsNull()) {
        t.headers.emplace_back(name, "");
        continue;
      }
      auto value = scalar(item, key, "a string");
      if (!value) continue;
      if (value->find_first_of("\r\n") != std::string::npos || value->find('\0') != std::string::npos) {
        error_at(item, key, "a header value must not contain CR, LF or NUL");
        continue;
      }
      if (is_secret_header(name)) register_secret(*value);
      t.headers.emplace_back(name, *value);
    }
  }

  void parse_status_codes(const Field& f, const std::string& path, TargetConfig& t) {
    if (!f.value.IsSequence()) {
      error_at(f, path, "expected a list of status codes and ranges like [200, \"300-399\"], got " + kind_name(f.value));
      return;
    }
    if (f.value.size() == 0) {
      error_at(f, path, "must not be empty (leave it out for the default 200-299)");
      return;
    }
    std::vector<StatusRange> ranges;
    bool ok = true;
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      const Field item{f.key, f.value[i]};
      const auto key = path + "[" + std::to_string(i) + "]";
      auto v = scalar(item, key, "a status code or a range like 200-299");
      if (!v) {
        ok = false;
        continue;
      }
      auto parse_code = [](std::string_view s) -> std::optional<int> {
        while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
        while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
        int code = 0;
        const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), code);
        if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || code < 100 || code > 599) return std::nullopt;
        return code;
      };
      StatusRange r;
      const auto dash = v->find('-');
      std::optional<int> lo = parse_code(std::string_view(*v).substr(0, dash));
      std::optional<int> hi = dash == std::string::npos ? lo : parse_code(std::string_view(*v).substr(dash + 1));
      if (!lo || !hi || *lo > *hi) {
        error_at(item, key, "expected a status code (100-599) or a range like \"200-299\", got " + show(*v));
        ok = false;
        continue;
      }
      ranges.push_back({*lo, *hi});
    }
    if (ok) t.valid_status_codes = std::move(ranges);
  }

  void parse_checker(const Fields& top, CheckerSection& c) {
    auto sec = section(top, "checker", "checker",
                       {"threads", "max_in_flight", "metrics_listen", "instance_id", "per_target_metrics",
                        "max_body_memory_bytes", "dns"});
    if (sec) {
      if (const auto* f = sec->get("threads")) {
        if (auto v = int_value(*f, "checker.threads", 0, 1024)) c.threads = static_cast<unsigned>(*v);
      }
      if (const auto* f = sec->get("max_in_flight")) {
        if (auto v = int_value(*f, "checker.max_in_flight", 1, 1'000'000)) c.max_in_flight = static_cast<std::size_t>(*v);
      }
      if (const auto* f = sec->get("metrics_listen")) listen_address(*f, "checker.metrics_listen", c.metrics_listen);
      if (const auto* f = sec->get("instance_id")) {
        if (auto v = nonempty_string(*f, "checker.instance_id")) {
          if (v->size() > 255) error_at(*f, "checker.instance_id", "longer than 255 characters");
          else c.instance_id = *v;
        }
      }
      if (const auto* f = sec->get("per_target_metrics")) {
        if (auto v = bool_value(*f, "checker.per_target_metrics")) c.per_target_metrics = *v;
      }
      if (const auto* f = sec->get("max_body_memory_bytes")) {
        if (auto v = int_value(*f, "checker.max_body_memory_bytes", 1 << 20, std::int64_t{1} << 40)) {
          c.max_body_memory_bytes = static_cast<std::size_t>(*v);
        }
      }
      parse_dns(*sec, c.dns);
    }
    if (c.threads == 0) c.threads = std::max(1u, std::thread::hardware_concurrency());
    if (c.instance_id.empty()) c.instance_id = host_name();
  }

  void parse_dns(const Fields& checker, CheckerDns& d) {
    auto sec = section(checker, "dns", "checker.dns",
                       {"cache", "max_ttl_seconds", "negative_ttl_seconds", "servers", "timeout_ms", "attempts"});
    if (!sec) return;
    if (const auto* f = sec->get("cache")) {
      if (auto v = bool_value(*f, "checker.dns.cache")) d.cache = *v;
    }
    if (const auto* f = sec->get("max_ttl_seconds")) {
      if (auto v = int_value(*f, "checker.dns.max_ttl_seconds", 0, 86'400)) d.max_ttl_seconds = static_cast<int>(*v);
    }
    if (const auto* f = sec->get("negative_ttl_seconds")) {
      if (auto v = int_value(*f, "checker.dns.negative_ttl_seconds", 0, 3'600)) {
        d.negative_ttl_seconds = static_cast<int>(*v);
      }
    }
    if (const auto* f = sec->get("timeout_ms")) {
      if (auto v = int_value(*f, "checker.dns.timeout_ms", 1, 60'000)) d.timeout_ms = static_cast<int>(*v);
    }
    if (const auto* f = sec->get("attempts")) {
      if (auto v = int_value(*f, "checker.dns.attempts", 1, 10)) d.attempts = static_cast<int>(*v);
    }
    if (const auto* f = sec->get("servers")) {
      if (!f->value.IsSequence()) {
        error_at(*f, "checker.dns.servers",
                 "expected a list of name server addresses like [\"10.0.0.2\", \"[::1]:5353\"], got " +
                     kind_name(f->value));
        return;
      }
      for (std::size_t i = 0; i < f->value.size(); ++i) {
        const Field item{f->key, f->value[i]};
        const auto key = "checker.dns.servers[" + std::to_string(i) + "]";
        auto v = nonempty_string(item, key);
        if (!v) continue;
        if (!name_server_address(*v)) {
          error_at(item, key,
                   "expected an IP address with an optional port (10.0.0.2, 10.0.0.2:5353, [::1]:5353), got " +
                       show(*v));
          continue;
        }
        d.servers.push_back(*v);
      }
    }
  }

  void parse_writer(const Fields& top, WriterSection& w) {
    auto sec = section(top, "writer", "writer",
                       {"group_id", "batch_max_rows", "batch_max_ms", "retention_days", "metrics_listen",
                        "instance_id"});
    if (!sec) {
      if (w.instance_id.empty()) w.instance_id = host_name();
      return;
    }
    if (const auto* f = sec->get("group_id")) {
      if (auto v = nonempty_string(*f, "writer.group_id")) w.group_id = *v;
    }
    if (const auto* f = sec->get("instance_id")) {
      if (auto v = nonempty_string(*f, "writer.instance_id")) {
        // Kafka's rule for group.instance.id (a host name always passes).
        const bool legal = std::all_of(v->begin(), v->end(), [](unsigned char c) {
          return std::isalnum(c) || c == '.' || c == '_' || c == '-';
        });
        if (v->size() > 249) error_at(*f, "writer.instance_id", "longer than 249 characters");
        else if (!legal) error_at(*f, "writer.instance_id", "only ASCII letters, digits, '.', '_' and '-' are allowed");
        else w.instance_id = *v;
      }
    }
    if (w.instance_id.empty()) w.instance_id = host_name();
    if (const auto* f = sec->get("batch_max_rows")) {
      if (auto v = int_value(*f, "writer.batch_max_rows", 1, 1'000'000)) w.batch_max_rows = static_cast<std::size_t>(*v);
    }
    if (const auto* f = sec->get("batch_max_ms")) {
      if (auto v = int_value(*f, "writer.batch_max_ms", 1, 60'000)) w.batch_max_ms = milliseconds{*v};
    }
    if (const auto* f = sec->get("retention_days")) {
      if (auto v = int_value(*f, "writer.retention_days", 1, 36'500)) w.retention_days = static_cast<int>(*v);
    }
    if (const auto* f = sec->get("metrics_listen")) listen_address(*f, "writer.metrics_listen", w.metrics_listen);
  }

  fs::path file_;
  Component component_;
  const EnvLookup& env_;
  YAML::Mark root_mark_;
  std::vector<ConfigError> errors_;
};

}  // namespace

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

bool TargetConfig::same_probe(const TargetConfig& o) const noexcept {
  return name == o.name && url == o.url && parsed_url == o.parsed_url && interval == o.interval &&
         timeout == o.timeout && regexp_source == o.regexp_source && method == o.method && headers == o.headers &&
         body == o.body && valid_status_codes == o.valid_status_codes && follow_redirects == o.follow_redirects &&
         max_redirects == o.max_redirects && ip_family == o.ip_family && tls_verify == o.tls_verify &&
         ca_file == o.ca_file && max_body_bytes == o.max_body_bytes;
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

ConfigLoad parse_config(std::string_view yaml, const std::filesystem::path& file_name, Component component,
                        const EnvLookup& env) {
  return Loader(file_name, component, env).run(yaml);
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
  return std::filesystem::path("config") / "config.yml";
}

}  // namespace webmon
