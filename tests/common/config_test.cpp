#include "webmon/common/config.hpp"

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "support/stack.hpp"

namespace webmon {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// The same start for most tests: a valid config whose one target ends at line 8; a test appends
// lines 9 and later, so that expected line numbers can be read off the text.
constexpr std::string_view kBase =
    "kafka:\n"                                                       // 1
    "  bootstrap_servers: 127.0.0.1:9092\n"                          // 2
    "postgres:\n"                                                    // 3
    "  uri: postgresql://webmon:webmon@127.0.0.1:5432/webmon\n"      // 4
    "targets:\n"                                                     // 5
    "  - name: a\n"                                                  // 6
    "    target: http://127.0.0.1:8080/\n"                           // 7
    "    check_interval_seconds: 10\n";                              // 8

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    if (auto it = vars.find(std::string(name)); it != vars.end()) return it->second;
    return std::nullopt;
  };
}

ConfigLoad parse(std::string_view yaml, Component c = Component::checker, const EnvLookup& env = env_of({})) {
  return parse_config(yaml, "test.yml", c, env);
}

Config parse_ok(std::string_view yaml, Component c = Component::checker, const EnvLookup& env = env_of({})) {
  auto r = parse(yaml, c, env);
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  return r.config.value_or(Config{});
}

std::string all(const ConfigLoad& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string() + "\n";
  return s;
}

// Exactly one error, at line:col, for `key`, whose message contains `text`.
void expect_one_error(std::string_view yaml, int line, int col, std::string_view key, std::string_view text,
                      Component c = Component::checker, const EnvLookup& env = env_of({})) {
  const auto r = parse(yaml, c, env);
  ASSERT_EQ(r.errors.size(), 1u) << all(r);
  EXPECT_FALSE(r.config.has_value());
  const auto& e = r.errors[0];
  EXPECT_EQ(e.file, "test.yml");
  EXPECT_EQ(e.line, line) << e.to_string();
  EXPECT_EQ(e.column, col) << e.to_string();
  EXPECT_EQ(e.key, key) << e.to_string();
  EXPECT_THAT(e.message, HasSubstr(std::string(text))) << e.to_string();
}

std::string base_plus(std::string_view more) { return std::string(kBase) + std::string(more); }

// ----------------------------------------------------------------------------------------------

TEST(Config, EarlierPythonToolConfigLoadsUnchanged) {
  const auto yaml =
      "kafka:\n"
      "  bootstrap_servers: \"kafka-1.example.com:12345,kafka-2.example.com:12345\"\n"
      "postgres:\n"
      "  uri: \"postgres://avnadmin:s3cr3tpw@pg.example.com:5432/defaultdb?sslmode=require\"\n"
      "targets:\n"
      "  - name: example\n"
      "    target: https://example.com\n"
      "    check_interval_seconds: 15\n"
      "  - name: status page\n"
      "    target: http://example.org/status?x=1\n"
      "    check_interval_seconds: 2.5\n"
      "    regexp: \"(OK|Healthy)\"\n"
      "  - name: no regexp\n"
      "    target: http://example.net/\n"
      "    check_interval_seconds: 60\n"
      "    regexp:\n";
  for (auto c : {Component::checker, Component::writer, Component::admin}) {
    const auto cfg = parse_ok(yaml, c);
    EXPECT_EQ(cfg.kafka.bootstrap_servers, "kafka-1.example.com:12345,kafka-2.example.com:12345");
    EXPECT_EQ(cfg.postgres.uri, "postgres://avnadmin:s3cr3tpw@pg.example.com:5432/defaultdb?sslmode=require");
    ASSERT_EQ(cfg.targets.size(), 3u);
    EXPECT_EQ(cfg.targets[0].name, "example");
    EXPECT_EQ(cfg.targets[0].url, "https://example.com");
    EXPECT_TRUE(cfg.targets[0].parsed_url.https);
    EXPECT_EQ(cfg.targets[0].interval, 15s);
    EXPECT_EQ(cfg.targets[1].interval, 2500ms);
    EXPECT_EQ(cfg.targets[1].regexp_source, "(OK|Healthy)");
    ASSERT_TRUE(cfg.targets[1].regexp);
    EXPECT_TRUE(cfg.targets[1].regexp->search("all Healthy here"));
    EXPECT_FALSE(cfg.targets[2].regexp);
    EXPECT_EQ(cfg.targets[2].regexp_source, "");
  }
}

TEST(Config, DefaultsLiveInTheStructs) {
  const auto cfg = parse_ok(base_plus("  - url: https://[::1]:8443/x\n"
                                      "    name: b\n"
                                      "    check_interval_seconds: 2.5\n"));
  EXPECT_EQ(cfg.source, "test.yml");
  EXPECT_EQ(cfg.kafka.topic, "webmon.checks");
  EXPECT_EQ(cfg.kafka.topic_partitions, 6);
  EXPECT_EQ(cfg.kafka.security_protocol, "plaintext");
  EXPECT_TRUE(cfg.kafka.ssl.ca_file.empty());
  EXPECT_TRUE(cfg.kafka.properties.empty());
  const auto& a = cfg.targets.at(0);
  EXPECT_EQ(a.timeout, 10s);  // min(10 s, interval)
  EXPECT_EQ(a.method, HttpMethod::get);
  EXPECT_TRUE(a.headers.empty());
  EXPECT_EQ(a.valid_status_codes, (std::vector<StatusRange>{{200, 299}}));
  EXPECT_TRUE(a.follow_redirects);
  EXPECT_EQ(a.max_redirects, 10);
  EXPECT_EQ(a.ip_family, IpFamily::any);
  EXPECT_TRUE(a.tls_verify);
  EXPECT_TRUE(a.ca_file.empty());
  EXPECT_EQ(a.max_body_bytes, 1024u * 1024u);
  const auto& b = cfg.targets.at(1);  // `url` is a synonym of `target`
  EXPECT_EQ(b.url, "https://[::1]:8443/x");
  EXPECT_EQ(b.parsed_url.host, "::1");
  EXPECT_EQ(b.timeout, 2500ms);  // the interval when shorter than 10 s
  EXPECT_EQ(cfg.checker.threads, std::max(1u, std::thread::hardware_concurrency()));
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(cfg.checker.instance_id, host);
  EXPECT_EQ(cfg.checker.max_in_flight, 10000u);
  EXPECT_TRUE(cfg.checker.metrics_listen.empty());
  EXPECT_FALSE(cfg.checker.per_target_metrics);
  EXPECT_EQ(cfg.writer.group_id, "webmon-writer");
  EXPECT_EQ(cfg.writer.batch_max_rows, 5000u);
  EXPECT_EQ(cfg.writer.batch_max_ms, 500ms);
  EXPECT_FALSE(cfg.writer.retention_days);
  EXPECT_EQ(cfg.log_format, LogFormat::text);
}

