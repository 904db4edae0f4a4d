// The writer's loop: a librdkafka consumer whose positions come from PostgreSQL (ingest_offsets),
// batches cut by size or age, one transaction per batch on the PostgreSQL thread (PgWorker), and
// the recovery paths: another writer moved on (fenced), PostgreSQL gone or silent (pause, back
// off, re-read offsets, resume), a commit in doubt (settled by re-reading the offsets), a row
// PostgreSQL refuses for good (found by bisection, dead-lettered).
//
// Two state types say where things stand: each partition's Phase (is its position known?) and
// the PostgreSQL side's PgState (down, idle, or a job in flight with a deadline). The consumer
// thread owns both; only the transitions below change them, and only the PgWorker's jobs touch
// PostgreSQL, so neither the loop nor a rebalance callback ever waits on it without a bound.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "webmon/common/config.hpp"
#include "webmon/common/kafka.hpp"
#include "webmon/common/log_limit.hpp"
#include "webmon/writer/batch.hpp"
#include "webmon/writer/metrics.hpp"
#include "webmon/writer/pg_session.hpp"
#include "webmon/writer/pg_worker.hpp"
#include "webmon/writer/sink.hpp"

namespace webmon::writer {

struct IngestOptions {
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::minutes maintenance_every{60};  // partitions ahead, retention
  std::chrono::seconds ping_every{10};         // a query when idle, so that /readyz tells the truth
};

class Ingestor {
 public:
  // Builds the consumer (throws kafka::ConfigError for a setting librdkafka refuses).
  Ingestor(const Config& config, std::shared_ptr<WriterMetrics> metrics, const std::atomic<bool>& stop,
           IngestOptions options = {});
  ~Ingestor();
  Ingestor(const Ingestor&) = delete;
  Ingestor& operator=(const Ingestor&) = delete;

  // Consumes until `stop`, writes or drops the batch in flight, leaves the group. Migrations are
  // the caller's. False when Kafka ended the consumer with a fatal error (e.g. another writer
  // took this one's writer.instance_id): the process should exit with an error.
  bool run();

  // Connected to Kafka and PostgreSQL answers; safe to call from any thread.
  bool ready() const noexcept { return pg_up_.load() && kafka_up_.load(); }

 private:
  // Whether a partition's position is known. Messages of a partition that is not consuming are
  // dropped (it is paused, and read again from its stored offset once that is known).
  enum class Phase {
    unsynced,   // paused; its stored offset is to be read (just assigned, or positions lost)
    syncing,    // paused; the sync job in flight reads its stored offset
    consuming,  // sought to its stored offset and resumed
  };
  struct PartitionState {
    Phase phase = Phase::unsynced;
    std::optional<std::int64_t> stored;    // next_offset in ingest_offsets
    std::optional<std::int64_t> position;  // next offset expected from Kafka
    std::optional<std::int64_t> fence;     // where the next batch starts: stored, or after the batch in flight
  };
  enum class PgState {
    down,  // no connection: a sync job that connects is due at next_attempt_
    idle,  // connected, nothing in flight
    busy,  // one job in flight, aborted (connection shut) past job_deadline_
  };

  // librdkafka's C callbacks: nothing escapes them.
  static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque);
  static void error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
  void on_rebalance_failed(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, const char* what) noexcept;
  void on_kafka_error(rd_kafka_t* rk, int err, const char* reason);
  void on_fatal(rd_kafka_t* rk);  // the consumer is unusable: noted; run() decides what follows
  // After a fence (FENCED_INSTANCE_ID): a new consumer with the same instance id, once. True when
  // it is made; false (said why) for any other fatal error or a second fence within kFenceWindow.
  bool rejoin_after_fence();
  void make_consumer();  // rk_: the consumer, its callbacks, its poll queue
  // Leaves the group and destroys rk_; past kCloseLimit the process ends (exit 0), said why.
  void close_consumer();
  const char* protocol() const;  // "EAGER", "COOPERATIVE" or "NONE"
  bool cooperative() const;

  // Transitions of the partitions' phases.
  void assigned(rd_kafka_topic_partition_list_t* parts);
  void revoked(rd_kafka_topic_partition_list_t* parts);
  void lose_positions();  // every partition unsynced and paused, the batch being built dropped
  void forget_partitions();  // none held any more: parts_ empty, their lag series gone, the batch dropped
  void positions_read(const PgDone& done);

