// config.yml's keys, one table per section (in the spirit of PgBouncer's bouncer_params): each row
// names a key, the member it fills, its type and bounds, its reload behaviour, the binaries that
// read it, one line of doc and a valid example; the default is the struct's. The parsing, the
// allowed-keys errors, the required keys, the reload diff and the docs all come from these rows
// (config_reader.hpp). What spans keys is a hand-written post-check, one per section.
#include "webmon/common/config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>
#include <thread>

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>
#include <yaml-cpp/exceptions.h>

#include "config_reader.hpp"
#include "config_values.hpp"
#include "webmon/common/kafka.hpp"
#include "webmon/common/text.hpp"

namespace webmon {
namespace config_detail {
namespace {

using namespace std::chrono;
using yaml::kind_name;

constexpr std::int64_t kMaxIntervalSeconds = 7 * 24 * 3600;
constexpr std::int64_t kMaxBodyBytesLimit = 256 * 1024 * 1024;
constexpr unsigned kDaemons = kChecker | kWriter;

std::string host_name() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0 || buf[0] == '\0') return "webmon";
  return std::string(buf.data());
}

std::string fmt_seconds(nanoseconds d) {
  std::array<char, 32> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), duration<double>(d).count());
  return std::string(buf.data(), r.ptr) + " s";
}

// ---------------------------------------------------------------------------------------------
// Post-checks: the rules that span keys.

void kafka_post(Reader& r, const Fields& s, const YAML::Mark& where, const std::string&, KafkaConfig& k) {
  const auto* ssl_field = s.get("ssl");
  const std::pair<std::string_view, std::string*> defaults[] = {{"config/kafka/ca.pem", &k.ssl.ca_file},
                                                                {"config/kafka/service.cert", &k.ssl.cert_file},
                                                                {"config/kafka/service.key", &k.ssl.key_file}};
  // config/kafka/X from the working directory or the config's directory, or kafka/X beside the
  // config file (the earlier tool's config directory holds config.yml and kafka/).
  auto found = [&r](std::string_view file) {
    auto p = r.find_file(std::string(file));
    return p ? p : r.find_file((r.file().parent_path() / file.substr(std::string_view("config/").size())).string());
  };
  // The earlier tool always used SSL with these three files: with no security_protocol, no ssl and
  // no sasl section, and all three present, so does webmon (and says so once at start).
  if (!s.get("security_protocol") && !ssl_field && !s.get("sasl") &&
      std::all_of(std::begin(defaults), std::end(defaults), [&](const auto& d) { return found(d.first).has_value(); })) {
    k.security_protocol = "ssl";
    for (const auto& [file, dest] : defaults) *dest = *found(file);
    r.notices.push_back("kafka: no security_protocol given and the earlier tool's key files found (" + k.ssl.ca_file +
                        ", " + k.ssl.cert_file + ", " + k.ssl.key_file + "): connecting with ssl");
  }
  const bool ssl = k.security_protocol == "ssl" || k.security_protocol == "sasl_ssl";
  const bool sasl = k.security_protocol == "sasl_plaintext" || k.security_protocol == "sasl_ssl";
  if (ssl && k.ssl.ca_file.empty() && k.ssl.cert_file.empty() && k.ssl.key_file.empty() &&
      !(ssl_field && ssl_field->value.IsMap() && ssl_field->value.size() > 0)) {
    // As the earlier tool: with TLS and no paths, the files Aiven hands out, under config/kafka/.
    const YAML::Mark mark = ssl_field ? ssl_field->key.Mark() : where;
    for (const auto& [file, dest] : defaults) {
      if (auto beside = found(file)) *dest = *beside;
      else if (auto resolved = r.existing_file(nullptr, mark, "kafka.ssl", std::string(file))) *dest = *resolved;
    }
  }
  if (const auto* coord = s.get("coordination_topic"); coord && k.coordination_topic == k.topic) {
    r.error_at(*coord, "kafka.coordination_topic", "must not be the results' topic (kafka.topic " + show(k.topic) + ")");
  }
  const auto* sasl_field = s.get("sasl");
  const YAML::Mark sasl_mark = sasl_field ? sasl_field->key.Mark() : where;
  if (sasl && k.sasl.mechanism.empty()) {
    r.add_error(sasl_mark, "kafka.sasl.mechanism", "required with security_protocol " + k.security_protocol +
                                                       " (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI)");
  }
  if (sasl && (k.sasl.mechanism == "PLAIN" || k.sasl.mechanism.starts_with("SCRAM")) &&
      (k.sasl.username.empty() || k.sasl.password.empty())) {
    r.add_error(sasl_mark, "kafka.sasl", "username and password are required with mechanism " + k.sasl.mechanism);
  }
}