TEST(Config, EveryKeyGiven) {
  const auto yaml =
      "log_format: json\n"
      "kafka:\n"
      "  bootstrap_servers: [\"k1:9092\", \"k2:9093\"]\n"
      "  topic: my.checks\n"
      "  topic_partitions: 12\n"
      "  security_protocol: SASL_PLAINTEXT\n"
      "  sasl:\n"
      "    mechanism: scram-sha-512\n"
      "    username: alice\n"
      "    password: wonderland\n"
      "  properties:\n"
      "    linger.ms: 5\n"
      "    compression.type: zstd\n"
      "postgres:\n"
      "  uri: host=127.0.0.1 dbname=webmon\n"
      "checker:\n"
      "  threads: 3\n"
      "  max_in_flight: 500\n"
      "  metrics_listen: 127.0.0.1:0\n"
      "  instance_id: checker-7\n"
      "  per_target_metrics: true\n"
      "writer:\n"
      "  group_id: g1\n"
      "  batch_max_rows: 100\n"
      "  batch_max_ms: 50\n"
      "  retention_days: 30\n"
      "  metrics_listen: \"[::1]:9101\"\n"
      "targets:\n"
      "  - name: post\n"
      "    target: http://127.0.0.1/api\n"
      "    check_interval_seconds: 30\n"
      "    timeout_seconds: 30\n"
      "    method: post\n"
      "    headers: {Content-Type: application/json, X-Token: abcdef}\n"
      "    body: '{\"ping\": 1}'\n"
      "    valid_status_codes: [200, \"301-302\", \"404\"]\n"
      "    follow_redirects: false\n"
      "    max_redirects: 0\n"
      "    ip_family: ipv6\n"
      "    tls_verify: no\n"
      "    max_body_bytes: 0\n"
      "    regexp: pong\n";
  const auto cfg = parse_ok(yaml);
  EXPECT_EQ(cfg.log_format, LogFormat::json);
  EXPECT_EQ(cfg.kafka.bootstrap_servers, "k1:9092,k2:9093");
  EXPECT_EQ(cfg.kafka.topic, "my.checks");
  EXPECT_EQ(cfg.kafka.topic_partitions, 12);
  EXPECT_EQ(cfg.kafka.security_protocol, "sasl_plaintext");
  EXPECT_EQ(cfg.kafka.sasl.mechanism, "SCRAM-SHA-512");
  EXPECT_EQ(cfg.kafka.sasl.username, "alice");
  EXPECT_EQ(cfg.kafka.sasl.password, "wonderland");
  EXPECT_EQ(cfg.kafka.properties,
            (std::vector<std::pair<std::string, std::string>>{{"linger.ms", "5"}, {"compression.type", "zstd"}}));
  EXPECT_EQ(cfg.postgres.uri, "host=127.0.0.1 dbname=webmon");
  EXPECT_EQ(cfg.checker.threads, 3u);
  EXPECT_EQ(cfg.checker.max_in_flight, 500u);
  EXPECT_EQ(cfg.checker.metrics_listen, "127.0.0.1:0");
  EXPECT_EQ(cfg.checker.instance_id, "checker-7");
  EXPECT_TRUE(cfg.checker.per_target_metrics);
  EXPECT_EQ(cfg.writer.group_id, "g1");
  EXPECT_EQ(cfg.writer.batch_max_rows, 100u);
  EXPECT_EQ(cfg.writer.batch_max_ms, 50ms);
  EXPECT_EQ(cfg.writer.retention_days, 30);
  EXPECT_EQ(cfg.writer.metrics_listen, "[::1]:9101");
  const auto& t = cfg.targets.at(0);
  EXPECT_EQ(t.timeout, 30s);
  EXPECT_EQ(t.method, HttpMethod::post);
  EXPECT_EQ(t.headers, (std::vector<std::pair<std::string, std::string>>{{"Content-Type", "application/json"},
                                                                          {"X-Token", "abcdef"}}));
  EXPECT_EQ(t.body, "{\"ping\": 1}");
  EXPECT_EQ(t.valid_status_codes, (std::vector<StatusRange>{{200, 200}, {301, 302}, {404, 404}}));
  EXPECT_TRUE(t.status_is_valid(302));
  EXPECT_TRUE(t.status_is_valid(404));
  EXPECT_FALSE(t.status_is_valid(201));
  EXPECT_FALSE(t.follow_redirects);
  EXPECT_EQ(t.max_redirects, 0);
  EXPECT_EQ(t.ip_family, IpFamily::v6);
  EXPECT_FALSE(t.tls_verify);
  EXPECT_EQ(t.max_body_bytes, 0u);
}

TEST(Config, EmptyTargetListIsAllowed) {
  const auto cfg = parse_ok("kafka: {bootstrap_servers: \"127.0.0.1:9092\"}\ntargets: []\n");
  EXPECT_TRUE(cfg.targets.empty());
}

// ---------------------------------------------------------------------------------------------
// Every kind of error, with its position and key path.

TEST(ConfigErrors, YamlSyntax) {
  expect_one_error("kafka:\n  bootstrap_servers: [a, b\ntargets: []\n", 3, 8, "", "YAML syntax: ");
}

TEST(ConfigErrors, EmptyFileAndWrongTopLevel) {
  expect_one_error("", 1, 1, "", "the file is empty; it needs at least kafka.bootstrap_servers and targets");
  expect_one_error("# only a comment\n", 1, 1, "", "the file is empty");
  expect_one_error("- a\n- b\n", 1, 1, "", "expected a mapping of sections");
}

TEST(ConfigErrors, UnknownKeysSayWhichAreAllowed) {
  expect_one_error(base_plus("kafkaa: {}\n"), 9, 1, "kafkaa",
                   "unknown key \"kafkaa\" (allowed: kafka, postgres, targets, checker, writer, incidents, log_format)");
  expect_one_error(base_plus("    intervall: 5\n"), 9, 5, "targets[0].intervall",
                   "unknown key \"intervall\" (allowed: name, target, url, check_interval_seconds, timeout_seconds, "
                   "regexp, method, headers, body, valid_status_codes, follow_redirects, max_redirects, ip_family, "
                   "tls_verify, ca_file, max_body_bytes)");
  expect_one_error(base_plus("checker:\n  thread: 2\n"), 10, 3, "checker.thread", "unknown key \"thread\" (allowed: threads,");
  expect_one_error(base_plus("writer:\n  batch_rows: 2\n"), 10, 3, "writer.batch_rows", "(allowed: group_id, batch_max_rows,");
  expect_one_error("kafka:\n  bootstrap_servers: h:1\n  ssl:\n    ca: x\ntargets: []\n", 4, 5, "kafka.ssl.ca",
                   "(allowed: ca_file, cert_file, key_file)");
}

