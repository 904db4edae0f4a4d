// The writer's loop on one plain thread: a librdkafka consumer whose positions come from
// PostgreSQL (ingest_offsets), batches cut by size or age, one transaction per batch, and the
// recovery paths: another writer moved on (fenced), PostgreSQL gone (pause, back off, resync),
// a commit in doubt (settled by re-reading the offsets).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "webmon/common/config.hpp"
#include "webmon/common/kafka.hpp"
#include "webmon/writer/batch.hpp"
#include "webmon/writer/metrics.hpp"
#include "webmon/writer/sink.hpp"

namespace webmon::writer {

class BatchWorker;
struct BatchDone;

struct IngestOptions {
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::minutes maintenance_every{60};  // partitions ahead, retention
};

class Ingestor {
 public:
  // Builds the consumer (throws kafka::ConfigError for a setting librdkafka refuses).
  Ingestor(const Config& config, std::shared_ptr<WriterMetrics> metrics, const std::atomic<bool>& stop,
           IngestOptions options = {});
  ~Ingestor();
  Ingestor(const Ingestor&) = delete;
  Ingestor& operator=(const Ingestor&) = delete;

  // Connects to PostgreSQL (retrying with backoff until `stop`), applies nothing: migrations are
  // the caller's. Then consumes until `stop`, writes or drops the batch in flight, leaves the group.
  void run();

  // Connected to Kafka and PostgreSQL; safe to call from any thread.
  bool ready() const noexcept { return pg_up_.load() && kafka_up_.load(); }

 private:
  struct PartitionState {
    bool synced = false;                   // position known from PostgreSQL; else messages are dropped
    std::optional<std::int64_t> stored;    // next_offset in ingest_offsets (the fence)
    std::optional<std::int64_t> position;  // next offset expected from Kafka
    std::optional<std::int64_t> fence;     // where the next batch starts: stored, or after the batch in flight
  };

  static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque);
  static void error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
  void on_message(const rd_kafka_message_t* msg);
  void submit();        // hands the batch built so far to the worker
  void settle_worker(); // waits for the batch in flight, if any, and acts on its outcome
  void flush_now();     // settle_worker(), then writes what has been built and settles that too
  void settle(BatchDone& done);
  void ensure_days(const Batch& batch);  // on the worker thread
  void sync_positions();  // re-reads offsets for the whole assignment, assigns there, resumes
  void on_pg_failure(const std::exception& e, const char* during);
  void try_reconnect();
  void maintenance();
  void commit_to_kafka(const Batch& batch);
  void check_kafka();

  const Config config_;
  std::shared_ptr<WriterMetrics> metrics_;
  const std::atomic<bool>& stop_;
  IngestOptions options_;
  PgSink sink_;
  BatchBuilder builder_;
  kafka::HandlePtr rk_;
  std::unique_ptr<BatchWorker> worker_;  // the only user of sink_ while a batch is in flight
  std::map<std::int32_t, PartitionState> parts_;
  std::optional<Batch> in_doubt_;  // spans of a batch whose commit outcome is unknown

  std::atomic<bool> pg_up_{false};
  std::atomic<bool> kafka_up_{false};
  std::chrono::milliseconds backoff_{0};
  int failed_in_a_row_ = 0;    // batches failed since the last committed one
  bool outage_logged_ = false;  // one warning per PostgreSQL outage, then debug lines
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::steady_clock::time_point next_maintenance_{};
  std::chrono::steady_clock::time_point next_kafka_check_{};
  std::chrono::steady_clock::time_point last_kafka_warning_{};
};

}  // namespace webmon::writer