void target_post(Reader& r, const Fields& s, const YAML::Mark&, const std::string& path, TargetConfig& t) {
  const auto* timeout = s.get("timeout_seconds");
  if (timeout && t.interval > nanoseconds{0} && t.timeout > t.interval) {
    r.error_at(*timeout, path + ".timeout_seconds",
               "must not exceed check_interval_seconds (" + fmt_seconds(t.interval) + "), got " + fmt_seconds(t.timeout));
  }
  if (!timeout && t.interval > nanoseconds{0}) t.timeout = std::min<nanoseconds>(std::chrono::seconds{10}, t.interval);
  if (const auto* body = s.get("body"); body && t.method != HttpMethod::post && !t.body.empty()) {
    r.error_at(*body, path + ".body", "a body is sent only with method POST");
    t.body.clear();
  }
}

void checker_post(Reader& r, const Fields& s, const YAML::Mark&, const std::string& path, CheckerSection& c) {
  if (c.threads == 0) c.threads = std::max(1u, std::thread::hardware_concurrency());
  // Static membership only with an id the file gives: the host name would make two instances on
  // one host fence each other. With a group, the id is also the group.instance.id: Kafka's rule.
  if (const auto* id = s.get("instance_id"); id && !c.instance_id.empty()) {
    if (!c.fleet_group().empty() && (c.instance_id.size() > 249 || !kafka_name_chars(c.instance_id))) {
      r.error_at(*id, Reader::child(path, "instance_id"),
                 "with checker.group (or checker.location) it is the group.instance.id: only ASCII letters, digits, "
                 "'.', '_' and '-', at most 249, are allowed: " + show(c.instance_id));
    }
    c.group_instance_id = c.instance_id;
  }
  if (c.instance_id.empty()) c.instance_id = host_name();
}

void writer_post(Reader&, const Fields&, const YAML::Mark&, const std::string&, WriterSection& w) {
  if (w.instance_id.empty()) w.instance_id = host_name();
}

// ---------------------------------------------------------------------------------------------
// The tables. Row order is the order of the allowed-keys message and of the docs.

constexpr Reload kApplied = Reload::applied;
constexpr Reload kRestart = Reload::restart;
constexpr Reload kProbe = Reload::probe;

const Table<KafkaSsl>& ssl_table() {
  static const Table<KafkaSsl> t{{
      file<&KafkaSsl::ca_file>(
          Doc("ca_file", "CA certificate(s) of the brokers (PEM); default with ssl: config/kafka/ca.pem",
              kRestart, kDaemons, "ca.pem")),
      file<&KafkaSsl::cert_file>(
          Doc("cert_file", "client certificate (PEM); default with ssl: config/kafka/service.cert",
              kRestart, kDaemons, "service.cert")),
      file<&KafkaSsl::key_file>(
          Doc("key_file", "client private key (PEM); default with ssl: config/kafka/service.key",
              kRestart, kDaemons, "service.key")),
  }};
  return t;
}

const Table<KafkaSasl>& sasl_table() {
  static const Table<KafkaSasl> t{{
      custom<&KafkaSasl::mechanism, parse_mechanism>(
          Doc("mechanism", "required with sasl_plaintext / sasl_ssl (case does not matter)",
              kRestart, kDaemons, "SCRAM-SHA-512")
              .type_text("choice")
              .schema(R"({"type": "string"})")),
      text<&KafkaSasl::username>(
          Doc("username", "required with PLAIN and SCRAM-*", kRestart, kDaemons, "webmon")),
      custom<&KafkaSasl::password, parse_password>(
          Doc("password", "required with PLAIN and SCRAM-*; masked in logs", kRestart, kDaemons, "s3cret-pass")
              .type_text("string")
              .schema(R"({"type": "string"})")),
  }};
  return t;
}