TEST(ConfigErrors, DuplicateKey) {
  expect_one_error(base_plus("    check_interval_seconds: 5\n"), 9, 5, "targets[0].check_interval_seconds",
                   "duplicate key (first given at line 8)");
}

TEST(ConfigErrors, WrongTypes) {
  expect_one_error(base_plus("    timeout_seconds: ten\n"), 9, 22, "targets[0].timeout_seconds",
                   "expected a number of seconds, got \"ten\"");
  expect_one_error(base_plus("    tls_verify: maybe\n"), 9, 17, "targets[0].tls_verify",
                   "expected true or false, got \"maybe\"");
  expect_one_error(base_plus("    max_redirects: 1.5\n"), 9, 20, "targets[0].max_redirects",
                   "expected an integer, got \"1.5\"");
  expect_one_error(base_plus("    headers: [a, b]\n"), 9, 14, "targets[0].headers",
                   "expected a mapping of header names to values, got a list");
  expect_one_error(base_plus("    regexp: {a: 1}\n"), 9, 13, "targets[0].regexp", "expected a string, got a mapping");
  expect_one_error("kafka: {bootstrap_servers: \"h:1\"}\ntargets:\n  name: a\n", 3, 3, "targets",
                   "expected a list of targets, got a mapping");
  expect_one_error("kafka: [1]\ntargets: []\n", 1, 8, "kafka", "expected a mapping, got a list");
  expect_one_error("kafka: {bootstrap_servers: \"h:1\"}\ntargets:\n  - just-a-url\n", 3, 5, "targets[0]",
                   "expected a mapping with name, target and check_interval_seconds, got a scalar");
  expect_one_error(base_plus("checker:\n  threads: -1\n"), 10, 12, "checker.threads", "-1 is out of range (0..1024)");
}

TEST(ConfigErrors, DuplicateTargetNames) {
  expect_one_error(base_plus("  - name: a\n    target: http://127.0.0.1:8081/\n    check_interval_seconds: 10\n"), 9, 11,
                   "targets[1].name", "duplicate target name \"a\" (first at line 6)");
}

TEST(ConfigErrors, TargetNameTooLongOrNotAscii) {
  const std::string long_name(129, 'x');
  expect_one_error(base_plus("  - name: " + long_name + "\n    target: http://h/\n    check_interval_seconds: 1\n"), 9,
                   11, "targets[1].name", "longer than 128 characters (129)");
  EXPECT_TRUE(parse(base_plus("  - name: " + std::string(128, 'x') + "\n    target: http://h/\n"
                              "    check_interval_seconds: 1\n")).ok());
  expect_one_error(base_plus("  - name: caf\xc3\xa9\n    target: http://h/\n    check_interval_seconds: 1\n"), 9, 11,
                   "targets[1].name", "must be printable ASCII");
  expect_one_error(base_plus("  - name: \"\"\n    target: http://h/\n    check_interval_seconds: 1\n"), 9, 11,
                   "targets[1].name", "must not be empty");
}

TEST(ConfigErrors, UrlsThatAreNotHttp) {
  expect_one_error(base_plus("  - name: b\n    target: ftp://h/file\n    check_interval_seconds: 1\n"), 10, 13,
                   "targets[1].target", "not an http:// or https:// URL: scheme 'ftp' is not http or https");
  expect_one_error(base_plus("  - name: b\n    url: example.com\n    check_interval_seconds: 1\n"), 10, 10,
                   "targets[1].url", "not an http:// or https:// URL: malformed URL");
  expect_one_error(base_plus("  - name: b\n    url: http://h/\n    target: http://h/\n    check_interval_seconds: 1\n"),
                   10, 10, "targets[1].url", "give either target or url (synonyms), not both");
}

TEST(ConfigErrors, MissingRequiredTargetKeys) {
  const auto r = parse(base_plus("  - regexp: x\n"));
  ASSERT_EQ(r.errors.size(), 3u) << all(r);
  for (const auto& e : r.errors) {
    EXPECT_EQ(e.line, 9);
    EXPECT_EQ(e.column, 5);
  }
  EXPECT_EQ(r.errors[0].key, "targets[1].name");
  EXPECT_THAT(r.errors[0].message, HasSubstr("required by webmon-checker but not given"));
  EXPECT_EQ(r.errors[1].key, "targets[1].target");
  EXPECT_EQ(r.errors[2].key, "targets[1].check_interval_seconds");
}

TEST(ConfigErrors, IntervalMustBePositive) {
  expect_one_error(base_plus("  - name: b\n    target: http://h/\n    check_interval_seconds: 0\n"), 11, 29,
                   "targets[1].check_interval_seconds", "must be > 0, got 0");
  expect_one_error(base_plus("  - name: b\n    target: http://h/\n    check_interval_seconds: -2.5\n"), 11, 29,
                   "targets[1].check_interval_seconds", "must be > 0, got -2.5");
  expect_one_error(base_plus("  - name: b\n    target: http://h/\n    check_interval_seconds: .inf\n"), 11, 29,
                   "targets[1].check_interval_seconds", "expected a number of seconds");
}

TEST(ConfigErrors, TimeoutAboveInterval) {
  expect_one_error(base_plus("    timeout_seconds: 10.5\n"), 9, 22, "targets[0].timeout_seconds",
                   "must not exceed check_interval_seconds (10 s), got 10.5 s");
  EXPECT_TRUE(parse(base_plus("    timeout_seconds: 10\n")).ok());
}

TEST(ConfigErrors, ValidStatusCodesSyntax) {
  expect_one_error(base_plus("    valid_status_codes: [200, \"2xx\"]\n"), 9, 31, "targets[0].valid_status_codes[1]",
                   "expected a status code (100-599) or a range like \"200-299\", got \"2xx\"");
  expect_one_error(base_plus("    valid_status_codes: [99]\n"), 9, 26, "targets[0].valid_status_codes[0]",
                   "got \"99\"");
  expect_one_error(base_plus("    valid_status_codes: [\"300-200\"]\n"), 9, 26, "targets[0].valid_status_codes[0]",
                   "got \"300-200\"");
  expect_one_error(base_plus("    valid_status_codes: []\n"), 9, 25, "targets[0].valid_status_codes", "must not be empty");
  expect_one_error(base_plus("    valid_status_codes: 200\n"), 9, 25, "targets[0].valid_status_codes",
                   "expected a list of status codes");
}

TEST(ConfigErrors, RegexpThatPcre2Refuses) {
  expect_one_error(base_plus("    regexp: \"ab(c\"\n"), 9, 13, "targets[0].regexp",
                   "PCRE2 refuses \"ab(c\": missing closing parenthesis at offset 4");
}

