// What the writer's integration and fault tests share: a fresh database per test, a unique topic
// and group, a librdkafka producer, the real webmon-writer binary with a temporary config, and
// the queries that count rows, duplicates and dead letters.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/database.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/common/check_result.hpp"
#include "webmon/common/kafka.hpp"

namespace webmon::writer::test {

using webmon::test::TestDatabase;  // tests/support/database.hpp

// A deterministic, valid result for message number i: a target among `targets`, scheduled_at
// unique per i, so that (target, scheduled_at) identifies a message and repeats are duplicates.
CheckResult make_check(std::int64_t i, int targets = 50);

class Producer {
 public:
  Producer();
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;
  // Creates the topic with `partitions` partitions.
  void create_topic(const std::string& topic, int partitions);
  // key/value: nullopt produces a null key or value. With the schema header when `header` is set.
  void produce(const std::string& topic, const std::optional<std::string>& key,
               const std::optional<std::string>& value, bool header = true, std::int32_t partition = -1);
  void flush();  // every message delivered (throws on a delivery error)
  // Moves the partition's log start offset to `before` with the admin API's DeleteRecords, as
  // retention moves it: the messages before it are gone (throws if the broker refuses).
  void delete_records_before(const std::string& topic, std::int32_t partition, std::int64_t before);
  // Grows the topic to `total` partitions with the admin API's CreatePartitions, as
  // `kafka-topics.sh --alter --partitions` does, and waits until the broker's metadata shows them.
  void add_partitions(const std::string& topic, int total);

 private:
  kafka::HandlePtr rk_;
};

// A unique topic name, and the topic (created by whoever uses it first) deleted afterwards, so
// that test runs do not pile up topics and data in the shared Kafka.
class TestTopic {
 public:
  explicit TestTopic(const std::string& prefix);
  ~TestTopic();
  TestTopic(const TestTopic&) = delete;
  TestTopic& operator=(const TestTopic&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

struct WriterOptions {
  std::size_t batch_max_rows = 5000;
  int batch_max_ms = 200;
  std::string instance_id;  // writer.instance_id; empty: the default (the host name), as users get it
  std::vector<std::pair<std::string, std::string>> kafka_properties;  // kafka.properties; none by default
  std::optional<int> retention_days;
  unsigned short metrics_port = 0;  // 0: no metrics endpoint
  std::string bootstrap;            // empty: the stack's Kafka
  std::string log_level = "info";   // --log-level
};

// The real webmon-writer with a config written into `dir`.
class Writer {
 public:
  Writer(const std::filesystem::path& dir, const std::string& name, const std::string& topic,
         const std::string& group, const std::string& pg_uri, const WriterOptions& options = {},
         std::vector<std::string> env = {});
  webmon::test::ChildProcess& process() { return *process_; }
  // SIGTERM, then the exit status (nullopt if it did not exit in time).
  std::optional<int> stop(std::chrono::milliseconds limit = std::chrono::seconds(60));
  void kill();
  std::string log() const { return process_->log(); }

 private:
  std::unique_ptr<webmon::test::ChildProcess> process_;
};

std::filesystem::path write_writer_config(const std::filesystem::path& dir, const std::string& name,
                                          const std::string& topic, const std::string& group,
                                          const std::string& pg_uri, const WriterOptions& options);

struct Counts {
  std::int64_t rows = 0;
  std::int64_t duplicates = 0;  // rows beyond one per (target, scheduled_at)
  std::int64_t dead_letters = 0;
};
// Zero counts while the schema is not there yet.
Counts counts(const TestDatabase& db);
// Prints "rows expected / rows found / duplicates" the way the issue asks every fault test to.
void report(const std::string& test, std::int64_t expected, const Counts& c);

}  // namespace webmon::writer::test