const Table<KafkaConfig>& kafka_table() {
  static const Table<KafkaConfig> t{
      {
          custom<&KafkaConfig::bootstrap_servers, parse_bootstrap>(
              Doc("bootstrap_servers", "brokers: \"host:port,host:port\" or a YAML list of host:port",
                  kRestart, kDaemons, "\"10.0.0.5:9092,10.0.0.6:9092\"")
                  .required_by(kDaemons)
                  .type_text("host:port list")
                  .schema(R"({"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]})")),
          custom<&KafkaConfig::topic, parse_topic>(
              Doc("topic", "the results' topic (1..249 of a-z A-Z 0-9 . _ -)", kRestart, kDaemons, "monitoring.checks")
                  .synonyms("metrics_topic")
                  .type_text("string")
                  .schema(R"({"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$"})")),
          integer<&KafkaConfig::topic_partitions>(
              Doc("topic_partitions", "partitions when the checker creates the topic", kRestart, kChecker, "12"),
              1, 10000),
          custom<&KafkaConfig::coordination_topic, parse_coordination_topic>(
              Doc("coordination_topic", "the topic a checker.group shares its shards on (no messages; one partition a shard)",
                  kRestart, kChecker, "monitoring.checkers")
                  .type_text("string")
                  .schema(R"({"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$"})")),
          choice<&KafkaConfig::security_protocol>(
              Doc("security_protocol", "how to reach the brokers (case does not matter)", kRestart, kDaemons, "ssl")
                  .default_text("plaintext (ssl when the earlier tool's config/kafka/ key files are all there)"),
              "plaintext,ssl,sasl_plaintext,sasl_ssl"),
          section<&KafkaConfig::ssl, ssl_table>(
              Doc("ssl", "TLS files (relative paths: working directory, then the config file's directory)",
                  kRestart, kDaemons)),
          section<&KafkaConfig::sasl, sasl_table>(
              Doc("sasl", "SASL credentials", kRestart, kDaemons)),
          custom<&KafkaConfig::properties, parse_properties>(
              Doc("properties", "any librdkafka property, checked by librdkafka; wins over the keys above",
                  kRestart, kDaemons, "{linger.ms: 50}")
                  .type_text("mapping")
                  .schema(R"({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}})")),
      },
      kafka_post};
  return t;
}

const Table<PostgresConfig>& postgres_table() {
  static const Table<PostgresConfig> t{{
      text<&PostgresConfig::uri>(
          Doc("uri", "libpq URI or key=value string; its password is masked in logs",
              kRestart, kWriter | kAdmin, "\"postgresql://webmon@db:5432/webmon\"")
              .required_by(kWriter | kAdmin),
          true),
      integer<&PostgresConfig::connect_timeout_seconds>(
          Doc("connect_timeout_seconds", "libpq connect_timeout (a value in the URI wins)",
              kRestart, kWriter | kAdmin, "30"),
          1, 3600),
      integer<&PostgresConfig::keepalives_idle_seconds>(
          Doc("keepalives_idle_seconds", "TCP keepalive idle time (a value in the URI wins)",
              kRestart, kWriter | kAdmin, "60"),
          1, 3600),
      integer<&PostgresConfig::keepalives_interval_seconds>(
          Doc("keepalives_interval_seconds", "TCP keepalive interval (a value in the URI wins)",
              kRestart, kWriter | kAdmin, "10"),
          1, 3600),
      integer<&PostgresConfig::keepalives_count>(
          Doc("keepalives_count", "TCP keepalive probes before the host counts as gone",
              kRestart, kWriter | kAdmin, "5"),
          1, 100),
      integer<&PostgresConfig::statement_timeout_ms>(
          Doc("statement_timeout_ms", "server-side statement_timeout; 0: none (a value in the URI wins)",
              kRestart, kWriter | kAdmin, "60000"),
          0, 86'400'000),
  }};
  return t;
}