TEST(ConfigErrors, MissingFiles) {
  expect_one_error(base_plus("    ca_file: /nonexistent/ca.pem\n"), 9, 14, "targets[0].ca_file",
                   "file not found: \"/nonexistent/ca.pem\" (looked for /nonexistent/ca.pem)");
  expect_one_error("kafka:\n  bootstrap_servers: h:1\n  security_protocol: ssl\n  ssl:\n    ca_file: /nope/ca.pem\n"
                   "targets: []\n",
                   5, 14, "kafka.ssl.ca_file", "file not found");
}

TEST(ConfigErrors, BadChoices) {
  expect_one_error(base_plus("    ip_family: ipv5\n"), 9, 16, "targets[0].ip_family",
                   "expected one of auto, ipv4, ipv6, got \"ipv5\"");
  expect_one_error(base_plus("    method: PUT\n"), 9, 13, "targets[0].method", "expected one of get, head, post, got \"PUT\"");
  expect_one_error("kafka:\n  bootstrap_servers: h:1\n  security_protocol: tls\ntargets: []\n", 3, 22,
                   "kafka.security_protocol", "expected one of plaintext, ssl, sasl_plaintext, sasl_ssl, got \"tls\"");
  expect_one_error("log_format: xml\nkafka: {bootstrap_servers: \"h:1\"}\ntargets: []\n", 1, 13, "log_format",
                   "expected one of text, json, got \"xml\"");
  expect_one_error(base_plus("    body: hello\n"), 9, 11, "targets[0].body", "a body is sent only with method POST");
  expect_one_error(base_plus("    headers:\n      Content-Length: 5\n"), 10, 7, "targets[0].headers.Content-Length",
                   "set by the checker itself");
  // The other two framing headers the checker sets itself, in any case of their names.
  expect_one_error(base_plus("    headers:\n      Transfer-Encoding: chunked\n"), 10, 7,
                   "targets[0].headers.Transfer-Encoding", "set by the checker itself; it cannot be configured");
  expect_one_error(base_plus("    headers:\n      X-Fine: yes\n      connection: close\n"), 11, 7,
                   "targets[0].headers.connection", "set by the checker itself; it cannot be configured");
  // What a user reads: file:line:col, then the key.
  const auto r = parse(base_plus("    headers:\n      CONNECTION: keep-alive\n"), Component::checker, env_of({}));
  ASSERT_EQ(r.errors.size(), 1u) << all(r);
  EXPECT_THAT(r.errors[0].to_string(), HasSubstr("test.yml:10:7: targets[0].headers.CONNECTION: set by the checker"));
}

TEST(ConfigErrors, BatchSizesOutOfBounds) {
  expect_one_error(base_plus("writer:\n  batch_max_rows: 0\n"), 10, 19, "writer.batch_max_rows",
                   "0 is out of range (1..1000000)");
  expect_one_error(base_plus("writer:\n  batch_max_ms: 600001\n"), 10, 17, "writer.batch_max_ms",
                   "600001 is out of range (1..60000)");
  expect_one_error(base_plus("writer:\n  retention_days: 0\n"), 10, 19, "writer.retention_days", "out of range");
  expect_one_error(base_plus("checker:\n  max_in_flight: 0\n"), 10, 18, "checker.max_in_flight", "out of range");
  expect_one_error("kafka:\n  bootstrap_servers: h:1\n  topic_partitions: 0\ntargets: []\n", 3, 21,
                   "kafka.topic_partitions", "0 is out of range (1..10000)");
}

TEST(Config, CheckerDnsSection) {
  const auto d = parse_ok(base_plus("checker:\n  dns:\n    cache: false\n    max_ttl_seconds: 60\n"
                                    "    negative_ttl_seconds: 5\n    servers: [\"10.0.0.2\", \"10.0.0.3:5353\", \"::1\", "
                                    "\"[fd00::53]:53\"]\n    timeout_ms: 800\n    attempts: 3\n"))
                     .checker.dns;
  EXPECT_FALSE(d.cache);
  EXPECT_EQ(d.max_ttl_seconds, 60);
  EXPECT_EQ(d.negative_ttl_seconds, 5);
  EXPECT_EQ(d.servers, (std::vector<std::string>{"10.0.0.2", "10.0.0.3:5353", "::1", "[fd00::53]:53"}));
  EXPECT_EQ(d.timeout_ms, 800);
  EXPECT_EQ(d.attempts, 3);
  const auto defaults = parse_ok(kBase).checker.dns;
  EXPECT_EQ(defaults, CheckerDns{});
  EXPECT_TRUE(defaults.cache);
  EXPECT_EQ(defaults.max_ttl_seconds, 300);
  EXPECT_EQ(defaults.negative_ttl_seconds, 30);
}

TEST(ConfigErrors, CheckerDnsKeys) {
  expect_one_error(base_plus("checker:\n  dns:\n    servers: [\"dns.example\"]\n"), 11, 15, "checker.dns.servers[0]",
                   "expected an IP address with an optional port");
  expect_one_error(base_plus("checker:\n  dns:\n    servers: [\"10.0.0.2:99999\"]\n"), 11, 15,
                   "checker.dns.servers[0]", "got \"10.0.0.2:99999\"");
  expect_one_error(base_plus("checker:\n  dns:\n    servers: 10.0.0.2\n"), 11, 14, "checker.dns.servers",
                   "expected a list of name server addresses");
  expect_one_error(base_plus("checker:\n  dns:\n    max_ttl_seconds: -1\n"), 11, 22, "checker.dns.max_ttl_seconds",
                   "-1 is out of range (0..86400)");
  expect_one_error(base_plus("checker:\n  dns:\n    attempts: 0\n"), 11, 15, "checker.dns.attempts",
                   "0 is out of range (1..10)");
  expect_one_error(base_plus("checker:\n  dns:\n    ttl: 5\n"), 11, 5, "checker.dns.ttl", "cache");
}

TEST(ConfigErrors, KafkaPropertiesJudgedByLibrdkafka) {
  const auto r = parse("kafka:\n"
                       "  bootstrap_servers: h:1\n"
                       "  properties:\n"
                       "    linger.ms: -5\n"
                       "    no.such.property: 1\n"
                       "    acks: all\n"
                       "targets: []\n");
  ASSERT_EQ(r.errors.size(), 2u) << all(r);
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].column, 16);
  EXPECT_EQ(r.errors[0].key, "kafka.properties.linger.ms");
  EXPECT_THAT(r.errors[0].message, HasSubstr("librdkafka: "));
  EXPECT_THAT(r.errors[0].message, HasSubstr("outside allowed range"));
  EXPECT_EQ(r.errors[1].line, 5);
  EXPECT_EQ(r.errors[1].column, 23);
  EXPECT_EQ(r.errors[1].key, "kafka.properties.no.such.property");
  EXPECT_THAT(r.errors[1].message, HasSubstr("No such configuration property"));
}