  // The PostgreSQL side: the next job, its deadline, its outcome.
  void step_pg(std::chrono::steady_clock::time_point now);
  void submit(PgJob job);
  void submit_batch();
  void enforce_deadline(std::chrono::steady_clock::time_point now);
  std::optional<PgDone> await_job();  // bounded; feeds the watchdog while it waits
  void settle(PgDone& done);
  void pg_failed(const PgFailure& failure, const char* during);

  // The PostgreSQL thread's side of a job.
  void run_job(PgDone& done);
  bool write_isolating(Batch batch, PgDone& done);
  void ensure_days(const Batch& batch);
  void maintenance();

  void on_message(const rd_kafka_message_t* msg);
  void seek_and_resume(const std::map<std::int32_t, std::int64_t>& offsets);
  void commit_to_kafka(const std::map<std::int32_t, std::int64_t>& offsets);
  void check_kafka();
  // Partitions added to the topic that no member of the group holds (a static member restarted
  // after they were added gets its old assignment back): leave and join again so that the
  // group's assignor sees them.
  void check_partitions();
  std::optional<std::size_t> partitions_held_by_group(int partitions);  // nullopt: unknown now
  void subscribe();  // and the first partition check due kPartitionCheckEvery after it
  void feed_watchdog();

  const Config config_;
  std::shared_ptr<WriterMetrics> metrics_;
  const std::atomic<bool>& stop_;
  IngestOptions options_;
  PgSession session_;
  PgSink sink_;  // the PgWorker's alone (abort() aside)
  BatchBuilder builder_;
  kafka::HandlePtr rk_;
  std::unique_ptr<PgWorker> worker_;
  std::map<std::int32_t, PartitionState> parts_;

  // A batch whose commit's outcome is unknown: settled by the next offsets read.
  struct InDoubt {
    std::map<std::int32_t, PartitionSpan> spans;
    std::size_t rows = 0;
    std::size_t dead_letters = 0;
  };
  std::optional<InDoubt> in_doubt_;

  PgState pg_ = PgState::down;
  PgJob::Kind busy_with_ = PgJob::Kind::sync;
  bool aborted_ = false;  // the job in flight's connection was shut down
  std::chrono::steady_clock::time_point job_deadline_{};
  std::chrono::steady_clock::time_point last_job_end_{};
  std::atomic<bool> pg_up_{false};
  std::atomic<bool> kafka_up_{false};
  std::atomic<bool> fatal_{false};
  // The consumer is being closed: of the rebalance events the close serves, only a revoke is
  // acted on. An assignment that arrived before the close began and was not polled yet is not
  // taken: librdkafka's group may have ended by then, and any call that asks it (assign, even
  // rd_kafka_rebalance_protocol()) made from that callback waited forever.
  bool closing_ = false;
  rd_kafka_resp_err_t fatal_code_ = RD_KAFKA_RESP_ERR_NO_ERROR;  // rd_kafka_fatal_error()'s, and its text
  std::string fatal_reason_;
  std::optional<std::chrono::steady_clock::time_point> fenced_at_;  // the last fence this writer got past
  std::chrono::milliseconds backoff_{0};
  int failed_in_a_row_ = 0;     // jobs failed since the last one that succeeded
  LogLimit outage_log_{1, 0};   // one warning per PostgreSQL outage, then debug lines
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::steady_clock::time_point next_maintenance_{};
  std::chrono::steady_clock::time_point next_sync_{};  // a partition's seek failed: not before
  std::chrono::steady_clock::time_point next_kafka_check_{};
  std::chrono::steady_clock::time_point next_partition_check_{};
  int partitions_covered_ = 0;  // the topic's partition count that the group's assignment was seen to hold
  int uncovered_in_a_row_ = 0;  // checks in a row that found partitions no member holds
  std::optional<std::chrono::steady_clock::time_point> resubscribe_at_;  // unsubscribed to rejoin
  std::chrono::steady_clock::time_point last_kafka_warning_{};
  std::optional<std::chrono::steady_clock::duration> watchdog_;
  std::chrono::steady_clock::time_point next_watchdog_{};
};

}  // namespace webmon::writer
