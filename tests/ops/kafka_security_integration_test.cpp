// Integration (real Kafka and PostgreSQL from scripts/stack; the real webmon-checker and
// webmon-writer binaries): results reach check_results through the broker's TLS listeners, as
// users of a managed Kafka run webmon:
//   - SSL with client certificates (ssl.client.auth=required), with the CA, certificate and key
//     scripts/stack made in the earlier tool's names (ca.pem, service.cert, service.key);
//   - SASL_SSL and SASL_PLAINTEXT with a password from ${ENV} that no log line of either daemon
//     shows, even at --log-level debug: PLAIN over each, SCRAM-SHA-512 over sasl_ssl and
//     SCRAM-SHA-256 over sasl_plaintext (see expect_scram below for Debian 12's librdkafka);
//   - a client certificate the broker's CA did not sign, and none at all: the daemons say so in
//     their logs, keep running and stop cleanly;
//   - the earlier tool's config directory as it was: config.yml with no security_protocol and
//     kafka/ca.pem, service.cert, service.key beside it, found through $WEBSITE_MONITOR_CONFIG_PATH.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <pqxx/pqxx>

#include "support/database.hpp"
#include "support/http_site.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/common/config.hpp"
#include "webmon/common/kafka.hpp"

namespace {

using namespace std::chrono_literals;
using webmon::test::ChildProcess;
using webmon::test::TempDir;

// The topic the checker creates, deleted afterwards through the PLAINTEXT listener.
class TopicName {
 public:
  TopicName() : name_(webmon::test::unique_name("sec")) {}
  ~TopicName() {
    try {
      webmon::KafkaConfig cfg;
      cfg.bootstrap_servers = webmon::test::kafka_bootstrap();
      auto rk = webmon::kafka::new_handle(RD_KAFKA_PRODUCER, webmon::kafka::make_conf(cfg, {}));
      webmon::kafka::delete_topic(rk.get(), name_, 15000);
    } catch (const std::exception& e) {
      std::cerr << "deleting topic " << name_ << ": " << e.what() << "\n";  // never created: fine
    }
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

std::string tls_file(const std::string& name) { return (webmon::test::kafka_tls_dir() / name).string(); }

// One file for both daemons: the kafka section under test, the site probed every second.
std::string config_text(const std::string& kafka_section, const std::string& topic, const std::string& pg_uri,
                        const std::string& url) {
  return "kafka:\n" + kafka_section + "  topic: " + topic + "\n  topic_partitions: 1\n" +
         "postgres:\n  uri: \"" + pg_uri + "\"\n" +
         "writer:\n  group_id: " + topic + "\n  batch_max_ms: 200\n" +
         "checker:\n  instance_id: sec-checker\n" +
         "targets:\n  - name: ok-site\n    target: \"" + url +
         "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.8\n";
}

std::string ssl_section(const std::string& ca, const std::string& cert, const std::string& key) {
  std::string s = "  bootstrap_servers: \"" + webmon::test::kafka_ssl_bootstrap() +
                  "\"\n  security_protocol: ssl\n  ssl:\n    ca_file: \"" + ca + "\"\n";
  if (!cert.empty()) s += "    cert_file: \"" + cert + "\"\n";
  if (!key.empty()) s += "    key_file: \"" + key + "\"\n";
  return s;
}

// The stack's listener for `protocol` (sasl_ssl: with the stack's CA; sasl_plaintext: no TLS).
std::string sasl_section(const std::string& protocol, const std::string& mechanism, const std::string& password_var) {
  const bool tls = protocol == "sasl_ssl";
  std::string s = "  bootstrap_servers: \"" +
                  (tls ? webmon::test::kafka_sasl_bootstrap() : webmon::test::kafka_sasl_plaintext_bootstrap()) +
                  "\"\n  security_protocol: " + protocol + "\n";
  if (tls) s += "  ssl:\n    ca_file: \"" + tls_file("ca.pem") + "\"\n";
  return s + "  sasl:\n    mechanism: " + mechanism + "\n    username: \"" + webmon::test::kafka_sasl_username() +
         "\"\n    password: \"${" + password_var + "}\"\n";
}

std::vector<std::string> daemon_args(const char* binary, const std::filesystem::path& config) {
  std::vector<std::string> args{binary, "--log-level", "debug"};
  if (!config.empty()) args.insert(args.end(), {"--config", config.string()});
  return args;
}

// The checker and the writer on one config (none: they look for it themselves), at
// --log-level debug, with `env` added.
struct Daemons {
  Daemons(const TempDir& dir, const std::filesystem::path& config, const std::vector<std::string>& env)
      : writer(daemon_args(WEBMON_WRITER_BIN, config), dir.path() / "writer.log", env),
        checker(daemon_args(WEBMON_CHECKER_BIN, config), dir.path() / "checker.log", env) {}
  std::string logs() const { return "--- checker:\n" + checker.log() + "\n--- writer:\n" + writer.log(); }
  // SIGTERM to each; both exit 0.
  void stop() {
    checker.signal(SIGTERM);
    EXPECT_EQ(checker.wait_for_exit(60s), std::optional<int>(0)) << checker.log();
    writer.signal(SIGTERM);
    EXPECT_EQ(writer.wait_for_exit(60s), std::optional<int>(0)) << writer.log();
  }
  ChildProcess writer;
  ChildProcess checker;
};

long long rows_for(const webmon::test::TestDatabase& db, const std::string& where = "") {
  try {
    pqxx::connection conn(db.uri());
    pqxx::nontransaction tx(conn);
    if (!tx.exec1("SELECT to_regclass('check_results') IS NOT NULL")[0].as<bool>()) return 0;
    return tx.exec1("SELECT count(*) FROM check_results WHERE target = 'ok-site'" + where)[0].as<long long>();
  } catch (const std::exception&) {
    return 0;  // the writer is still creating the schema
  }
}

// The site's results, written by the checker, read by the writer, are in check_results: at least
// three, every one a 200 that the checker called ok.
void expect_results_arrive(const webmon::test::TestDatabase& db, const webmon::test::HttpSite& site,
                           const Daemons& d) {
  ASSERT_TRUE(webmon::test::eventually([&] { return rows_for(db) >= 3; }, 120s))
      << "site hits " << site.hits("/ok") << "\n" << d.logs();
  EXPECT_EQ(rows_for(db, " AND (NOT ok OR http_status IS DISTINCT FROM 200 OR error IS NOT NULL)"), 0)
      << d.logs();
}

// No line of either log holds the secret.
void expect_not_in_logs(const Daemons& d, const std::string& secret) {
  ASSERT_GE(secret.size(), 8u);
  for (const auto* log : {&d.checker, &d.writer}) {
    std::istringstream in(log->log());
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
      ++lines;
      EXPECT_EQ(line.find(secret), std::string::npos) << log->log_file() << ": the password in: " << line;
    }
    EXPECT_GT(lines, 0) << log->log_file() << " is empty";
  }
}

TEST(KafkaSecurity, SslWithClientCertificatesInTheEarlierToolsFileNames) {
  webmon::test::HttpSite site;
  webmon::test::TestDatabase db;
  TempDir dir;
  TopicName topic;
  const auto config = dir.write(
      "config.yml", config_text(ssl_section(tls_file("ca.pem"), tls_file("service.cert"), tls_file("service.key")),
                                topic.name(), db.uri(), site.url("/ok")));
  Daemons d(dir, config, {});
  expect_results_arrive(db, site, d);
  d.stop();
}

// PLAIN over `protocol`, the password from ${WEBMON_TEST_SASL_PASSWORD}: the results arrive, and
// neither log shows the password.
void expect_plain_results(const std::string& protocol) {
  webmon::test::HttpSite site;
  webmon::test::TestDatabase db;
  TempDir dir;
  TopicName topic;
  const auto password = webmon::test::kafka_sasl_password();
  const auto config = dir.write("config.yml", config_text(sasl_section(protocol, "PLAIN", "WEBMON_TEST_SASL_PASSWORD"),
                                                          topic.name(), db.uri(), site.url("/ok")));
  Daemons d(dir, config, {"WEBMON_TEST_SASL_PASSWORD=" + password});
  expect_results_arrive(db, site, d);
  d.stop();
  expect_not_in_logs(d, password);
}

TEST(KafkaSecurity, SaslSslPlainWithAPasswordFromTheEnvironmentThatNoLogLineShows) {
  expect_plain_results("sasl_ssl");
}

TEST(KafkaSecurity, SaslPlaintextPlainWithAPasswordFromTheEnvironmentThatNoLogLineShows) {
  expect_plain_results("sasl_plaintext");
}

// The earlier tool's users have a directory with config.yml and kafka/{ca.pem,service.cert,
// service.key} (the files a managed Kafka hands out) and name it in $WEBSITE_MONITOR_CONFIG_PATH;
// the config says nothing about security, that tool always used SSL. webmon connects with ssl
// with those files, and each daemon says so once at start.
TEST(KafkaSecurity, TheEarlierToolsConfigDirectoryWithItsKeyFilesConnectsWithSsl) {
  webmon::test::HttpSite site;
  webmon::test::TestDatabase db;
  TempDir dir;
  TopicName topic;
  const auto config_dir = dir.path() / "website-monitor" / "config";
  std::filesystem::create_directories(config_dir / "kafka");
  for (const auto* name : {"ca.pem", "service.cert", "service.key"}) {
    std::filesystem::copy_file(webmon::test::kafka_tls_dir() / name, config_dir / "kafka" / name);
  }
  {
    std::ofstream out(config_dir / "config.yml");
    out << config_text("  bootstrap_servers: \"" + webmon::test::kafka_ssl_bootstrap() + "\"\n", topic.name(),
                       db.uri(), site.url("/ok"));
  }
  Daemons d(dir, {}, {"WEBSITE_MONITOR_CONFIG_PATH=" + config_dir.string()});
  expect_results_arrive(db, site, d);
  const std::string notice = "kafka: no security_protocol given and the earlier tool's key files found (" +
                             (config_dir / "kafka" / "ca.pem").string();
  EXPECT_NE(d.checker.log().find(notice), std::string::npos) << d.checker.log();
  EXPECT_NE(d.writer.log().find(notice), std::string::npos) << d.writer.log();
  EXPECT_NE(d.checker.log().find("): connecting with ssl"), std::string::npos) << d.checker.log();
  d.stop();
}

// librdkafka before 2.6.1 (Debian 12 ships 2.0.2) sends a wrong nonce in SCRAM's client-final
// message, which Kafka 4 refuses (librdkafka PR #4895; Kafka 4's ScramSaslServer compares the
// nonce exactly). So with the library this is built on, SCRAM to the stack's Kafka 4.1 cannot log
// in, and what is asserted is what a user then sees: the daemons name the SASL failure, keep
// running, nothing arrives, no log line shows the password. With librdkafka 2.6.1 or later the
// results must arrive. The same for both SCRAM mechanisms, over either protocol.
void expect_scram(const std::string& protocol, const std::string& mechanism) {
  webmon::test::HttpSite site;
  webmon::test::TestDatabase db;
  TempDir dir;
  TopicName topic;
  const auto password = webmon::test::kafka_sasl_password();
  const auto config = dir.write(
      "config.yml", config_text(sasl_section(protocol, mechanism, "WEBMON_TEST_SCRAM_PASSWORD"), topic.name(),
                                db.uri(), site.url("/ok")));
  Daemons d(dir, config, {"WEBMON_TEST_SCRAM_PASSWORD=" + password});
  const bool scram_works_with_kafka4 = rd_kafka_version() >= 0x020601ff;
  std::cout << "librdkafka " << rd_kafka_version_str() << ": " << mechanism << " over " << protocol << " with Kafka 4 "
            << (scram_works_with_kafka4 ? "works: expecting the results" : "fails (before 2.6.1): expecting the "
                                                                            "failure in the logs")
            << std::endl;
  if (scram_works_with_kafka4) {
    expect_results_arrive(db, site, d);
  } else {
    const std::string said = "invalid credentials with SASL mechanism " + mechanism;
    ASSERT_TRUE(webmon::test::eventually(
        [&] {
          return d.checker.log().find(said) != std::string::npos && d.writer.log().find(said) != std::string::npos;
        },
        90s))
        << d.logs();
    ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/ok") >= 3; }, 60s)) << d.logs();
    EXPECT_TRUE(d.checker.running()) << d.logs();
    EXPECT_TRUE(d.writer.running()) << d.logs();
    EXPECT_EQ(rows_for(db), 0) << d.logs();
  }
  d.stop();
  expect_not_in_logs(d, password);
}

TEST(KafkaSecurity, SaslSslScramSha512WithAPasswordFromTheEnvironmentThatNoLogLineShows) {
  expect_scram("sasl_ssl", "SCRAM-SHA-512");
}

TEST(KafkaSecurity, SaslPlaintextScramSha256WithAPasswordFromTheEnvironmentThatNoLogLineShows) {
  expect_scram("sasl_plaintext", "SCRAM-SHA-256");
}

// A key pair and a self-signed certificate that the stack's CA never signed.
std::pair<std::string, std::string> foreign_client_certificate(const TempDir& dir) {
  const auto cert = (dir.path() / "foreign.cert").string();
  const auto key = (dir.path() / "foreign.key").string();
  const auto [status, out] = webmon::test::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                                        "-keyout", key, "-out", cert, "-days", "2", "-subj",
                                                        "/CN=not-signed-by-the-stack-ca"});
  EXPECT_EQ(status, 0) << out;
  return {cert, key};
}

