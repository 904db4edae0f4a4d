#include "webmon/writer/batch_worker.hpp"

#include <pthread.h>

#include <pqxx/except>

namespace webmon::writer {

BatchWorker::BatchWorker(Work work) : work_(std::move(work)), thread_([this] { loop(); }) {}

BatchWorker::~BatchWorker() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BatchWorker::submit(Batch batch) {
  {
    std::lock_guard lock(mutex_);
    job_ = std::move(batch);
    busy_ = true;
  }
  cv_.notify_all();
}

bool BatchWorker::busy() const {
  std::lock_guard lock(mutex_);
  return busy_;
}

std::optional<BatchWorker::Done> BatchWorker::poll() {
  std::lock_guard lock(mutex_);
  if (!done_) return std::nullopt;
  auto out = std::move(done_);
  done_.reset();
  busy_ = false;
  return out;
}

BatchWorker::Done BatchWorker::wait() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this] { return done_.has_value(); });
  Done out = std::move(*done_);
  done_.reset();
  busy_ = false;
  return out;
}

void BatchWorker::loop() {
  pthread_setname_np(pthread_self(), "webmon-pg");  // tells it apart in top -H and perf
  std::unique_lock lock(mutex_);
  while (true) {
    cv_.wait(lock, [this] { return quit_ || job_.has_value(); });
    if (quit_) return;
    Done done;
    done.batch = std::move(*job_);
    job_.reset();
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    try {
      done.outcome = work_(done.batch) == PgSink::Result::committed ? Outcome::committed : Outcome::fenced;
    } catch (const pqxx::in_doubt_error& e) {
      done.outcome = Outcome::in_doubt;
      done.error = e.what();
    } catch (const std::exception& e) {
      done.outcome = Outcome::failed;
      done.error = e.what();
    }
    done.took = std::chrono::steady_clock::now() - started;
    lock.lock();
    done_ = std::move(done);
    cv_.notify_all();
  }
}

}  // namespace webmon::writer
