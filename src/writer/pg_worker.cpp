#include "webmon/writer/pg_worker.hpp"

#include <pthread.h>

namespace webmon::writer {

PgWorker::PgWorker(Work work) : work_(std::move(work)), thread_([this] { loop(); }) {}

PgWorker::~PgWorker() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PgWorker::submit(PgJob job) {
  {
    std::lock_guard lock(mutex_);
    job_ = std::move(job);
    busy_ = true;
  }
  cv_.notify_all();
}

bool PgWorker::busy() const {
  std::lock_guard lock(mutex_);
  return busy_;
}

std::optional<PgDone> PgWorker::poll() { return wait_for(std::chrono::milliseconds(0)); }

std::optional<PgDone> PgWorker::wait_for(std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, limit, [this] { return done_.has_value(); })) return std::nullopt;
  auto out = std::move(done_);
  done_.reset();
  busy_ = false;
  return out;
}

void PgWorker::loop() {
  pthread_setname_np(pthread_self(), "webmon-pg");  // tells it apart in top -H and perf
  std::unique_lock lock(mutex_);
  while (true) {
    cv_.wait(lock, [this] { return quit_ || job_.has_value(); });
    if (quit_) return;
    PgDone done;
    done.job = std::move(*job_);
    job_.reset();
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    try {
      work_(done);
    } catch (const std::exception& e) {
      done.outcome = PgOutcome::failed;
      done.failure = PgFailure::from(e);
    } catch (...) {
      done.outcome = PgOutcome::failed;
      done.failure = PgFailure("", "unknown exception");
    }
    done.took = std::chrono::steady_clock::now() - started;
    lock.lock();
    done_ = std::move(done);
    cv_.notify_all();
  }
}

}  // namespace webmon::writer
