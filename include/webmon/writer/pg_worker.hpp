// The writer's PostgreSQL thread: every PostgreSQL call runs here, one job at a time (write a
// batch; or connect, read stored offsets, keep partitions ahead), while the consumer thread keeps
// polling Kafka, decoding the next batch and feeding the watchdog. The consumer thread never
// blocks on PostgreSQL: it polls for the outcome, and past a job's deadline it aborts the job's
// connection (PgSink::abort), which turns a silent server into a failed job.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "webmon/writer/batch.hpp"
#include "webmon/writer/pg_error.hpp"

namespace webmon::writer {

struct PgJob {
  enum class Kind { write, sync };
  Kind kind = Kind::sync;
  Batch batch;                          // write: the batch
  bool connect = false;                 // sync: connect first (the connection was lost)
  bool maintenance = false;             // sync: daily partitions ahead, retention
  std::vector<std::int32_t> partitions;  // sync: whose stored offsets to read (none: a ping)
  std::uint64_t epoch = 0;              // the consumer's assignment epoch when it was asked
};

enum class PgOutcome {
  ok,        // committed (write) or done (sync)
  fenced,    // write: another writer moved a partition on; nothing more was written
  in_doubt,  // write: the connection was lost during a commit; `in_doubt` says which spans
  failed,    // rolled back or never reached the server: `failure` says why
};

struct PgDone {
  PgJob job;
  PgOutcome outcome = PgOutcome::failed;
  PgFailure failure;
  // write: what committed (a batch that PostgreSQL partly refused commits in pieces).
  std::size_t rows_written = 0;
  std::size_t dead_letters_written = 0;
  std::size_t refused = 0;                           // rows PostgreSQL refused, now dead letters
  std::map<std::int32_t, std::int64_t> committed;     // partition -> its stored offset now
  std::map<std::int32_t, PartitionSpan> in_doubt;     // the piece whose commit is unknown
  std::size_t in_doubt_rows = 0;
  std::size_t in_doubt_dead_letters = 0;
  // sync: the stored offsets of job.partitions (nullopt: none stored).
  std::map<std::int32_t, std::optional<std::int64_t>> offsets;
  std::chrono::duration<double> took{};
};

class PgWorker {
 public:
  // Runs on the worker thread; an exception escaping it becomes a failed outcome.
  using Work = std::function<void(PgDone& done)>;  // done.job is the job; fill in the rest

  explicit PgWorker(Work work);
  ~PgWorker();
  PgWorker(const PgWorker&) = delete;
  PgWorker& operator=(const PgWorker&) = delete;

  void submit(PgJob job);      // only when !busy()
  bool busy() const;           // submitted and its outcome not yet taken
  std::optional<PgDone> poll();  // the outcome if the job is done
  // Waits up to `limit` for the job in flight; nullopt if it is still running.
  std::optional<PgDone> wait_for(std::chrono::milliseconds limit);

 private:
  void loop();

  Work work_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<PgJob> job_;
  std::optional<PgDone> done_;
  bool busy_ = false;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace webmon::writer
