// The key tables as a user meets them: the reference in docs/configuration.md is the table's own
// output, and every key either takes effect on SIGHUP or is logged as needing a restart.
#include "webmon/common/config_keys.hpp"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/stack.hpp"

namespace webmon {
namespace {

using ::testing::HasSubstr;

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string all(const ConfigLoad& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string() + "\n";
  return s;
}

TEST(ConfigKeys, DocsReferenceIsTheTablesOutput) {
  const std::string doc = read(std::filesystem::path(WEBMON_SOURCE_DIR) / "docs" / "configuration.md");
  const std::string begin = "<!-- BEGIN config-reference: the output of `webmon config-schema --format markdown` -->\n";
  const std::string end = "<!-- END config-reference -->";
  const auto b = doc.find(begin);
  const auto e = doc.find(end);
  ASSERT_NE(b, std::string::npos) << "docs/configuration.md lost its BEGIN marker";
  ASSERT_NE(e, std::string::npos) << "docs/configuration.md lost its END marker";
  const std::string in_doc = doc.substr(b + begin.size(), e - b - begin.size());
  EXPECT_EQ(in_doc, config_reference_markdown())
      << "docs/configuration.md differs from the key tables: paste the output of "
         "`webmon config-schema --format markdown` between the markers";
}

TEST(ConfigKeys, EveryKeyHasADocLineAndAnExample) {
  std::set<std::string> paths;
  for (const auto& k : config_keys()) {
    EXPECT_TRUE(paths.insert(k.path).second) << "twice: " << k.path;
    EXPECT_FALSE(k.doc.empty()) << k.path;
    EXPECT_FALSE(k.type.empty()) << k.path;
    EXPECT_FALSE(k.schema.empty()) << k.path;
    if (!k.section) {
      EXPECT_FALSE(k.example.empty()) << k.path;
      EXPECT_FALSE(k.default_value.empty()) << k.path;
    }
  }
  // The sections and a few keys of each, so that a table cannot silently lose its rows.
  for (const char* p : {"kafka", "kafka.bootstrap_servers", "kafka.ssl.ca_file", "kafka.sasl.password", "postgres.uri",
                        "targets", "targets[].name", "targets[].max_body_bytes", "checker.dns.servers",
                        "writer.instance_id", "log_format"}) {
    EXPECT_TRUE(paths.count(p)) << p;
  }
}

// ---------------------------------------------------------------------------------------------
// A config written from path -> YAML value, so that one key at a time can be changed.

using Values = std::map<std::string, std::string>;

std::string to_yaml(const Values& values) {
  // path "a.b.c" -> nested mappings; "targets[]." -> the one target of the list.
  std::map<std::string, Values> sections;  // top-level name -> rest
  std::string out;
  for (const auto& [path, value] : values) {
    const auto dot = path.find('.');
    if (dot == std::string::npos) out += path + ": " + value + "\n";
    else sections[path.substr(0, dot)][path.substr(dot + 1)] = value;
  }
  for (const auto& [name, rest] : sections) {
    const bool list = name.ends_with("[]");
    out += (list ? name.substr(0, name.size() - 2) : name) + ":\n";
    std::map<std::string, Values> sub;
    bool first = true;
    for (const auto& [key, value] : rest) {
      const auto dot = key.find('.');
      if (dot != std::string::npos) {
        sub[key.substr(0, dot)][key.substr(dot + 1)] = value;
        continue;
      }
      out += std::string(list && first ? "  - " : "    ").substr(list ? 0 : 2) + key + ": " + value + "\n";
      first = false;
    }
    for (const auto& [s, kv] : sub) {
      out += "  " + s + ":\n";
      for (const auto& [key, value] : kv) out += "    " + key + ": " + value + "\n";
    }
  }
  return out;
}

const Values kBase = {
    {"kafka.bootstrap_servers", "127.0.0.1:9092"},
    {"kafka.ssl.ca_file", "a.pem"},
    {"kafka.ssl.cert_file", "a.cert"},
    {"kafka.ssl.key_file", "a.key"},
    {"postgres.uri", "postgresql://webmon@127.0.0.1/webmon"},
    {"targets[].name", "a"},
    {"targets[].target", "http://127.0.0.1:8080/"},
    {"targets[].check_interval_seconds", "10"},
    {"targets[].method", "post"},
};

Config load_values(const test::TempDir& dir, const Values& values) {
  const auto file = dir.write("config.yml", to_yaml(values));
  auto r = load_config(file, Component::checker, [](std::string_view) { return std::nullopt; });
  EXPECT_TRUE(r.ok()) << all(r) << "\n" << to_yaml(values);
  return r.config.value_or(Config{});
}

unsigned bit(Component c) { return c == Component::checker ? kChecker : c == Component::writer ? kWriter : kAdmin; }

TEST(ConfigKeys, EveryKeyIsAppliedOnSighupOrLoggedAsNeedingARestart) {
  test::TempDir dir;
  for (const char* f : {"a.pem", "a.cert", "a.key", "ca.pem", "service.cert", "service.key"}) dir.write(f, "x");
  const Config base = load_values(dir, kBase);
  ASSERT_TRUE(changed_keys(base, load_values(dir, kBase)).empty());
  int tried = 0;
  for (const auto& key : config_keys()) {
    if (key.section) continue;
    SCOPED_TRACE(key.path + " = " + key.example);
    Values v = kBase;
    v[key.path] = key.example;
    const Config next = load_values(dir, v);
    const auto changes = changed_keys(base, next);
    ASSERT_EQ(changes.size(), 1u) << "changing one key must change exactly that key";
    EXPECT_EQ(changes[0].path, key.path);
    EXPECT_EQ(changes[0].reload, key.reload);
    for (const auto c : {Component::checker, Component::writer, Component::admin}) {
      const auto lines = reload_lines(changes, c);
      if (!(key.used_by & bit(c))) {  // a daemon says nothing about keys it does not read
        EXPECT_TRUE(lines.empty());
        continue;
      }
      if (c == Component::admin) continue;  // the CLI does not reload
      ASSERT_EQ(lines.size(), 1u);
      const bool restart = key.reload == Reload::restart;
      EXPECT_EQ(lines[0].needs_restart, restart);
      EXPECT_EQ(lines[0].text, "reload: " + key.path + " changed: " +
                                   (restart ? "needs a restart to take effect" : "applied"));
    }
    ++tried;
  }
  EXPECT_GT(tried, 50);
  // A target added or removed is a change of the list itself.
  Values two = kBase;
  const Config more = parse_config(to_yaml(two) + "  - name: b\n    target: http://h/\n    check_interval_seconds: 1\n",
                                   dir.path() / "config.yml", Component::checker)
                          .config.value_or(Config{});
  ASSERT_EQ(more.targets.size(), 2u);
  const auto changes = changed_keys(base, more);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].path, "targets");
  EXPECT_EQ(changes[0].reload, Reload::probe);
}

