// Where the tests find the local stack that scripts/stack started (real Kafka, real PostgreSQL),
// and small helpers for tests that talk to it.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace webmon::test {

// $WEBMON_TEST_KAFKA, else 127.0.0.1:$KAFKA_PORT (default 9092).
std::string kafka_bootstrap();
// The stack's TLS listeners (scripts/stack): SSL with client certificates required, and SASL_SSL
// (SCRAM-SHA-512 and PLAIN). $WEBMON_TEST_KAFKA_SSL, else 127.0.0.1:$KAFKA_SSL_PORT, else
// 127.0.0.1:(KAFKA_PORT + 2); $WEBMON_TEST_KAFKA_SASL, else $KAFKA_SASL_PORT, else KAFKA_PORT + 3.
std::string kafka_ssl_bootstrap();
std::string kafka_sasl_bootstrap();
// Its SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; the same user):
// $WEBMON_TEST_KAFKA_SASL_PLAINTEXT, else $KAFKA_SASL_PLAINTEXT_PORT, else KAFKA_PORT + 4.
std::string kafka_sasl_plaintext_bootstrap();
// $WEBMON_STACK_DIR, else .stack/ in the source tree (scripts/stack's default).
std::filesystem::path stack_dir();
// The CA and the client certificate scripts/stack made, in the earlier tool's file names:
// ca.pem, service.cert, service.key (stack_dir()/kafka/tls).
std::filesystem::path kafka_tls_dir();
// The SASL user on the SASL_SSL and SASL_PLAINTEXT listeners and its password
// (stack_dir()/kafka/sasl/{username,password});
// throws naming the file when scripts/stack has not made it.
std::string kafka_sasl_username();
std::string kafka_sasl_password();
// $WEBMON_TEST_PG_URI, else postgresql://webmon:webmon@127.0.0.1:$PG_PORT/webmon (default 5432).
std::string postgres_uri();

// A name unique to this test run (prefix + pid + counter + time), for topics, groups, databases.
std::string unique_name(const std::string& prefix);

// A fresh directory under the build tree's tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// Polls `done` every `every` until it is true or `limit` has passed; returns its last value.
// For waiting on real servers: the limit is generous on purpose, never an assertion about speed.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(60),
                std::chrono::milliseconds every = std::chrono::milliseconds(50));

// How often `needle` occurs in `text` (assignments in a log, runs in a report, ...).
std::size_t occurrences(std::string_view text, std::string_view needle);

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
unsigned short free_port();

}  // namespace webmon::test
