// Compaction of closed days (sql/004_compaction.sql does the encoding): one day at a time, in one
// transaction under an advisory lock, so a day is either still rows or wholly compacted; and the
// writer's background thread that runs it while ingest keeps the lead. Used by webmon-writer and
// by `webmon compact`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction>
#include <prometheus/registry.h>

#include "webmon/common/config.hpp"

namespace webmon::writer {

// "YYYY-MM-DD" of a UTC day, and back (nullopt for anything else).
std::string iso_date(std::chrono::sys_days day);
std::optional<std::chrono::sys_days> parse_iso_date(const std::string& text);

// The first day that is not compacted yet: days before today - compact_after_days are.
std::chrono::sys_days compaction_until(std::chrono::sys_days today, int compact_after_days);

struct CompactorOptions {
  int targets_per_chunk = 10;  // one statement's worth of work between the chances to yield
  // Asked before each chunk: while it says true, the compaction waits (ingest comes first).
  std::function<bool()> should_yield;
  const std::atomic<bool>* stop = nullptr;  // abandons the day (rolled back) when set
  bool wait_for_lock = false;  // wait for another compaction to end instead of answering `busy`
  std::chrono::milliseconds statement_timeout{std::chrono::minutes(10)};
};

struct CompactionOutcome {
  enum class Status {
    compacted,  // committed: the day's checks are in compact rows only
    nothing,    // the day had no rows to compact
    busy,       // another session holds the compaction lock
    changed,    // rows kept coming into the day's partition while it was read: rolled back
    stopped,    // stop was asked: rolled back
  };
  Status status = Status::nothing;
  std::int64_t rows_read = 0;      // rows of the partition and the default partition compacted
  std::int64_t checks_in_day = 0;  // checks the day holds in compact rows afterwards
};

const char* to_string(CompactionOutcome::Status s);

struct RollupOutcome {
  int hours = 0;      // closed hours rolled up from rows (sql/006_rollups.sql, webmon_rollup_hour)
  int days = 0;       // compacted days whose rollups were completed (webmon_rollup_compact_day)
  bool busy = false;  // a compaction held the lock: the pass ended early
};

class Compactor {
 public:
  Compactor(std::string conninfo, CompactorOptions options);

  // The days before `until` with rows to compact, oldest first; none before `oldest` when given
  // (retention drops those).
  std::vector<std::chrono::sys_days> due_days(std::chrono::sys_days until,
                                              std::optional<std::chrono::sys_days> oldest = std::nullopt);
  // Compacts one day (tries again, up to three times, when rows kept coming in), rolling up its
  // hours first where needed and after it the targets of late rows. Throws what libpqxx throws;
  // nothing is left half done.
  CompactionOutcome compact_day(std::chrono::sys_days day);
  // Rolls up the closed hours from `from`'s hour to before `until`'s whose rows differ from their
  // rollups (one transaction per hour under the compaction lock), and with `compacted_days` the
  // compacted days whose rollups are incomplete. Yields and stops as compaction does.
  RollupOutcome roll_up(std::chrono::system_clock::time_point from, std::chrono::system_clock::time_point until,
                        bool compacted_days);
  // From another thread: cancels the statement in flight (the day is rolled back).
  void cancel();

 private:
  CompactionOutcome attempt(std::chrono::sys_days day);
  // Waits while options_.should_yield says so; false once options_.stop is set.
  bool yield_unless_stopped() const;
  // The statement timeout and the compaction lock for `tx`: waited for with `wait`, else tried
  // (false: another compaction holds it).
  bool lock(pqxx::work& tx, bool wait) const;
  // What cancel() reaches, for as long as one attempt or pass holds its connection.
  class Live {
   public:
    Live(Compactor& owner, pqxx::connection& connection);
    ~Live();
    Live(const Live&) = delete;
    Live& operator=(const Live&) = delete;

   private:
    Compactor& owner_;
  };
  std::string conninfo_;
  CompactorOptions options_;
  std::mutex mutex_;  // live_ against cancel()
  pqxx::connection* live_ = nullptr;
};

// webmon-writer's background compaction and rollups: a thread that, a minute after start and then
// every minute, rolls up the closed hours of the last 3 hours that need it; every 15 minutes those
// of the last 24 hours and of compacted days, and compacts the days before compaction_until(),
// oldest first; yielding while the consumer lag (webmon_writer_consumer_lag, summed) exceeds one
// batch. Compaction is off when writer.compact_after_days is 0; rollups are always kept.
class BackgroundCompactor {
 public:
  BackgroundCompactor(const Config& config, std::shared_ptr<prometheus::Registry> registry);
  ~BackgroundCompactor();  // stops and joins the thread (a day in progress is rolled back)
  BackgroundCompactor(const BackgroundCompactor&) = delete;
  BackgroundCompactor& operator=(const BackgroundCompactor&) = delete;

 private:
  void run();
  bool lagging() const;
  bool sleep_for(std::chrono::milliseconds d);  // false when stopping

  PostgresConfig postgres_;
  WriterSection writer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  Compactor* running_ = nullptr;  // under mutex_: what the destructor cancels
  std::thread thread_;
};

}  // namespace webmon::writer