const Table<TargetConfig>& target_table() {
  static const Table<TargetConfig> t{
      {
          custom<&TargetConfig::name, parse_name>(
              Doc("name", "unique, 1..128 printable ASCII; the Kafka key", kProbe, kChecker, "shop-home")
                  .required_by(kEveryone)
                  .type_text("string")
                  .schema(R"({"type": "string", "minLength": 1, "maxLength": 128})")),
          custom<&TargetConfig::url, parse_url>(
              Doc("target", "the http:// or https:// URL to probe", kProbe, kChecker, "\"https://shop.example/\"")
                  .synonyms("url")
                  .required_by(kEveryone)
                  .type_text("URL")
                  .schema(R"({"type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://"})")),
          seconds<&TargetConfig::interval>(
              Doc("check_interval_seconds", "probe every N seconds (decimals allowed)", kProbe, kChecker, "15")
                  .required_by(kEveryone),
              kMaxIntervalSeconds),
          seconds<&TargetConfig::timeout>(
              Doc("timeout_seconds", "the probe's deadline, DNS included; <= the interval", kProbe, kChecker, "5")
                  .default_text("min(10, check_interval_seconds)"),
              kMaxIntervalSeconds),
          custom<&TargetConfig::regexp_source, parse_regexp>(
              Doc("regexp", "PCRE2 pattern searched for in the body (not anchored); empty: none",
                  kProbe, kChecker, "\"Add to (cart|basket)\"")
                  .type_text("regexp")
                  .schema(R"({"type": ["string", "null"]})")),
          choice<&TargetConfig::method>(
              Doc("method", "HTTP method", kProbe, kChecker, "head"),
              "get,head,post"),
          custom<&TargetConfig::headers, parse_headers>(
              Doc("headers", "request headers (Authorization, Cookie and *token* values are masked in logs)",
                  kProbe, kChecker, "{X-Probe: webmon}")
                  .type_text("mapping")
                  .schema(R"({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}})")),
          text<&TargetConfig::body>(
              Doc("body", "request body; only with method post", kProbe, kChecker, "'{\"ping\": true}'")),
          custom<&TargetConfig::valid_status_codes, parse_status_codes>(
              Doc("valid_status_codes", "statuses that count as ok: codes and \"lo-hi\" ranges",
                  kProbe, kChecker, "[200, \"300-399\"]")
                  .default_text("[\"200-299\"]")
                  .type_text("list")
                  .schema(R"({"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "integer", "minimum": 100, "maximum": 599}, {"type": "string", "pattern": "^ *[1-5][0-9][0-9] *(- *[1-5][0-9][0-9] *)?$"}]}})")),
          boolean<&TargetConfig::follow_redirects>(
              Doc("follow_redirects", "follow 3xx Location", kProbe, kChecker, "false")),
          integer<&TargetConfig::max_redirects>(
              Doc("max_redirects", "redirects followed at most", kProbe, kChecker, "3"),
              0, 100),
          choice<&TargetConfig::ip_family>(
              Doc("ip_family", "address family to connect with", kProbe, kChecker, "ipv6"),
              "auto,ipv4,ipv6"),
          boolean<&TargetConfig::tls_verify>(
              Doc("tls_verify", "verify the certificate chain and host name", kProbe, kChecker, "false")),
          custom<&TargetConfig::ca_file, parse_ca_file>(
              Doc("ca_file", "CA bundle instead of the system's (PEM); must exist (checked by the checker only)",
                  kProbe, kChecker, "ca.pem")
                  .default_text("(the system CAs)")
                  .type_text("file")
                  .schema(R"({"type": "string", "minLength": 1})")),
          integer<&TargetConfig::max_body_bytes>(
              Doc("max_body_bytes", "body bytes read at most", kProbe, kChecker, "65536"),
              0, kMaxBodyBytesLimit),
      },
      target_post};
  return t;
}