TEST(ConfigErrors, OtherKafkaChecks) {
  expect_one_error("kafka:\n  bootstrap_servers: localhost\ntargets: []\n", 2, 22, "kafka.bootstrap_servers",
                   "expected host:port[,host:port...], got \"localhost\"");
  expect_one_error("kafka:\n  bootstrap_servers: h:1\n  topic: \"bad topic\"\ntargets: []\n", 3, 10, "kafka.topic",
                   "not a legal Kafka topic name");
  expect_one_error("kafka:\n  bootstrap_servers: h:1\n  security_protocol: sasl_plaintext\ntargets: []\n", 1, 1,
                   "kafka.sasl.mechanism", "required with security_protocol sasl_plaintext");
  expect_one_error("kafka:\n  bootstrap_servers: h:1\n  security_protocol: sasl_plaintext\n  sasl:\n    mechanism: PLAIN\n"
                   "targets: []\n",
                   4, 3, "kafka.sasl", "username and password are required with mechanism PLAIN");
  expect_one_error("kafka:\n  bootstrap_servers: h:1\n  sasl:\n    mechanism: MD5\ntargets: []\n", 4, 16,
                   "kafka.sasl.mechanism", "expected one of PLAIN");
  expect_one_error(base_plus("checker:\n  metrics_listen: 9100\n"), 10, 19, "checker.metrics_listen",
                   "expected host:port");
}

TEST(ConfigErrors, WhatEachComponentRequires) {
  // The checker: kafka.bootstrap_servers and targets.
  expect_one_error("postgres: {uri: x}\ntargets: []\n", 1, 1, "kafka.bootstrap_servers",
                   "required by webmon-checker but not given");
  expect_one_error("kafka:\n  topic: t\ntargets: []\n", 1, 1, "kafka.bootstrap_servers", "required by webmon-checker");
  expect_one_error("kafka:\ntargets: []\n", 1, 1, "kafka.bootstrap_servers", "required by webmon-checker");
  expect_one_error("kafka: {bootstrap_servers: \"h:1\"}\n", 1, 1, "targets", "required by webmon-checker");
  // The writer: kafka and postgres.uri; targets are not needed (but validated when present).
  expect_one_error("kafka: {bootstrap_servers: \"h:1\"}\n", 1, 1, "postgres.uri", "required by webmon-writer",
                   Component::writer);
  expect_one_error("kafka: {bootstrap_servers: \"h:1\"}\npostgres:\n  uri: \"\"\n", 3, 8, "postgres.uri",
                   "must not be empty", Component::writer);
  expect_one_error("postgres: {uri: x}\n", 1, 1, "kafka.bootstrap_servers", "required by webmon-writer",
                   Component::writer);
  EXPECT_TRUE(parse("kafka: {bootstrap_servers: \"h:1\"}\npostgres: {uri: x}\n", Component::writer).ok());
  // The admin CLI: postgres.uri only; sections it does not need are still validated.
  EXPECT_TRUE(parse("postgres: {uri: x}\n", Component::admin).ok());
  expect_one_error("kafka: {bootstrap_servers: \"h:1\"}\n", 1, 1, "postgres.uri", "required by webmon", Component::admin);
  expect_one_error("postgres: {uri: x}\ntargets:\n  - name: a\n    target: gopher://h/\n    check_interval_seconds: 1\n",
                   4, 13, "targets[0].target", "not http or https", Component::admin);
}

TEST(ConfigErrors, AllErrorsAtOnceInFileOrder) {
  const auto r = parse("kafka:\n"                                   // 1
                       "  bootstrap_servers: h:1\n"                 // 2
                       "  topic_partitions: zero\n"                 // 3
                       "targets:\n"                                 // 4
                       "  - name: a\n"                              // 5
                       "    target: ftp://x/\n"                     // 6
                       "    check_interval_seconds: 0\n"            // 7
                       "    regexp: \"[\"\n"                        // 8
                       "  - name: a\n"                              // 9
                       "    target: http://x/\n"                    // 10
                       "    check_interval_seconds: 5\n"            // 11
                       "    timeout_seconds: 6\n"                   // 12
                       "    colour: blue\n"                         // 13
                       "writer:\n"                                  // 14
                       "  batch_max_rows: 0\n");                    // 15
  ASSERT_EQ(r.errors.size(), 8u) << all(r);
  const std::vector<std::pair<int, std::string>> expected = {
      {3, "kafka.topic_partitions"},       {6, "targets[0].target"},          {7, "targets[0].check_interval_seconds"},
      {8, "targets[0].regexp"},            {9, "targets[1].name"},            {12, "targets[1].timeout_seconds"},
      {13, "targets[1].colour"},           {15, "writer.batch_max_rows"}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r.errors[i].line, expected[i].first) << r.errors[i].to_string();
    EXPECT_EQ(r.errors[i].key, expected[i].second) << r.errors[i].to_string();
  }
  EXPECT_EQ(r.errors[1].to_string(),
            "test.yml:6:13: targets[0].target: not an http:// or https:// URL: scheme 'ftp' is not http or https: "
            "\"ftp://x/\"");
}

TEST(ConfigErrors, ToStringFormat) {
  ConfigError e{"config.yml", 12, 5, "targets[3].check_interval_seconds", "must be > 0"};
  EXPECT_EQ(e.to_string(), "config.yml:12:5: targets[3].check_interval_seconds: must be > 0");
  ConfigError whole{"config.yml", 0, 0, "", "no such file"};
  EXPECT_EQ(whole.to_string(), "config.yml: no such file");
}

// ---------------------------------------------------------------------------------------------
// ${ENV_VAR}

TEST(ConfigEnv, SubstitutedInAnyScalar) {
  const auto env = env_of({{"KAFKA", "10.0.0.1:9092"}, {"PGPASS", "pg-secret-1"}, {"EVERY", "30"}, {"HOST", "web"}});
  const auto cfg = parse_ok("kafka:\n  bootstrap_servers: ${KAFKA}\n"
                            "postgres:\n  uri: postgresql://webmon:${PGPASS}@db/webmon\n"
                            "targets:\n  - name: t\n    target: http://${HOST}:8080/\n"
                            "    check_interval_seconds: ${EVERY}\n    regexp: \"$${literal}\"\n",
                            Component::writer, env);
  EXPECT_EQ(cfg.kafka.bootstrap_servers, "10.0.0.1:9092");
  EXPECT_EQ(cfg.postgres.uri, "postgresql://webmon:pg-secret-1@db/webmon");
  EXPECT_EQ(cfg.targets.at(0).url, "http://web:8080/");
  EXPECT_EQ(cfg.targets.at(0).regexp_source, "${literal}");  // $${ is a literal ${
  EXPECT_EQ(cfg.targets.at(0).interval, 30s);
}

