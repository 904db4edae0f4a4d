// The machinery behind config.cpp's key tables: a Reader that turns YAML nodes into typed values
// (with ${VAR} substitution, bounds and file:line:col errors, all collected), and the Row/Table
// templates that declare one key per row. A row is built from a member pointer, so that parsing,
// the default, the comparison on reload and the documentation all come from one declaration.
// Private to src/common: the public view of the tables is config_keys.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "webmon/common/config.hpp"
#include "webmon/common/config_keys.hpp"
#include "webmon/common/yaml_tree.hpp"

namespace webmon::config_detail {

namespace fs = std::filesystem;
using yaml::Node;

std::string show(std::string_view s);  // quoted, control characters escaped
std::string join(const std::vector<std::string_view>& items);
std::vector<std::string_view> split_list(std::string_view comma_separated);

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
    const auto* f = get_even_null(name);
    return f && !f->value.IsNull() ? f : nullptr;
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

class Reader {
 public:
  Reader(fs::path file, Component component, const EnvLookup& env)
      : file_(std::move(file)), component_(component), env_(env) {}

  Component component() const noexcept { return component_; }
  bool checker() const noexcept { return component_ == Component::checker; }
  const fs::path& file() const noexcept { return file_; }
  std::string component_name() const;
  std::string required_sections() const;  // for an empty file

  // Errors, each at a position and a key path; sorted by position when taken.
  void add_error(const YAML::Mark& mark, std::string key, std::string message);
  // Where a value's error points: at the value, or at its key when the value is empty (yaml-cpp
  // places an empty value on the next line).
  static YAML::Mark where(const Field& f);
  void error_at(const Field& f, std::string key, std::string message) { add_error(where(f), std::move(key), std::move(message)); }
  std::size_t error_count() const noexcept { return errors_.size(); }
  std::vector<ConfigError> take_errors();

  static std::string child(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  // Checks that `node` is a mapping whose keys are all in `allowed`, each given once; YAML merge
  // keys (`<<: *defaults`) count where the mapping does not set the key itself.
  Fields fields(const Node& node, const std::string& path, const std::vector<std::string_view>& allowed);

  // Scalars. ${VAR} is substituted in every scalar value before its type is checked.
  std::optional<std::string> scalar(const Field& f, const std::string& path, std::string_view expected);
  std::optional<std::string> string_value(const Field& f, const std::string& path) { return scalar(f, path, "a string"); }
  std::optional<std::string> nonempty_string(const Field& f, const std::string& path);
  // true/yes/on/y and false/no/off/n, in any case (what yaml-cpp itself takes for a boolean).
  std::optional<bool> bool_value(const Field& f, const std::string& path);
  std::optional<std::int64_t> int_value(const Field& f, const std::string& path, std::int64_t lo, std::int64_t hi);
  // A number of seconds (integer or decimal), > 0 (at least 1 ms) and at most `max`.
  std::optional<std::chrono::nanoseconds> seconds_value(const Field& f, const std::string& path, double max);
  // The index of the value (compared in lower case) in `allowed`.
  std::optional<std::size_t> choice(const Field& f, const std::string& path, const std::vector<std::string_view>& allowed);
  // A file that must exist. A relative path is looked up in the working directory first, then in
  // the config file's directory; the result is absolute so that a later chdir cannot change it.
  std::optional<std::string> existing_file(const Field* f, const YAML::Mark& mark, const std::string& path,
                                           const std::string& value);
  // The same lookup without an error: the absolute path when the file is there.
  std::optional<std::string> find_file(const std::string& value) const;
  // host:port, [v6]:port or :port (all addresses); port 0 means "any free port" (tests use it).
  std::optional<std::string> listen_address(const Field& f, const std::string& path);

  // State of one load that the targets' rows share.
  std::unordered_map<std::string, int> target_names;                       // name -> line
  std::unordered_map<std::string, std::shared_ptr<const Regex>> regexps;  // one compile per pattern
  std::vector<std::string> notices;

 private:
  std::optional<std::string> substitute(const Field& f, const std::string& path, const std::string& text);

  fs::path file_;
  Component component_;
  const EnvLookup& env_;
  std::vector<ConfigError> errors_;
};

// ---------------------------------------------------------------------------------------------
// Rows and tables

enum class Kind : std::uint8_t { string, nonempty, boolean, integer, seconds, choice, file, listen, section, custom };

// What a row says about its key besides how to parse it: Doc(name, doc, reload, used_by, example)
// and, where needed, .synonyms("a,b"), .required_by(mask), .default_text(...), .type_text(...),
// .schema(...), .null_is_empty(true).
struct Doc {
  constexpr Doc(std::string_view name_, std::string_view doc_, Reload reload_, unsigned used_by_,
                std::string_view example_ = {})
      : name(name_), doc(doc_), reload(reload_), used_by(used_by_), example(example_) {}
  constexpr Doc synonyms(std::string_view v) const { return with(&Doc::synonyms_, v); }
  constexpr Doc required_by(unsigned v) const { return with(&Doc::required_by_, v); }
  constexpr Doc default_text(std::string_view v) const { return with(&Doc::default_text_, v); }
  constexpr Doc type_text(std::string_view v) const { return with(&Doc::type_text_, v); }
  constexpr Doc schema(std::string_view v) const { return with(&Doc::schema_, v); }
  constexpr Doc null_is_empty(bool v) const { return with(&Doc::null_is_empty_, v); }