TEST(ConfigKeys, KeysOfOneDaemonAreNotLoggedByTheOther) {
  Config a;
  Config b;
  b.writer.batch_max_rows = 7;
  b.checker.dns.cache = false;
  const auto changes = changed_keys(a, b);
  ASSERT_EQ(changes.size(), 2u);
  const auto checker = reload_lines(changes, Component::checker);
  ASSERT_EQ(checker.size(), 1u);
  EXPECT_EQ(checker[0].text, "reload: checker.dns.cache changed: applied");
  const auto writer = reload_lines(changes, Component::writer);
  ASSERT_EQ(writer.size(), 1u);
  EXPECT_EQ(writer[0].text, "reload: writer.batch_max_rows changed: needs a restart to take effect");
  EXPECT_TRUE(writer[0].needs_restart);
}

// config/config.example.yml shows every key (given or commented out with its default).
TEST(ConfigKeys, ExampleConfigShowsEveryKey) {
  const std::string example = read(std::filesystem::path(WEBMON_SOURCE_DIR) / "config" / "config.example.yml");
  for (const auto& k : config_keys()) {
    const auto dot = k.path.rfind('.');
    const std::string name = dot == std::string::npos ? k.path : k.path.substr(dot + 1);
    const bool shown = example.find(" " + name + ":") != std::string::npos ||
                       example.find("\n" + name + ":") != std::string::npos;
    EXPECT_TRUE(shown) << k.path << " is not in config/config.example.yml";
  }
}

TEST(ConfigKeys, SynonymsAreAColumnOfTheTable) {
  std::map<std::string, std::vector<std::string>> synonyms;
  for (const auto& k : config_keys()) {
    if (!k.synonyms.empty()) synonyms[k.path] = k.synonyms;
  }
  EXPECT_EQ(synonyms["targets[].target"], std::vector<std::string>{"url"});
  EXPECT_EQ(synonyms["kafka.topic"], std::vector<std::string>{"metrics_topic"});
}

TEST(ConfigKeys, JsonSchemaIsJson) {
  const auto schema = config_json_schema();
  EXPECT_THAT(schema, HasSubstr("\"$schema\":\"https://json-schema.org/draft/2020-12/schema\""));
  EXPECT_THAT(schema, HasSubstr("\"bootstrap_servers\""));
  EXPECT_THAT(schema, HasSubstr("\"metrics_topic\""));
}

}  // namespace
}  // namespace webmon