// The daemons on a config whose client side the SSL listener refuses: each names the TLS failure
// (librdkafka's words: the broker's alert) and the listener, keeps running, and stops with 0.
void expect_refused(const std::string& cert, const std::string& key, const std::string& alert) {
  webmon::test::HttpSite site;
  webmon::test::TestDatabase db;
  TempDir dir;
  TopicName topic;
  const auto config = dir.write("config.yml", config_text(ssl_section(tls_file("ca.pem"), cert, key), topic.name(),
                                                          db.uri(), site.url("/ok")));
  Daemons d(dir, config, {});
  const auto names_it = [&](const ChildProcess& p) {
    const auto log = p.log();
    return log.find(alert) != std::string::npos &&
           log.find("ssl://" + webmon::test::kafka_ssl_bootstrap()) != std::string::npos;
  };
  ASSERT_TRUE(webmon::test::eventually([&] { return names_it(d.checker) && names_it(d.writer); }, 90s)) << d.logs();
  ASSERT_TRUE(webmon::test::eventually([&] { return site.hits("/ok") >= 3; }, 60s)) << d.logs();
  EXPECT_TRUE(d.checker.running()) << d.logs();
  EXPECT_TRUE(d.writer.running()) << d.logs();
  EXPECT_EQ(rows_for(db), 0) << d.logs();
  d.stop();
}

TEST(KafkaSecurity, AClientCertificateNotSignedByTheCaIsRefusedAndTheLogsSaySo) {
  TempDir certs;
  const auto [cert, key] = foreign_client_certificate(certs);
  expect_refused(cert, key, "alert certificate unknown");
}

TEST(KafkaSecurity, NoClientCertificateIsRefusedAndTheLogsSaySo) {
  expect_refused("", "", "alert bad certificate");
}

}  // namespace