  std::string_view name;
  std::string_view doc;                 // one line
  Reload reload;
  unsigned used_by;
  std::string_view example;             // a valid YAML value other than the default
  std::string_view synonyms_;           // comma-separated other names
  unsigned required_by_ = 0;
  std::string_view default_text_;       // when the struct's default is not what a user reads
  std::string_view type_text_;          // custom rows: the type as the docs show it
  std::string_view schema_;             // custom rows: the value's JSON Schema
  bool null_is_empty_ = false;          // `key:` with no value counts as given (an empty list)

 private:
  template <class T>
  constexpr Doc with(T Doc::*member, T v) const {
    Doc d = *this;
    d.*member = v;
    return d;
  }
};

template <class S>
struct Row;
template <class S>
struct Table {
  std::vector<Row<S>> rows;
  // The section's cross-key rules, run after its rows (also when the section is absent).
  void (*post)(Reader&, const Fields&, const YAML::Mark& where, const std::string& path, S&) = nullptr;
};

template <class S>
struct Row {
  Doc d{{}, {}, Reload::restart, 0};
  Kind kind = Kind::custom;
  std::int64_t lo = 0;
  std::int64_t hi = 0;
  std::string_view choices;  // comma-separated, in the order of the enum they map to
  // `f` is null when the key is absent or null: only sections do anything then.
  void (*parse)(Reader&, const Field* f, const YAML::Mark& where, const std::string& path, S&, const Row&) = nullptr;
  void (*diff)(const S&, const S&, const std::string& path, const Row&, std::vector<KeyChange>&) = nullptr;
  void (*info)(const Row&, const std::string& path, std::vector<KeyInfo>&) = nullptr;
  bool (*is_default)(const S&) = nullptr;
};

template <class M>
struct member_traits;
template <class C, class V>
struct member_traits<V C::*> {
  using owner = C;
  using value = V;
};
template <auto M>
using owner_t = typename member_traits<decltype(M)>::owner;
template <auto M>
using value_t = typename member_traits<decltype(M)>::value;

KeyInfo base_info(const Doc& d, Kind kind, std::int64_t lo, std::int64_t hi, std::string_view choices,
                  const std::string& path);

// The default as config.yml would spell it.
template <class V>
std::string default_text(const V& v, std::string_view choices) {
  if constexpr (std::is_same_v<V, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_same_v<V, std::string>) {
    return v.empty() ? "(none)" : v;
  } else if constexpr (std::is_same_v<V, std::optional<int>>) {
    return v ? std::to_string(*v) : "(none)";
  } else if constexpr (std::is_same_v<V, std::chrono::milliseconds>) {
    return std::to_string(v.count());
  } else if constexpr (std::is_same_v<V, std::chrono::nanoseconds>) {
    return v.count() == 0 ? "(none)" : std::to_string(std::chrono::duration<double>(v).count());
  } else if constexpr (std::is_enum_v<V>) {
    return std::string(split_list(choices).at(static_cast<std::size_t>(v)));
  } else if constexpr (std::is_arithmetic_v<V>) {
    return std::to_string(v);
  } else {
    return v.empty() ? "(none)" : "";
  }
}

// The parts every leaf row shares: comparison, default and docs from the member.
template <auto M>
Row<owner_t<M>> leaf(Doc d, Kind kind) {
  using S = owner_t<M>;
  Row<S> r;
  r.d = d;
  r.kind = kind;
  r.diff = [](const S& a, const S& b, const std::string& path, const Row<S>& row, std::vector<KeyChange>& out) {
    if (!(a.*M == b.*M)) out.push_back({path, row.d.reload, row.d.used_by});
  };
  r.info = [](const Row<S>& row, const std::string& path, std::vector<KeyInfo>& out) {
    auto k = base_info(row.d, row.kind, row.lo, row.hi, row.choices, path);
    if (row.d.default_text_.empty()) k.default_value = default_text(S{}.*M, row.choices);
    out.push_back(std::move(k));
  };
  r.is_default = [](const S& s) { return s.*M == S{}.*M; };
  return r;
}

template <auto M>
Row<owner_t<M>> integer(Doc d, std::int64_t lo, std::int64_t hi) {
  using S = owner_t<M>;
  using V = value_t<M>;
  auto r = leaf<M>(d, Kind::integer);
  r.lo = lo;
  r.hi = hi;
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, S& s, const Row<S>& row) {
    if (!f) return;
    const auto v = rd.int_value(*f, path, row.lo, row.hi);
    if (!v) return;
    if constexpr (std::is_same_v<V, std::chrono::milliseconds>) {
      s.*M = std::chrono::milliseconds{*v};
    } else if constexpr (std::is_same_v<V, std::optional<int>>) {
      s.*M = static_cast<int>(*v);
    } else {
      s.*M = static_cast<V>(*v);
    }
  };
  return r;
}

template <auto M>
Row<owner_t<M>> seconds(Doc d, std::int64_t max) {
  using S = owner_t<M>;
  auto r = leaf<M>(d, Kind::seconds);
  r.hi = max;
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, S& s, const Row<S>& row) {
    if (!f) return;
    if (auto v = rd.seconds_value(*f, path, static_cast<double>(row.hi))) s.*M = *v;
  };
  return r;
}

