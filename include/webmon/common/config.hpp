// webmon's configuration: plain structs with their defaults in the struct, parsed once from
// config.yml, validated completely (every error, each with file:line:col and key path), and then
// immutable. A reload builds a whole new Config and swaps it in; a failed one keeps the old.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "webmon/common/http_url.hpp"
#include "webmon/common/logging.hpp"
#include "webmon/common/regex.hpp"

namespace webmon {

enum class HttpMethod { get, head, post };
enum class IpFamily { any, v4, v6 };  // written `auto`, `ipv4`, `ipv6`
std::string_view ip_family_name(IpFamily f) noexcept;  // "auto", "ipv4", "ipv6"

// One entry of `valid_status_codes`: a code (lo == hi) or a range like 200-299.
struct StatusRange {
  int lo = 200;
  int hi = 299;
  bool operator==(const StatusRange&) const = default;
};

struct TargetConfig {
  std::string name;                      // unique, 1..128 ASCII characters; the Kafka key
  std::string url;                       // `target` (or `url`) as written, http:// or https://
  HttpUrl parsed_url;                    // url, parsed once at load
  std::chrono::nanoseconds interval{};   // check_interval_seconds (int or float), > 0
  std::chrono::nanoseconds timeout{};    // timeout_seconds; default min(10 s, interval); <= interval
  std::string regexp_source;             // empty: no regexp
  std::shared_ptr<const Regex> regexp;   // compiled at load (JIT only in the checker); null without regexp
  HttpMethod method = HttpMethod::get;
  std::vector<std::pair<std::string, std::string>> headers;  // in file order
  std::string body;
  std::vector<StatusRange> valid_status_codes{{200, 299}};
  bool follow_redirects = true;
  int max_redirects = 10;
  IpFamily ip_family = IpFamily::any;
  bool tls_verify = true;
  std::string ca_file;                   // empty: the system CAs; checked to exist by the checker only
  std::size_t max_body_bytes = 1024 * 1024;

  bool status_is_valid(int status) const noexcept;
  // Equal in every key of the target table (all of them are probe settings; the compiled regexp
  // is compared by its source).
  bool same_probe(const TargetConfig& other) const noexcept;
};

struct KafkaSsl {
  std::string ca_file;    // with security_protocol ssl|sasl_ssl and no paths: config/kafka/ca.pem
  std::string cert_file;  //   ... config/kafka/service.cert
  std::string key_file;   //   ... config/kafka/service.key
};

struct KafkaSasl {
  std::string mechanism;  // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
  std::string username;
  std::string password;
};

struct KafkaConfig {
  std::string bootstrap_servers;  // "host1:port1,host2:port2"
  std::string topic = "webmon.checks";
  int topic_partitions = 6;
  // The checkers' group (checker.group) subscribes to it; it holds no messages, its partitions are
  // the shards (created with checker.shards partitions when missing).
  std::string coordination_topic = "webmon.checkers";
  std::string security_protocol = "plaintext";  // plaintext, ssl, sasl_plaintext, sasl_ssl
  KafkaSsl ssl;
  KafkaSasl sasl;
  std::vector<std::pair<std::string, std::string>> properties;  // handed to librdkafka as is
};

// Deadlines for every PostgreSQL session of the writer and the CLI; a value given in the URI wins.
struct PostgresConfig {
  std::string uri;  // libpq URI or key=value string
  int connect_timeout_seconds = 10;     // libpq connect_timeout
  int keepalives_idle_seconds = 10;     // TCP keepalives: a vanished host is noticed after
  int keepalives_interval_seconds = 5;  //   idle + interval x count (25 s by default)
  int keepalives_count = 3;
  int statement_timeout_ms = 20000;     // server side; 0: none
};

// checker.dns: how the checker resolves host names (c-ares on each shard's event loop).
struct CheckerDns {
  bool cache = true;                 // answers cached per (name, ip_family) for their TTL
  int max_ttl_seconds = 300;         // cap on a positive answer's TTL
  int negative_ttl_seconds = 30;     // how long NXDOMAIN / no address of the family is cached
  std::vector<std::string> servers;  // "ip" or "ip:port" / "[v6]:port"; empty: /etc/resolv.conf's
  int timeout_ms = 0;                // first try's; 0: resolv.conf's `options timeout:` (else 5 s)
  int attempts = 0;                  // rounds over the servers; 0: resolv.conf's `attempts:` (else 2)
  bool operator==(const CheckerDns&) const = default;
};

struct CheckerSection {
  unsigned threads = 0;             // 0 in the struct means: number of cores (resolved at load)
  std::size_t max_in_flight = 10000;
  std::string metrics_listen;       // host:port; empty: no metrics endpoint
  std::string instance_id;          // default: the host name (resolved at load)
  // Where the probes run from, in every result's `location`; empty: none. With a location and no
  // group, the group is webmon-checkers-<location>.
  std::string location;
  // The Kafka consumer group the fleet of checkers shares the targets in, as given; see fleet_group().
  std::string group;
  int shards = 64;                  // partitions of kafka.coordination_topic when the checker creates it
  int session_timeout_ms = 10000;   // session.timeout.ms: how long a silent instance keeps its shards
  // group.instance.id (static membership): instance_id when it was given in the file; empty (the
  // host name is not unique enough: two instances on one host) means dynamic membership.
  std::string group_instance_id;
  bool per_target_metrics = false;
  // Bodies held for regexp searches, over all probes at once (each holds about 64 KiB plus what
  // a match may still need); a probe that finds no room says so in its result.
  std::size_t max_body_memory_bytes = 256u * 1024 * 1024;
  CheckerDns dns;

