// The earlier tool's configs run unchanged: its example config (metrics_topic, SSL by its key files
// beside the config, no security_protocol), its test config (targets: with no value) and its
// WEBSITE_MONITOR_CONFIG_PATH, as a new user would bring them.
#include <cstdlib>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/stack.hpp"
#include "webmon/common/config.hpp"

namespace webmon {
namespace {

using ::testing::HasSubstr;

std::string all(const ConfigLoad& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string() + "\n";
  return s;
}

const EnvLookup kNoEnv = [](std::string_view) { return std::nullopt; };

// The earlier tool's layout: a config directory holding config.yml and kafka/ with the three
// files Aiven hands out; no security_protocol (it always used SSL) and metrics_topic.
constexpr std::string_view kEarlierExample =
    "kafka:\n"
    "  bootstrap_servers: \"kafka-example.aivencloud.com:12345\"\n"
    "  metrics_topic: website-metrics\n"
    "postgres:\n"
    "  uri: \"postgres://avnadmin:example@pg-example.aivencloud.com:12345/defaultdb?sslmode=require\"\n"
    "targets:\n"
    "  - name: example\n"
    "    target: https://example.com\n"
    "    check_interval_seconds: 10\n"
    "    regexp: \"Example Domain\"\n";

TEST(ConfigCompat, EarlierToolsExampleConfigRunsWithSslFromItsKeyFiles) {
  test::TempDir dir;
  const auto file = dir.write("config/config.yml", std::string(kEarlierExample));
  for (const char* f : {"ca.pem", "service.cert", "service.key"}) dir.write(std::string("config/kafka/") + f, "x");
  for (auto c : {Component::checker, Component::writer, Component::admin}) {
    const auto r = load_config(file, c, kNoEnv);
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& k = r.config->kafka;
    EXPECT_EQ(k.topic, "website-metrics");  // metrics_topic is a synonym of topic
    EXPECT_EQ(k.security_protocol, "ssl");
    EXPECT_EQ(k.ssl.ca_file, (dir.path() / "config/kafka/ca.pem").string());
    EXPECT_EQ(k.ssl.cert_file, (dir.path() / "config/kafka/service.cert").string());
    EXPECT_EQ(k.ssl.key_file, (dir.path() / "config/kafka/service.key").string());
    // Said once, by the daemon at start (start_daemon logs the notices).
    ASSERT_EQ(r.config->notices.size(), 1u);
    EXPECT_THAT(r.config->notices[0], HasSubstr("connecting with ssl"));
  }
}

TEST(ConfigCompat, WithoutAllThreeKeyFilesItStaysPlaintext) {
  test::TempDir dir;
  const auto file = dir.write("config/config.yml", std::string(kEarlierExample));
  dir.write("config/kafka/ca.pem", "x");
  dir.write("config/kafka/service.cert", "x");
  const auto r = load_config(file, Component::checker, kNoEnv);
  ASSERT_TRUE(r.ok()) << all(r);
  EXPECT_EQ(r.config->kafka.security_protocol, "plaintext");
  EXPECT_TRUE(r.config->kafka.ssl.ca_file.empty());
  EXPECT_TRUE(r.config->notices.empty());
}

TEST(ConfigCompat, TopicAndMetricsTopicAreOneKey) {
  const auto r = parse_config("kafka:\n  bootstrap_servers: h:1\n  topic: a\n  metrics_topic: b\ntargets: []\n", "t.yml",
                              Component::checker, kNoEnv);
  ASSERT_EQ(r.errors.size(), 1u) << all(r);
  EXPECT_EQ(r.errors[0].key, "kafka.metrics_topic");
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_THAT(r.errors[0].message, HasSubstr("give either topic or metrics_topic (synonyms), not both"));
  const auto bad = parse_config("kafka:\n  bootstrap_servers: h:1\n  metrics_topic: \"a b\"\ntargets: []\n", "t.yml",
                                Component::checker, kNoEnv);
  ASSERT_EQ(bad.errors.size(), 1u) << all(bad);
  EXPECT_EQ(bad.errors[0].key, "kafka.metrics_topic");  // the key as written
}

// Its test config: `targets:` with no value.
TEST(ConfigCompat, NullTargetsIsAnEmptyListForEveryBinary) {
  const std::string yaml =
      "kafka:\n  bootstrap_servers: \"localhost:9092\"\n  metrics_topic: test-metrics\n"
      "postgres:\n  uri: \"postgres://postgres:postgres@localhost:5432/postgres\"\n"
      "targets:\n";
  for (auto c : {Component::checker, Component::writer, Component::admin}) {
    const auto r = parse_config(yaml, "test_config.yml", c, kNoEnv);
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.config->targets.empty());
    EXPECT_EQ(r.config->kafka.topic, "test-metrics");
  }
  // Left out entirely, the checker still needs the key.
  const auto missing = parse_config("kafka: {bootstrap_servers: \"h:1\"}\n", "t.yml", Component::checker, kNoEnv);
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_EQ(missing.errors[0].key, "targets");
}

TEST(ConfigCompat, WebsiteMonitorConfigPathAfterTheFlagAndWebmonConfig) {
  ::unsetenv("WEBMON_CONFIG");
  ::setenv("WEBSITE_MONITOR_CONFIG_PATH", "/srv/monitor/config", 1);
  EXPECT_EQ(resolve_config_path(std::nullopt), "/srv/monitor/config/config.yml");
  EXPECT_EQ(resolve_config_path(std::string_view("/x/flag.yml")), "/x/flag.yml");
  ::setenv("WEBMON_CONFIG", "/etc/webmon/config.yml", 1);
  EXPECT_EQ(resolve_config_path(std::nullopt), "/etc/webmon/config.yml");
  ::unsetenv("WEBMON_CONFIG");
  ::unsetenv("WEBSITE_MONITOR_CONFIG_PATH");
  EXPECT_EQ(resolve_config_path(std::nullopt), "config/config.yml");
}

// Booleans as yaml-cpp reads them (documented in docs/configuration.md).
TEST(ConfigCompat, YamlBooleanSpellings) {
  for (const char* yes : {"true", "True", "yes", "on", "y", "Y"}) {
    const auto r = parse_config(std::string("kafka: {bootstrap_servers: \"h:1\"}\ntargets: []\nchecker:\n  per_target_metrics: ") +
                                    yes + "\n",
                                "t.yml", Component::checker, kNoEnv);
    ASSERT_TRUE(r.ok()) << yes << all(r);
    EXPECT_TRUE(r.config->checker.per_target_metrics) << yes;
  }
  for (const char* no : {"false", "no", "off", "n", "N"}) {
    const auto r = parse_config(std::string("kafka: {bootstrap_servers: \"h:1\"}\ntargets: []\nchecker:\n  per_target_metrics: ") +
                                    no + "\n",
                                "t.yml", Component::checker, kNoEnv);
    ASSERT_TRUE(r.ok()) << no << all(r);
    EXPECT_FALSE(r.config->checker.per_target_metrics) << no;
  }
}

TEST(ConfigCompat, MetricsListenOnAllAddresses) {
  const auto r = parse_config("kafka: {bootstrap_servers: \"h:1\"}\ntargets: []\nchecker:\n  metrics_listen: \":9100\"\n",
                              "t.yml", Component::checker, kNoEnv);
  ASSERT_TRUE(r.ok()) << all(r);
  EXPECT_EQ(r.config->checker.metrics_listen, ":9100");
}

// The checker's own target settings: the writer and the CLI check a regexp with the interpreter
// (no JIT code for patterns they never search with) and leave a target's ca_file alone.
TEST(ConfigComponents, OnlyTheCheckerJitCompilesAndLooksForTargetFiles) {
  const std::string yaml =
      "kafka: {bootstrap_servers: \"h:1\"}\npostgres: {uri: x}\ntargets:\n"
      "  - {name: a, target: \"http://h/\", check_interval_seconds: 5, regexp: \"ok|up\", ca_file: /nonexistent/ca.pem}\n";
  for (auto c : {Component::writer, Component::admin}) {
    const auto r = parse_config(yaml, "t.yml", c, kNoEnv);
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& t = r.config->targets.at(0);
    ASSERT_TRUE(t.regexp);
    EXPECT_FALSE(t.regexp->jit());
    EXPECT_TRUE(t.regexp->search("all up"));
    EXPECT_EQ(t.ca_file, "/nonexistent/ca.pem");
  }
  const auto checker = parse_config(yaml, "t.yml", Component::checker, kNoEnv);
  ASSERT_EQ(checker.errors.size(), 1u) << all(checker);
  EXPECT_EQ(checker.errors[0].key, "targets[0].ca_file");
  EXPECT_THAT(checker.errors[0].message, HasSubstr("file not found"));
}

}  // namespace
}  // namespace webmon