template <auto M>
Row<owner_t<M>> boolean(Doc d) {
  using S = owner_t<M>;
  auto r = leaf<M>(d, Kind::boolean);
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, S& s, const Row<S>&) {
    if (!f) return;
    if (auto v = rd.bool_value(*f, path)) s.*M = *v;
  };
  return r;
}

template <auto M>
Row<owner_t<M>> text(Doc d, bool nonempty = false) {
  using S = owner_t<M>;
  auto r = leaf<M>(d, nonempty ? Kind::nonempty : Kind::string);
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, S& s, const Row<S>& row) {
    if (!f) return;
    if (auto v = row.kind == Kind::nonempty ? rd.nonempty_string(*f, path) : rd.string_value(*f, path)) s.*M = *v;
  };
  return r;
}

// One of `choices`: stored as the (lower-case) text in a string, or as the enum value of its index.
template <auto M>
Row<owner_t<M>> choice(Doc d, std::string_view choices) {
  using S = owner_t<M>;
  using V = value_t<M>;
  auto r = leaf<M>(d, Kind::choice);
  r.choices = choices;
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, S& s, const Row<S>& row) {
    if (!f) return;
    const auto allowed = split_list(row.choices);
    const auto i = rd.choice(*f, path, allowed);
    if (!i) return;
    if constexpr (std::is_enum_v<V>) {
      s.*M = static_cast<V>(*i);
    } else {
      s.*M = std::string(allowed[*i]);
    }
  };
  return r;
}

template <auto M>
Row<owner_t<M>> file(Doc d) {
  using S = owner_t<M>;
  auto r = leaf<M>(d, Kind::file);
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, S& s, const Row<S>&) {
    if (!f) return;
    if (auto v = rd.nonempty_string(*f, path)) {
      if (auto resolved = rd.existing_file(f, {}, path, *v)) s.*M = *resolved;
    }
  };
  return r;
}

template <auto M>
Row<owner_t<M>> listen(Doc d) {
  using S = owner_t<M>;
  auto r = leaf<M>(d, Kind::listen);
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, S& s, const Row<S>&) {
    if (!f) return;
    if (auto v = rd.listen_address(*f, path)) s.*M = *v;
  };
  return r;
}

template <class S>
using ParseFn = void (*)(Reader&, const Field&, const std::string& path, S&);

// A key whose value needs its own code (a list, a mapping, a value with rules of its own); the
// member still gives the default, the comparison and the docs. The parse function is passed as a
// template argument so that the row stays a plain function pointer.
template <auto M, auto Parse>
Row<owner_t<M>> custom(Doc d) {
  using S = owner_t<M>;
  auto r = leaf<M>(d, Kind::custom);
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, S& s, const Row<S>&) {
    if (f) Parse(rd, *f, path, s);
  };
  return r;
}