  // The group this checker joins: `group`, else webmon-checkers-<location> with a location, else
  // empty: standalone (this checker probes every target).
  std::string fleet_group() const { return !group.empty() ? group : location.empty() ? "" : "webmon-checkers-" + location; }
};

struct WriterSection {
  std::string group_id = "webmon-writer";
  std::string instance_id;  // group.instance.id (static membership); default: the host name (resolved at load)
  std::size_t batch_max_rows = 5000;
  std::chrono::milliseconds batch_max_ms{500};
  std::optional<int> retention_days;  // none: keep everything
  // Days before today - compact_after_days (UTC) are compacted in the background; 0: never.
  int compact_after_days = 2;
  std::string metrics_listen;
};

// When runs of failed checks are incidents (`webmon incidents`; sql/005_incidents.sql).
struct IncidentsSection {
  int open_after = 2;   // consecutive failed checks that open an incident
  int close_after = 1;  // consecutive successful checks that close it
};

struct Config {
  std::filesystem::path source;  // the file it came from
  KafkaConfig kafka;
  PostgresConfig postgres;
  std::vector<TargetConfig> targets;
  CheckerSection checker;
  WriterSection writer;
  IncidentsSection incidents;
  LogFormat log_format = LogFormat::text;
  // What the loader decided on its own that the daemon logs once at start (e.g. SSL taken from the
  // earlier tool's key files); not compared on reload.
  std::vector<std::string> notices;
};

// One problem in a config file, e.g. "config.yml:12:5: targets[3].check_interval_seconds: must be > 0".
struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error is about the file as a whole
  int column = 0;  // 1-based
  std::string key; // key path, e.g. "targets[3].regexp", "kafka.properties.linger.ms"
  std::string message;
  std::string to_string() const;
};

// What a component requires of the file: the checker needs kafka and targets, the writer kafka and
// postgres, the admin CLI postgres. Sections a component does not need are still validated, except
// what only the checker's probes use: the writer and the CLI do not JIT-compile the targets' regexps
// (the interpreter's compile checks them) nor look for their ca_file (`webmon-checker --check-config`
// does both).
enum class Component { checker, writer, admin };

struct ConfigLoad {
  std::optional<Config> config;     // set when errors is empty
  std::vector<ConfigError> errors;  // every error found, in file order
  bool ok() const noexcept { return errors.empty(); }
};

// Looks up an environment variable for ${VAR} substitution; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;
EnvLookup process_env();

ConfigLoad load_config(const std::filesystem::path& file, Component component,
                       const EnvLookup& env = process_env());
// Same, from text; `file_name` is only used in messages and to resolve relative paths.
ConfigLoad parse_config(std::string_view yaml, const std::filesystem::path& file_name,
                        Component component, const EnvLookup& env = process_env());

// --config, else $WEBMON_CONFIG, else $WEBSITE_MONITOR_CONFIG_PATH/config.yml (the earlier tool's
// variable, a directory), else ./config/config.yml.
std::filesystem::path resolve_config_path(std::optional<std::string_view> from_flag);

}  // namespace webmon