const Table<CheckerDns>& dns_table() {
  static const Table<CheckerDns> t{{
      boolean<&CheckerDns::cache>(
          Doc("cache", "cache answers per (name, ip_family) for their TTL", kApplied, kChecker, "false")),
      integer<&CheckerDns::max_ttl_seconds>(
          Doc("max_ttl_seconds", "cap on a positive answer's TTL", kApplied, kChecker, "60"),
          0, 86'400),
      integer<&CheckerDns::negative_ttl_seconds>(
          Doc("negative_ttl_seconds", "how long NXDOMAIN / no address is cached", kApplied, kChecker, "5"),
          0, 3'600),
      custom<&CheckerDns::servers, parse_servers>(
          Doc("servers", "name servers: IP or IP:port / [v6]:port", kApplied, kChecker, "[\"10.0.0.2\", \"[fd00::53]:53\"]")
              .default_text("(those of /etc/resolv.conf)")
              .type_text("list")
              .schema(R"({"type": "array", "items": {"type": "string"}})")),
      integer<&CheckerDns::timeout_ms>(
          Doc("timeout_ms", "how long the first try waits for a server (c-ares doubles it each round)",
              kApplied, kChecker, "1000")
              .default_text("resolv.conf's `options timeout:`, else 5000"),
          1, 60'000),
      integer<&CheckerDns::attempts>(
          Doc("attempts", "rounds over the servers before a lookup gives up", kApplied, kChecker, "3")
              .default_text("resolv.conf's `options attempts:`, else 2"),
          1, 10),
  }};
  return t;
}

const Table<CheckerSection>& checker_table() {
  static const Table<CheckerSection> t{
      {
          integer<&CheckerSection::threads>(
              Doc("threads", "event-loop threads; 0: one per core", kRestart, kChecker, "24")
                  .default_text("0 (number of cores)"),
              0, 1024),
          integer<&CheckerSection::max_in_flight>(
              Doc("max_in_flight", "probes in flight at most", kRestart, kChecker, "2000"),
              1, 1'000'000),
          listen<&CheckerSection::metrics_listen>(
              Doc("metrics_listen", "/metrics, /healthz, /readyz endpoint; :port: all addresses; empty: none",
                  kRestart, kChecker, "\"127.0.0.1:9101\"")),
          custom<&CheckerSection::instance_id, parse_checker_id>(
              Doc("instance_id", "`checker` field of every result (1..255 characters); with a group, also its "
                  "group.instance.id (static membership)", kRestart, kChecker, "checker-eu-1")
                  .default_text("(the host name; with a group: dynamic membership)")
                  .type_text("string")
                  .schema(R"({"type": "string", "minLength": 1, "maxLength": 255})")),
          custom<&CheckerSection::location, parse_location>(
              Doc("location", "where the probes run from: every result's `location`; with no group, the group is "
                  "webmon-checkers-<location>", kRestart, kChecker, "eu-west")
                  .type_text("string")
                  .schema(R"({"type": "string", "pattern": "^[A-Za-z0-9._-]{0,64}$"})")),
          custom<&CheckerSection::group, parse_group>(
              Doc("group", "Kafka consumer group whose instances share the targets (shards); none: this checker "
                  "probes every target", kRestart, kChecker, "webmon-checkers-prod")
                  .default_text("(none: standalone; with a location: webmon-checkers-<location>)")
                  .type_text("string")
                  .schema(R"({"type": "string", "minLength": 1, "maxLength": 249})")),
          integer<&CheckerSection::shards>(
              Doc("shards", "partitions of kafka.coordination_topic when a checker creates it; target -> shard: "
                  "hash(name) mod shards", kRestart, kChecker, "128"),
              1, 10000),
          integer<&CheckerSection::session_timeout_ms>(
              Doc("session_timeout_ms", "Kafka session.timeout.ms of the group: how long a silent instance keeps "
                  "its shards", kRestart, kChecker, "6000"),
              1000, 3'600'000),
          boolean<&CheckerSection::per_target_metrics>(
              Doc("per_target_metrics", "per-target gauges on /metrics", kRestart, kChecker, "true")),
          integer<&CheckerSection::max_body_memory_bytes>(
              Doc("max_body_memory_bytes", "body bytes held for regexp searches over all probes",
                  kApplied, kChecker, "67108864"),
              1 << 20, std::int64_t{1} << 40),
          section<&CheckerSection::dns, dns_table>(
              Doc("dns", "how host names are resolved (c-ares)", kApplied, kChecker)),
      },
      checker_post};
  return t;
}

const Table<WriterSection>& writer_table() {
  static const Table<WriterSection> t{
      {
          text<&WriterSection::group_id>(
              Doc("group_id", "Kafka consumer group", kRestart, kWriter, "webmon-writer-prod"),
              true),
          integer<&WriterSection::batch_max_rows>(
              Doc("batch_max_rows", "rows per transaction at most", kRestart, kWriter, "20000"),
              1, 1'000'000),
          integer<&WriterSection::batch_max_ms>(
              Doc("batch_max_ms", "a batch is written after this long at most", kRestart, kWriter, "1000"),
              1, 60'000),
          integer<&WriterSection::retention_days>(
              Doc("retention_days", "daily partitions older than this are dropped", kRestart, kWriter, "90")
                  .default_text("(keep everything)"),
              1, 36'500),
          integer<&WriterSection::compact_after_days>(
              Doc("compact_after_days", "days before today minus this many (UTC) are compacted to one row per "
                  "target and day, in the background; 0: never (`webmon compact` then uses 2)",
                  kRestart, kWriter | kAdmin, "7"),
              0, 36'500),
          listen<&WriterSection::metrics_listen>(
              Doc("metrics_listen", "/metrics, /healthz, /readyz endpoint; :port: all addresses; empty: none",
                  kRestart, kWriter, "\"127.0.0.1:9102\"")),
          custom<&WriterSection::instance_id, parse_writer_id>(
              Doc("instance_id", "group.instance.id (static membership): letters, digits, . _ -",
                  kRestart, kWriter, "writer-2")
                  .default_text("(the host name)")
                  .type_text("string")
                  .schema(R"({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,249}$"})")),
      },
      writer_post};
  return t;
}

void parse_targets(Reader& r, const Field& f, const std::string& path, Config& c) {
  if (!f.value.IsSequence()) return r.error_at(f, path, "expected a list of targets, got " + kind_name(f.value));
  c.targets.reserve(f.value.size());
  for (std::size_t i = 0; i < f.value.size(); ++i) {
    const Node node = f.value[i];
    const std::string item = path + "[" + std::to_string(i) + "]";
    if (!node.IsMap()) {
      r.add_error(node.Mark().is_null() ? f.key.Mark() : node.Mark(), item,
                  "expected a mapping with name, target and check_interval_seconds, got " + kind_name(node));
      continue;
    }
    const auto before = r.error_count();
    TargetConfig t;
    read_map(r, node, node.Mark(), item, target_table(), t);
    if (r.error_count() == before) c.targets.push_back(std::move(t));
  }
}

// The targets row: a list of target tables, compared target by target on reload.
Row<Config> targets_row() {
  Row<Config> r;
  r.d = Doc("targets", "the sites to probe; empty or null: none (a reload may add some)", kProbe, kChecker, {}).required_by(kChecker).type_text("list of targets").schema(R"({"type": ["array", "null"]})").null_is_empty(true);
  r.parse = [](Reader& rd, const Field* f, const YAML::Mark&, const std::string& path, Config& c, const Row<Config>&) {
    if (f) parse_targets(rd, *f, path, c);
  };
  r.diff = [](const Config& a, const Config& b, const std::string& path, const Row<Config>& row,
              std::vector<KeyChange>& out) {
    std::vector<KeyChange> keys;
    for (std::size_t i = 0; i < std::min(a.targets.size(), b.targets.size()); ++i) {
      diff_rows(target_table(), a.targets[i], b.targets[i], path + "[]", keys);
    }
    if (a.targets.size() != b.targets.size()) out.push_back({path, row.d.reload, row.d.used_by});
    for (auto& k : keys) {
      if (std::none_of(out.begin(), out.end(), [&](const KeyChange& o) { return o.path == k.path; })) out.push_back(std::move(k));
    }
  };
  r.info = [](const Row<Config>& row, const std::string& path, std::vector<KeyInfo>& out) {
    auto k = base_info(row.d, row.kind, 0, 0, {}, path);
    k.section = true;
    k.default_value = "(none)";
    out.push_back(std::move(k));
    info_rows(target_table(), path + "[]", out);
  };
  r.is_default = [](const Config& c) { return c.targets.empty(); };
  return r;
}

// A checker group that is also the writer's would mix two topics and two assignors in one group.
void config_post(Reader& r, const Fields& s, const YAML::Mark& where, const std::string&, Config& c) {
  if (c.checker.fleet_group().empty() || c.checker.fleet_group() != c.writer.group_id) return;
  YAML::Mark mark = where;
  if (const auto* checker = s.get("checker"); checker && checker->value.IsMap()) {
    mark = checker->key.Mark();
    for (std::size_t i = 0; i < checker->value.size(); ++i) {
      if (checker->value.key(i).IsScalar() && checker->value.key(i).Scalar() == "group") mark = checker->value.value(i).Mark();
    }
  }
  r.add_error(mark, "checker.group",
              "must differ from writer.group_id (" + show(c.writer.group_id) + "): the checkers' group shares "
              "kafka.coordination_topic, the writers' consumes kafka.topic");
}

const Table<IncidentsSection>& incidents_table() {
  static const Table<IncidentsSection> t{{
      integer<&IncidentsSection::open_after>(
          Doc("open_after", "consecutive failed checks that open an incident", kRestart, kAdmin, "3"), 1, 10'000),
      integer<&IncidentsSection::close_after>(
          Doc("close_after", "consecutive successful checks that close it", kRestart, kAdmin, "2"), 1, 10'000),
  }};
  return t;
}

const Table<Config>& config_table() {
  static const Table<Config> t{{
      section<&Config::kafka, kafka_table>(
          Doc("kafka", "where results go (checker) and come from (writer)", kRestart, kDaemons)),
      section<&Config::postgres, postgres_table>(
          Doc("postgres", "the database of the writer and the CLI", kRestart, kWriter | kAdmin)),
      targets_row(),
      section<&Config::checker, checker_table>(
          Doc("checker", "webmon-checker's own settings", kRestart, kChecker)),
      section<&Config::writer, writer_table>(
          Doc("writer", "webmon-writer's own settings", kRestart, kWriter)),
      section<&Config::incidents, incidents_table>(
          Doc("incidents", "when runs of failed checks are incidents (webmon incidents)", kRestart, kAdmin)),
      choice<&Config::log_format>(
          Doc("log_format", "log lines on stderr: text or one JSON object per line", kApplied, kEveryone, "json"),
          "text,json"),
  }, config_post};
  return t;
}

ConfigLoad load(std::string_view yaml, const fs::path& file, Component component, const EnvLookup& env) {
  Reader r(file, component, env);
  Config cfg;
  cfg.source = file;
  std::unique_ptr<yaml::Tree> tree;
  try {
    tree = std::make_unique<yaml::Tree>(yaml);
  } catch (const YAML::ParserException& e) {
    r.add_error(e.mark, "", "YAML syntax: " + e.msg);
  }
  const Node root = tree ? tree->root() : Node();
  if (tree && (!root.IsDefined() || root.IsNull())) {
    r.add_error(YAML::Mark(), "", "the file is empty; it needs at least " + r.required_sections());
  } else if (tree && !root.IsMap()) {
    r.add_error(root.Mark(), "", "expected a mapping of sections (kafka, postgres, targets, ...), got " + kind_name(root));
  } else if (tree) {
    read_map(r, root, root.Mark(), "", config_table(), cfg);
  }
  ConfigLoad out;
  out.errors = r.take_errors();
  cfg.notices = std::move(r.notices);
  if (out.errors.empty()) out.config = std::move(cfg);
  return out;
}

}  // namespace
}  // namespace config_detail

bool TargetConfig::same_probe(const TargetConfig& o) const noexcept {
  std::vector<KeyChange> changes;
  config_detail::diff_rows(config_detail::target_table(), *this, o, "", changes);
  return changes.empty();
}

const std::vector<KeyInfo>& config_keys() {
  static const std::vector<KeyInfo> keys = [] {
    std::vector<KeyInfo> out;
    config_detail::info_rows(config_detail::config_table(), "", out);
    return out;
  }();
  return keys;
}

std::vector<KeyChange> changed_keys(const Config& before, const Config& after) {
  std::vector<KeyChange> out;
  config_detail::diff_rows(config_detail::config_table(), before, after, "", out);
  return out;
}

ConfigLoad parse_config(std::string_view yaml, const std::filesystem::path& file_name, Component component,
                        const EnvLookup& env) {
  return config_detail::load(yaml, file_name, component, env);
}

}  // namespace webmon