// ---------------------------------------------------------------------------------------------
// Reading a mapping with a table

template <class S>
std::vector<std::string_view> allowed_keys(const Table<S>& t) {
  std::vector<std::string_view> out;
  for (const auto& row : t.rows) {
    out.push_back(row.d.name);
    for (const auto s : split_list(row.d.synonyms_)) out.push_back(s);
  }
  return out;
}

inline unsigned component_bit(const Reader& r) {
  switch (r.component()) {
    case Component::checker: return kChecker;
    case Component::writer: return kWriter;
    case Component::admin: return kAdmin;
  }
  return 0;
}

// Every row of `t` from `fields` (empty when the section is absent), then the required keys, then
// the section's post-check. `where` is the position of errors about missing keys.
template <class S>
void read_rows(Reader& r, const Fields& fields, const YAML::Mark& where, const std::string& path, const Table<S>& t,
               S& out) {
  for (const auto& row : t.rows) {
    const Field* given = nullptr;
    std::string_view as = row.d.name;
    std::vector<std::string_view> names{row.d.name};
    for (const auto s : split_list(row.d.synonyms_)) names.push_back(s);
    for (const auto name : names) {
      const Field* f = fields.get_even_null(name);
      if (!f) continue;
      if (given && !given->value.IsNull() && !f->value.IsNull()) {
        r.error_at(*f, Reader::child(path, name), "give either " + std::string(as) + " or " + std::string(name) +
                                                     " (synonyms), not both");
        continue;
      }
      if (!given || given->value.IsNull()) {
        given = f;
        as = name;
      }
    }
    const Field* value = given && !given->value.IsNull() ? given : nullptr;
    if (value || row.kind == Kind::section) {
      row.parse(r, value, given ? given->key.Mark() : where, Reader::child(path, as), out, row);
    }
    const bool counts_as_given = value || (given && row.d.null_is_empty_);
    if ((row.d.required_by_ & component_bit(r)) && !counts_as_given && row.is_default(out)) {
      std::string message = "required by " + r.component_name() + " but not given";
      if (!row.d.synonyms_.empty()) message += " (`" + std::string(row.d.synonyms_) + "` is accepted too)";
      r.add_error(given ? given->key.Mark() : where, Reader::child(path, row.d.name), std::move(message));
    }
  }
  if (t.post) t.post(r, fields, where, path, out);
}

template <class S>
void read_map(Reader& r, const Node& node, const YAML::Mark& where, const std::string& path, const Table<S>& t, S& out) {
  read_rows(r, r.fields(node, path, allowed_keys(t)), where, path, t, out);
}

template <class S>
void diff_rows(const Table<S>& t, const S& a, const S& b, const std::string& path, std::vector<KeyChange>& out) {
  for (const auto& row : t.rows) row.diff(a, b, Reader::child(path, row.d.name), row, out);
}

template <class S>
void info_rows(const Table<S>& t, const std::string& path, std::vector<KeyInfo>& out) {
  for (const auto& row : t.rows) row.info(row, Reader::child(path, row.d.name), out);
}

// A mapping of further keys, read with its own table into the member.
template <auto M, const Table<value_t<M>>& (*Sub)()>
Row<owner_t<M>> section(Doc d) {
  using S = owner_t<M>;
  Row<S> r;
  r.d = d;
  r.kind = Kind::section;
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark& where, const std::string& path, S& s, const Row<S>&) {
    if (f && !f->value.IsMap()) {
      rd.error_at(*f, path, "expected a mapping, got " + yaml::kind_name(f->value));
      return;
    }
    if (f) read_map(rd, f->value, where, path, Sub(), s.*M);
    else read_rows(rd, Fields{}, where, path, Sub(), s.*M);
  };
  r.diff = [](const S& a, const S& b, const std::string& path, const Row<S>&, std::vector<KeyChange>& out) {
    diff_rows(Sub(), a.*M, b.*M, path, out);
  };
  r.info = [](const Row<S>& row, const std::string& path, std::vector<KeyInfo>& out) {
    auto k = base_info(row.d, row.kind, 0, 0, {}, path);
    k.section = true;
    out.push_back(std::move(k));
    info_rows(Sub(), path, out);
  };
  r.is_default = [](const S&) { return false; };
  return r;
}

}  // namespace webmon::config_detail
