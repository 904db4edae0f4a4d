// One batch written to PostgreSQL on a thread of its own while the consumer thread reads and
// decodes the next: the two halves of the writer overlap instead of taking turns. At most one
// batch is in flight; the consumer thread collects each outcome before it touches the sink again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "webmon/writer/batch.hpp"
#include "webmon/writer/sink.hpp"

namespace webmon::writer {

enum class BatchOutcome { committed, fenced, in_doubt, failed };

struct BatchDone {
  Batch batch;
  BatchOutcome outcome = BatchOutcome::failed;
  std::string error;  // for in_doubt and failed
  std::chrono::duration<double> took{};
};

class BatchWorker {
 public:
  using Done = BatchDone;
  using Outcome = BatchOutcome;
  using Work = std::function<PgSink::Result(const Batch&)>;

  explicit BatchWorker(Work work);
  ~BatchWorker();
  BatchWorker(const BatchWorker&) = delete;
  BatchWorker& operator=(const BatchWorker&) = delete;

  void submit(Batch batch);     // only when !busy()
  bool busy() const;            // submitted and its outcome not yet taken
  std::optional<Done> poll();   // the outcome if the batch is done
  Done wait();                  // blocks until the batch in flight is done; only when busy()

 private:
  void loop();

  Work work_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<Batch> job_;
  std::optional<Done> done_;
  bool busy_ = false;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace webmon::writer