TEST(ConfigEnv, UnsetVariableIsAnErrorNamingIt) {
  expect_one_error(base_plus("    regexp: \"${PATTERN}\"\n"), 9, 13, "targets[0].regexp",
                   "environment variable PATTERN is not set");
  expect_one_error(base_plus("    regexp: \"${PATTERN\"\n"), 9, 13, "targets[0].regexp", "unterminated ${");
  expect_one_error(base_plus("    regexp: \"${1X}\"\n"), 9, 13, "targets[0].regexp", "invalid environment variable name \"1X\"");
}

TEST(ConfigEnv, ProcessEnvironmentIsTheDefault) {
  ::setenv("WEBMON_CONFIG_TEST_VAR", "from-env", 1);
  const auto lookup = process_env();
  EXPECT_EQ(lookup("WEBMON_CONFIG_TEST_VAR"), "from-env");
  EXPECT_EQ(lookup("WEBMON_CONFIG_TEST_UNSET_VAR"), std::nullopt);
  ::unsetenv("WEBMON_CONFIG_TEST_VAR");
}

// What the logging sink writes to stderr while `log` runs.
std::string stderr_of(const std::function<void()>& log) {
  test::TempDir dir;
  const auto path = dir.path() / "log.txt";
  const int saved = dup(STDERR_FILENO);
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot open " + path.string());
  dup2(fileno(f), STDERR_FILENO);
  init_logging(spdlog::level::info, LogFormat::text);
  log();
  spdlog::default_logger()->flush();
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::fclose(f);
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Secrets (values from the environment, passwords) never reach a log line.
TEST(ConfigEnv, SecretsAreMaskedInLogs) {
  const auto cfg = parse_ok("kafka:\n  bootstrap_servers: ${KAFKA}\n  security_protocol: sasl_plaintext\n"
                            "  sasl: {mechanism: PLAIN, username: u, password: sasl-pass-42}\n"
                            "postgres:\n  uri: postgresql://webmon:uri-pass-42@db/webmon\n"
                            "targets:\n  - name: t\n    target: http://h/\n    check_interval_seconds: 1\n"
                            "    headers: {Authorization: \"Bearer ${TOKEN}\"}\n",
                            Component::checker, env_of({{"TOKEN", "env-token-42"}, {"KAFKA", "broker-7:9092"}}));
  // URIs are logged through redact_uri(); other secrets are masked by the sink wherever they appear.
  const auto text = stderr_of([&] {
    spdlog::info("sasl={} uri={} header={} brokers={}", cfg.kafka.sasl.password, redact_uri(cfg.postgres.uri),
                 cfg.targets.at(0).headers.at(0).second, cfg.kafka.bootstrap_servers);
  });
  EXPECT_THAT(text, HasSubstr("sasl=*** uri=postgresql://"));
  EXPECT_THAT(text, HasSubstr(":***@db/"));
  EXPECT_THAT(text, HasSubstr(" header=Bearer ***"));
  // (Not a search for "42" alone: the log line's own time stamp may hold it, as at 09:42.)
  for (const char* secret : {"sasl-pass-42", "uri-pass-42", "env-token-42"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in " << text;
  }
  // A value from the environment that is no secret (a broker address) stays readable.
  EXPECT_THAT(text, HasSubstr("brokers=broker-7:9092"));
}

// A secret value under 4 characters is not masked (it would turn every "on" or "abc" in every
// log line into ***); 4 characters are. Secret headers by name: Cookie, Proxy-Authorization,
// *token*, *api-key*, *secret*; and kafka.properties passwords.
TEST(ConfigEnv, SecretValuesUnderFourCharactersAreNotMasked) {
  const auto cfg = parse_ok("kafka:\n  bootstrap_servers: h:1\n  properties:\n    ssl.key.password: \"pw7\"\n"
                            "targets:\n  - name: t\n    target: http://h/\n    check_interval_seconds: 1\n"
                            "    headers:\n      Cookie: \"c=1\"\n      Proxy-Authorization: \"Zq8w\"\n"
                            "      X-Auth-Token: \"t0k\"\n      X-Api-Key: \"K4y9\"\n      X-Client-Secret: \"s3c\"\n");
  const auto& h = cfg.targets.at(0).headers;
  ASSERT_EQ(h.size(), 5u);
  const auto text = stderr_of([&] {
    spdlog::info("cookie=[{}] proxy=[{}] token=[{}] key=[{}] secret=[{}] kafka=[{}]", h.at(0).second, h.at(1).second,
                 h.at(2).second, h.at(3).second, h.at(4).second,
                 cfg.kafka.properties.at(0).second);
  });
  EXPECT_THAT(text, HasSubstr("cookie=[c=1]"));
  EXPECT_THAT(text, HasSubstr("proxy=[***]"));
  EXPECT_THAT(text, HasSubstr("token=[t0k]"));
  EXPECT_THAT(text, HasSubstr("key=[***]"));
  EXPECT_THAT(text, HasSubstr("secret=[s3c]"));
  EXPECT_THAT(text, HasSubstr("kafka=[pw7]"));
}

// ---------------------------------------------------------------------------------------------
// Files

TEST(ConfigFiles, RelativePathsResolveAgainstTheConfigDirectory) {
  test::TempDir dir;
  dir.write("ca.pem", "not really a certificate; only its existence is checked here");
  const auto file = dir.write("config.yml", base_plus("    ca_file: ca.pem\n"));
  auto r = load_config(file, Component::checker, env_of({}));
  ASSERT_TRUE(r.ok()) << all(r);
  EXPECT_EQ(r.config->targets.at(0).ca_file, (dir.path() / "ca.pem").lexically_normal().string());
  EXPECT_EQ(r.config->source, file);
}

// Run from one directory with the config file in another (a systemd unit's WorkingDirectory=, or
// `webmon-checker --config /etc/webmon/config.yml` from a shell): a relative path is looked for in
// the working directory first, then beside the config file, and a missing one names both places.
TEST(ConfigFiles, RelativePathsTryTheWorkingDirectoryFirstAndAMissingFileNamesBothPlaces) {
  test::TempDir cwd_dir, config_dir;
  struct RestoreCwd {
    std::filesystem::path before = std::filesystem::current_path();
    ~RestoreCwd() { std::filesystem::current_path(before); }
  } restore;
  std::filesystem::current_path(cwd_dir.path());
  const auto in_cwd = cwd_dir.write("ca.pem", "the working directory's");
  config_dir.write("ca.pem", "the config directory's");
  const auto file = config_dir.write("config.yml", base_plus("    ca_file: ca.pem\n"));
  auto r = load_config(file, Component::checker, env_of({}));
  ASSERT_TRUE(r.ok()) << all(r);
  EXPECT_EQ(r.config->targets.at(0).ca_file, in_cwd.lexically_normal().string());

  std::filesystem::remove(in_cwd);
  r = load_config(file, Component::checker, env_of({}));
  ASSERT_TRUE(r.ok()) << all(r);
  EXPECT_EQ(r.config->targets.at(0).ca_file, (config_dir.path() / "ca.pem").lexically_normal().string());

  std::filesystem::remove(config_dir.path() / "ca.pem");
  r = load_config(file, Component::checker, env_of({}));
  ASSERT_EQ(r.errors.size(), 1u) << all(r);
  const auto& e = r.errors[0];
  EXPECT_EQ(e.key, "targets[0].ca_file");
  EXPECT_EQ(e.line, 9);
  EXPECT_EQ(e.column, 14);
  EXPECT_THAT(e.message, HasSubstr("file not found: \"ca.pem\""));
  EXPECT_THAT(e.message, HasSubstr("looked for " + (cwd_dir.path() / "ca.pem").lexically_normal().string() + ", " +
                                   (config_dir.path() / "ca.pem").lexically_normal().string()));
}

TEST(ConfigFiles, KafkaSslDefaultsLikeTheEarlierTool) {
  test::TempDir dir;
  const auto yaml = "kafka:\n  bootstrap_servers: h:1\n  security_protocol: ssl\ntargets: []\n";
  // No files: one error per default file, at the kafka section, naming where it looked.
  const auto file = dir.write("config.yml", yaml);
  auto missing = load_config(file, Component::checker, env_of({}));
  ASSERT_EQ(missing.errors.size(), 3u) << all(missing);
  for (const auto& e : missing.errors) {
    EXPECT_EQ(e.line, 1);
    EXPECT_EQ(e.column, 1);
    EXPECT_EQ(e.key, "kafka.ssl");
  }
  EXPECT_THAT(missing.errors[0].message, HasSubstr("file not found: \"config/kafka/ca.pem\""));
  EXPECT_THAT(missing.errors[1].message, HasSubstr("config/kafka/service.cert"));
  EXPECT_THAT(missing.errors[2].message, HasSubstr("config/kafka/service.key"));
  // With them beside the config file.
  std::filesystem::create_directories(dir.path() / "config" / "kafka");
  for (const char* name : {"ca.pem", "service.cert", "service.key"}) dir.write(std::string("config/kafka/") + name, "x");
  auto found = load_config(file, Component::checker, env_of({}));
  ASSERT_TRUE(found.ok()) << all(found);
  EXPECT_EQ(found.config->kafka.ssl.ca_file, (dir.path() / "config/kafka/ca.pem").string());
  EXPECT_EQ(found.config->kafka.ssl.cert_file, (dir.path() / "config/kafka/service.cert").string());
  EXPECT_EQ(found.config->kafka.ssl.key_file, (dir.path() / "config/kafka/service.key").string());
}

TEST(ConfigFiles, MissingConfigFile) {
  auto r = load_config("/nonexistent/webmon.yml", Component::checker, env_of({}));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "/nonexistent/webmon.yml: no such file");
}

TEST(ConfigFiles, ResolveConfigPath) {
  ::setenv("WEBMON_CONFIG", "/etc/webmon/from-env.yml", 1);
  EXPECT_EQ(resolve_config_path(std::string_view("/x/flag.yml")), "/x/flag.yml");
  EXPECT_EQ(resolve_config_path(std::nullopt), "/etc/webmon/from-env.yml");
  ::unsetenv("WEBMON_CONFIG");
  EXPECT_EQ(resolve_config_path(std::nullopt), "config/config.yml");
}

TEST(ConfigFiles, ExampleConfigLoadsForEveryComponent) {
  const auto example = std::filesystem::path(WEBMON_SOURCE_DIR) / "config" / "config.example.yml";
  for (auto c : {Component::checker, Component::writer, Component::admin}) {
    auto r = load_config(example, c, env_of({}));
    EXPECT_TRUE(r.ok()) << all(r);
    if (r.ok()) {
      EXPECT_EQ(r.config->kafka.bootstrap_servers, "127.0.0.1:9092");
      EXPECT_EQ(r.config->postgres.uri, "postgresql://webmon:webmon@127.0.0.1:5432/webmon");
      EXPECT_GE(r.config->targets.size(), 3u);
    }
  }
}

TEST(ConfigTargets, SameProbe) {
  const auto cfg = parse_ok(base_plus("  - name: b\n    target: http://127.0.0.1:8080/\n    check_interval_seconds: 10\n"
                                      "  - name: c\n    target: http://127.0.0.1:8080/\n    check_interval_seconds: 10\n"
                                      "    regexp: x\n"));
  const auto& a = cfg.targets.at(0);
  auto renamed = cfg.targets.at(1);
  EXPECT_FALSE(a.same_probe(renamed));
  renamed.name = "a";
  EXPECT_TRUE(a.same_probe(renamed));
  EXPECT_TRUE(a.same_probe(a));
  auto with_regexp = cfg.targets.at(2);
  with_regexp.name = "a";
  EXPECT_FALSE(a.same_probe(with_regexp));
  auto slower = a;
  slower.interval = 11s;
  EXPECT_FALSE(a.same_probe(slower));
}

TEST(ConfigTargets, AnchorsAliasesAndMergeKeysShareSettings) {
  // Anchors live inside known sections (an extra top-level key would be an unknown key).
  const auto r = parse("kafka: {bootstrap_servers: \"h:1\"}\n"
                       "targets:\n"
                       "  - &first\n"
                       "    name: a\n"
                       "    target: http://a/\n"
                       "    check_interval_seconds: 5\n"
                       "    headers: &auth {Authorization: Bearer xyz123}\n"
                       "  - <<: *first\n"
                       "    name: b\n"
                       "    check_interval_seconds: 7\n"
                       "  - <<: [*first]\n"
                       "    name: c\n"
                       "    target: http://c/\n"
                       "    headers: *auth\n"
                       "    colour: red\n");
  ASSERT_EQ(r.errors.size(), 1u) << all(r);
  EXPECT_EQ(r.errors[0].key, "targets[2].colour");
  EXPECT_EQ(r.errors[0].line, 15);
  const auto ok = parse_ok("kafka: {bootstrap_servers: \"h:1\"}\n"
                           "targets:\n"
                           "  - &first\n"
                           "    name: a\n"
                           "    target: http://a/\n"
                           "    check_interval_seconds: 5\n"
                           "    headers: &auth {Authorization: Bearer xyz123}\n"
                           "  - <<: *first\n"
                           "    name: b\n"
                           "    check_interval_seconds: 7\n"
                           "  - <<: [*first]\n"
                           "    name: c\n"
                           "    target: http://c/\n"
                           "    headers: *auth\n");
  ASSERT_EQ(ok.targets.size(), 3u);
  EXPECT_EQ(ok.targets[1].url, "http://a/");
  EXPECT_EQ(ok.targets[1].interval, 7s);
  EXPECT_EQ(ok.targets[1].headers, ok.targets[0].headers);
  EXPECT_EQ(ok.targets[2].url, "http://c/");
  EXPECT_EQ(ok.targets[2].interval, 5s);
  EXPECT_EQ(ok.targets[2].headers.at(0).second, "Bearer xyz123");
}

TEST(ConfigTargets, IdenticalRegexpsAreCompiledOnce) {
  const auto cfg = parse_ok(base_plus("    regexp: up\n  - name: b\n    target: http://h/\n    check_interval_seconds: 1\n"
                                      "    regexp: up\n"));
  EXPECT_EQ(cfg.targets.at(0).regexp, cfg.targets.at(1).regexp);
}


// The sections every component accepts, without `postgres` (lines 1-3).
constexpr std::string_view kNoPostgres = "kafka:\n  bootstrap_servers: 127.0.0.1:9092\ntargets: []\n";

TEST(Config, PostgresDeadlinesAndWriterInstanceId) {
  const auto defaults = parse_ok(base_plus(""));
  EXPECT_EQ(defaults.postgres.connect_timeout_seconds, 10);
  EXPECT_EQ(defaults.postgres.keepalives_idle_seconds, 10);
  EXPECT_EQ(defaults.postgres.keepalives_interval_seconds, 5);
  EXPECT_EQ(defaults.postgres.keepalives_count, 3);
  EXPECT_EQ(defaults.postgres.statement_timeout_ms, 20000);
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(defaults.writer.instance_id, host);  // with no writer section at all

  const auto given = parse_ok(std::string(kNoPostgres) + "postgres:\n  uri: \"host=db\"\n  connect_timeout_seconds: 3\n"
                                        "  keepalives_idle_seconds: 20\n  keepalives_interval_seconds: 2\n"
                                        "  keepalives_count: 9\n  statement_timeout_ms: 0\n"
                                        "writer:\n  instance_id: writer-2.eu_west\n  batch_max_rows: 10\n");
  EXPECT_EQ(given.postgres.connect_timeout_seconds, 3);
  EXPECT_EQ(given.postgres.keepalives_idle_seconds, 20);
  EXPECT_EQ(given.postgres.keepalives_interval_seconds, 2);
  EXPECT_EQ(given.postgres.keepalives_count, 9);
  EXPECT_EQ(given.postgres.statement_timeout_ms, 0);
  EXPECT_EQ(given.writer.instance_id, "writer-2.eu_west");
  EXPECT_EQ(parse_ok(base_plus("writer:\n  batch_max_rows: 10\n")).writer.instance_id, host);
}

TEST(ConfigErrors, PostgresDeadlinesAndWriterInstanceIdChecked) {
  expect_one_error(std::string(kNoPostgres) + ("postgres:\n  uri: x\n  connect_timeout_seconds: 0\n"), 6, 28,
                   "postgres.connect_timeout_seconds", "0 is out of range (1..3600)");
  expect_one_error(std::string(kNoPostgres) + ("postgres:\n  uri: x\n  keepalives_count: 101\n"), 6, 21, "postgres.keepalives_count",
                   "out of range");
  expect_one_error(std::string(kNoPostgres) + ("postgres:\n  uri: x\n  statement_timeout_ms: -1\n"), 6, 25,
                   "postgres.statement_timeout_ms", "out of range");
  expect_one_error(base_plus("writer:\n  instance_id: \"two words\"\n"), 10, 16, "writer.instance_id",
                   "only ASCII letters, digits");
  expect_one_error(base_plus("writer:\n  instance_id: \"\"\n"), 10, 16, "writer.instance_id", "");
}


// The fleet keys (issue 12): standalone unless a group or a location is given; static membership
// only with an instance_id from the file.
TEST(Config, FleetKeysDefaultToAStandaloneChecker) {
  const auto d = parse_ok(base_plus(""));
  EXPECT_EQ(d.checker.fleet_group(), "");
  EXPECT_EQ(d.checker.location, "");
  EXPECT_EQ(d.checker.shards, 64);
  EXPECT_EQ(d.checker.session_timeout_ms, 10000);
  EXPECT_EQ(d.checker.group_instance_id, "") << "the host name is no group.instance.id";
  EXPECT_EQ(d.kafka.coordination_topic, "webmon.checkers");

  const auto located = parse_ok(base_plus("checker:\n  location: eu-west\n  instance_id: eu-1\n"));
  EXPECT_EQ(located.checker.location, "eu-west");
  EXPECT_EQ(located.checker.fleet_group(), "webmon-checkers-eu-west") << "a location is a group of its own";
  EXPECT_EQ(located.checker.group_instance_id, "eu-1");
  EXPECT_EQ(located.checker.instance_id, "eu-1");

  const auto given = parse_ok("kafka:\n  bootstrap_servers: 127.0.0.1:9092\n  coordination_topic: fleet.a\n"
                              "checker:\n  location: fra1\n  group: fleet-a\n  shards: 8\n  session_timeout_ms: 6000\n"
                              "targets:\n");
  EXPECT_EQ(given.checker.fleet_group(), "fleet-a") << "a group given wins over the location's";
  EXPECT_EQ(given.checker.location, "fra1");
  EXPECT_EQ(given.checker.shards, 8);
  EXPECT_EQ(given.checker.session_timeout_ms, 6000);
  EXPECT_EQ(given.kafka.coordination_topic, "fleet.a");
}

TEST(ConfigErrors, FleetKeysChecked) {
  expect_one_error(base_plus("checker:\n  location: \"eu west\"\n"), 10, 13, "checker.location",
                   "only ASCII letters, digits");
  expect_one_error(base_plus("checker:\n  shards: 0\n"), 10, 11, "checker.shards", "out of range (1..10000)");
  expect_one_error(base_plus("checker:\n  session_timeout_ms: 500\n"), 10, 23, "checker.session_timeout_ms",
                   "out of range");
  expect_one_error(base_plus("checker:\n  group: \"two words\"\n"), 10, 10, "checker.group", "printable ASCII");
  // With a group the id is the group.instance.id, whose characters Kafka restricts; alone it is not.
  expect_one_error(base_plus("checker:\n  group: g\n  instance_id: \"eu 1\"\n"), 11, 16, "checker.instance_id",
                   "group.instance.id");
  EXPECT_EQ(parse_ok(base_plus("checker:\n  instance_id: \"eu 1\"\n")).checker.instance_id, "eu 1");
  expect_one_error(base_plus("checker:\n  group: webmon-writer\n"), 10, 10, "checker.group", "writer.group_id");
  expect_one_error("kafka:\n  bootstrap_servers: 127.0.0.1:9092\n  coordination_topic: webmon.checks\ntargets:\n", 3, 23,
                   "kafka.coordination_topic", "results' topic");
}

}  // namespace
}  // namespace webmon
