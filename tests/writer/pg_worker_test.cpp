// Unit: the PostgreSQL thread that runs one job while the consumer thread goes on, how each way a
// job can end is reported back, and that the consumer thread can wait for it with a bound. No
// servers: the work is a stand-in for the PgSink calls.
#include <atomic>
#include <mutex>
#include <stdexcept>

#include <gtest/gtest.h>
#include <pqxx/except>

#include "webmon/writer/pg_worker.hpp"

namespace webmon::writer {
namespace {

using namespace std::chrono_literals;

PgJob write_job(std::int32_t partition, std::int64_t next) {
  PgJob job;
  job.kind = PgJob::Kind::write;
  job.batch.topic = "t";
  job.batch.partitions[partition] = PartitionSpan{next - 1, next, 1};
  return job;
}

TEST(PgWorker, ReportsEachOutcomeWithItsJob) {
  std::atomic<int> calls{0};
  PgWorker worker([&](PgDone& done) {
    ++calls;
    switch (done.job.batch.partitions.begin()->first) {
      case 0: done.outcome = PgOutcome::ok; return;
      case 1: done.outcome = PgOutcome::fenced; return;
      case 2: throw pqxx::check_violation("violates check constraint \"c\"", "COPY", "23514");
      default: throw std::runtime_error("server closed the connection");
    }
  });
  EXPECT_FALSE(worker.busy());
  const std::pair<int, PgOutcome> cases[] = {
      {0, PgOutcome::ok}, {1, PgOutcome::fenced}, {2, PgOutcome::failed}, {3, PgOutcome::failed}};
  for (const auto& [partition, outcome] : cases) {
    worker.submit(write_job(partition, 10));
    EXPECT_TRUE(worker.busy());
    std::optional<PgDone> done;
    while (!(done = worker.wait_for(1s))) {
    }
    EXPECT_FALSE(worker.busy());
    EXPECT_EQ(done->outcome, outcome) << "partition " << partition;
    EXPECT_EQ(done->job.batch.partitions.at(partition).next, 10);
    if (partition == 2) {
      EXPECT_EQ(done->failure.sqlstate(), "23514");
      EXPECT_FALSE(done->failure.is_retryable());
    }
    if (partition == 3) {
      EXPECT_EQ(done->failure.sqlstate(), "");
      EXPECT_TRUE(done->failure.is_retryable());
    }
  }
  EXPECT_EQ(calls, 4);
}

TEST(PgWorker, WaitForReturnsNothingWhileTheJobIsBlocked) {
  std::mutex gate;
  std::unique_lock hold(gate);
  PgWorker worker([&](PgDone& done) {
    std::lock_guard wait_for_test(gate);
    done.outcome = PgOutcome::ok;
  });
  worker.submit(PgJob{});
  EXPECT_FALSE(worker.poll());  // the work is blocked on `gate`
  EXPECT_FALSE(worker.wait_for(50ms));
  EXPECT_TRUE(worker.busy());
  hold.unlock();
  std::optional<PgDone> done;
  while (!(done = worker.wait_for(1s))) {
  }
  EXPECT_EQ(done->outcome, PgOutcome::ok);
  EXPECT_FALSE(worker.poll());
  EXPECT_FALSE(worker.busy());
}

TEST(PgFailure, RetryableOrPermanentBySqlstate) {
  for (const char* permanent : {"22003", "22P02", "22021", "23514", "23502", "23505", "42804", "54000"}) {
    EXPECT_FALSE(PgFailure::is_retryable_sqlstate(permanent)) << permanent;
  }
  for (const char* transient : {"08006", "08001", "40001", "40P01", "57014", "55P03", "57P01", "53300", "42P01",
                                "42501", "25P02", ""}) {
    EXPECT_TRUE(PgFailure::is_retryable_sqlstate(transient)) << transient;
  }
  EXPECT_EQ(PgFailure("23514", "violates").describe(), "SQLSTATE 23514: violates");
  EXPECT_EQ(PgFailure("", "gone").describe(), "gone");
}

}  // namespace
}  // namespace webmon::writer
