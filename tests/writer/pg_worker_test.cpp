// Unit: the worker thread that writes one batch while the next is built, and how each way a
// write can end is reported back. No servers: the work is a stand-in for PgSink::write.
#include <atomic>
#include <stdexcept>

#include <gtest/gtest.h>
#include <pqxx/except>

#include "webmon/writer/batch_worker.hpp"

namespace webmon::writer {
namespace {

Batch batch_of(std::int32_t partition, std::int64_t next) {
  Batch b;
  b.topic = "t";
  b.partitions[partition] = PartitionSpan{next - 1, next, 1};
  return b;
}

TEST(BatchWorker, ReportsEachOutcomeWithItsBatch) {
  std::atomic<int> calls{0};
  BatchWorker worker([&](const Batch& b) {
    ++calls;
    switch (b.partitions.begin()->first) {
      case 0: return PgSink::Result::committed;
      case 1: return PgSink::Result::fenced;
      case 2: throw pqxx::in_doubt_error("connection lost during commit");
      default: throw std::runtime_error("server closed the connection");
    }
  });
  EXPECT_FALSE(worker.busy());
  const std::pair<int, BatchOutcome> cases[] = {{0, BatchOutcome::committed},
                                                {1, BatchOutcome::fenced},
                                                {2, BatchOutcome::in_doubt},
                                                {3, BatchOutcome::failed}};
  for (const auto& [partition, outcome] : cases) {
    worker.submit(batch_of(partition, 10));
    EXPECT_TRUE(worker.busy());
    auto done = worker.wait();
    EXPECT_FALSE(worker.busy());
    EXPECT_EQ(done.outcome, outcome) << "partition " << partition;
    EXPECT_EQ(done.batch.partitions.at(partition).next, 10);
    EXPECT_EQ(done.error.empty(), outcome == BatchOutcome::committed || outcome == BatchOutcome::fenced);
  }
  EXPECT_EQ(calls, 4);
}

TEST(BatchWorker, PollReturnsNothingUntilTheBatchIsDone) {
  std::mutex gate;
  std::unique_lock hold(gate);
  BatchWorker worker([&](const Batch&) {
    std::lock_guard wait_for_test(gate);
    return PgSink::Result::committed;
  });
  worker.submit(batch_of(0, 1));
  EXPECT_FALSE(worker.poll());  // the work is blocked on `gate`
  EXPECT_TRUE(worker.busy());
  hold.unlock();
  const auto done = worker.wait();
  EXPECT_EQ(done.outcome, BatchOutcome::committed);
  EXPECT_FALSE(worker.poll());
  EXPECT_FALSE(worker.busy());
}

}  // namespace
}  // namespace webmon::writer
