#include "webmon/writer/compactor.hpp"

#include <cstdio>
#include <set>

#include <fmt/format.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "webmon/common/logging.hpp"
#include "webmon/writer/pg_session.hpp"

namespace webmon::writer {
namespace {

// The one compaction lock across writers and `webmon compact`.
constexpr const char* kLockKey = "hashtext('webmon.compaction')";

std::chrono::sys_days today_utc() { return std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now()); }

}  // namespace

std::string iso_date(std::chrono::sys_days day) {
  const std::chrono::year_month_day ymd(day);
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

std::optional<std::chrono::sys_days> parse_iso_date(const std::string& text) {
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  char tail = 0;
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  if (std::sscanf(text.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) != 3) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(m), std::chrono::day(d)};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days(ymd);
}

std::chrono::sys_days compaction_until(std::chrono::sys_days today, int compact_after_days) {
  return today - std::chrono::days(compact_after_days);
}

const char* to_string(CompactionOutcome::Status s) {
  switch (s) {
    case CompactionOutcome::Status::compacted: return "compacted";
    case CompactionOutcome::Status::nothing: return "nothing to compact";
    case CompactionOutcome::Status::busy: return "another compaction is running";
    case CompactionOutcome::Status::changed: return "rows kept arriving; left as rows";
    case CompactionOutcome::Status::stopped: return "stopped";
  }
  return "?";
}

Compactor::Compactor(std::string conninfo, CompactorOptions options)
    : conninfo_(std::move(conninfo)), options_(std::move(options)) {}

std::vector<std::chrono::sys_days> Compactor::due_days(std::chrono::sys_days until,
                                                       std::optional<std::chrono::sys_days> oldest) {
  pqxx::connection conn(conninfo_);
  pqxx::work tx(conn);
  std::set<std::chrono::sys_days> days;
  for (const auto& row : tx.exec_params("SELECT d::text FROM webmon_compaction_candidates($1::date) AS d",
                                        iso_date(until))) {
    const auto day = parse_iso_date(row[0].as<std::string>());
    if (day && (!oldest || *day >= *oldest)) days.insert(*day);
  }
  tx.commit();
  return {days.begin(), days.end()};
}

CompactionOutcome Compactor::compact_day(std::chrono::sys_days day) {
  // The day's hours rolled up from its rows first where that is not done yet (cheaper than from
  // the compact rows at the end, which then only takes the targets of late rows), each hour in a
  // short transaction of its own: the compaction's long one must not hold locks on `checks`
  // (reading it locks every partition, and the writer's ATTACH PARTITION waits for them).
  roll_up(std::chrono::sys_days(day), std::chrono::sys_days(day + std::chrono::days(1)), false);
  for (int attempt_no = 1;; ++attempt_no) {
    auto out = attempt(day);
    if (out.status != CompactionOutcome::Status::changed || attempt_no == 3) return out;
    spdlog::info("compaction of {}: rows arrived while it was read; again", iso_date(day));
  }
}

void Compactor::cancel() {
  std::lock_guard lock(mutex_);
  if (live_) live_->cancel_query();
}

bool Compactor::yield_unless_stopped() const {
  const auto stopped = [this] { return options_.stop && *options_.stop; };
  while (options_.should_yield && options_.should_yield()) {
    if (stopped()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return !stopped();
}

bool Compactor::lock(pqxx::work& tx, bool wait) const {
  tx.exec("SET LOCAL statement_timeout = " + std::to_string(options_.statement_timeout.count()));
  if (wait) {
    tx.exec(std::string("SELECT pg_advisory_xact_lock(") + kLockKey + ")");
    return true;
  }
  return tx.exec1(std::string("SELECT pg_try_advisory_xact_lock(") + kLockKey + ")")[0].as<bool>();
}

Compactor::Live::Live(Compactor& owner, pqxx::connection& connection) : owner_(owner) {
  std::lock_guard lock(owner_.mutex_);
  owner_.live_ = &connection;
}

Compactor::Live::~Live() {
  std::lock_guard lock(owner_.mutex_);
  owner_.live_ = nullptr;
}

CompactionOutcome Compactor::attempt(std::chrono::sys_days day) {
  using Status = CompactionOutcome::Status;
  const auto d = iso_date(day);
  pqxx::connection conn(conninfo_);
  const Live live(*this, conn);
  // Read committed: each step sees what committed before it, and step 3 counts the partition
  // under its lock against what the chunks read.
  pqxx::work tx(conn);
  if (!lock(tx, options_.wait_for_lock)) return {Status::busy};
  const auto before = tx.exec_params1("SELECT coalesce(sum(n), 0) FROM checks_compact WHERE day = $1::date", d)[0]
                          .as<std::int64_t>();
  const auto chunks =
      tx.exec_params("SELECT lo, hi FROM webmon_compact_chunks($1::date, $2)", d, options_.targets_per_chunk);
  std::int64_t read = 0;
  for (const auto& chunk : chunks) {
    if (!yield_unless_stopped()) return {Status::stopped};  // tx's destructor rolls back
    read += tx.exec_params1("SELECT webmon_compact_chunk($1::date, $2, $3)", d, chunk[0].as<int>(), chunk[1].as<int>())[0]
                .as<std::int64_t>();
  }
  if (options_.stop && *options_.stop) return {Status::stopped};
  const auto total = tx.exec_params1("SELECT webmon_compact_finish($1::date, $2)", d, read)[0].as<std::int64_t>();
  if (total < 0) return {Status::changed};
  // What came from the default partition is what the day gained beyond the partition's rows.
  const std::int64_t moved = total - before - read;
  if (read == 0 && moved == 0) return {Status::nothing, 0, total};
  // The day's hourly rollups, in the same transaction: recomputed from the compact rows for the
  // targets whose count changed (late rows merged; hours never rolled up), else left as they are.
  tx.exec_params("SELECT webmon_rollup_compact_day($1::date)", d);
  tx.commit();
  return {Status::compacted, read + moved, total};
}

RollupOutcome Compactor::roll_up(std::chrono::system_clock::time_point from, std::chrono::system_clock::time_point until,
                                bool compacted_days) {
  RollupOutcome out;
  pqxx::connection conn(conninfo_);
  const Live live(*this, conn);
  const auto from_s = std::chrono::duration_cast<std::chrono::seconds>(from.time_since_epoch()).count();
  const auto until_s = std::chrono::duration_cast<std::chrono::seconds>(until.time_since_epoch()).count();
  std::vector<std::string> hours;
  std::vector<std::string> days;
  {
    pqxx::read_transaction tx(conn);
    for (const auto& row : tx.exec_params("SELECT h::text FROM webmon_rollup_stale_hours(to_timestamp($1), "
                                          "to_timestamp($2)) h",
                                          static_cast<double>(from_s), static_cast<double>(until_s))) {
      hours.push_back(row[0].as<std::string>());
    }
    if (compacted_days) {
      for (const auto& row : tx.exec("SELECT d::text FROM webmon_rollup_compact_candidates() d")) {
        days.push_back(row[0].as<std::string>());
      }
    }
  }
  // One transaction per hour (or compacted day), each under the compaction lock: a compaction
  // elsewhere makes this pass end, the next one goes on.
  const auto one = [&](const std::string& sql, const std::string& arg) {
    if (!yield_unless_stopped()) return false;
    pqxx::work tx(conn);
    if (!lock(tx, false)) {
      out.busy = true;
      return false;
    }
    tx.exec_params(sql, arg);
    tx.commit();
    return true;
  };
  for (const auto& h : hours) {
    if (!one("SELECT webmon_rollup_hour($1::timestamptz)", h)) return out;
    ++out.hours;
  }
  for (const auto& d : days) {
    if (!one("SELECT webmon_rollup_compact_day($1::date)", d)) return out;
    ++out.days;
  }
  return out;
}

// ---- the writer's background thread ----

BackgroundCompactor::BackgroundCompactor(const Config& config, std::shared_ptr<prometheus::Registry> registry)
    : postgres_(config.postgres), writer_(config.writer), registry_(std::move(registry)) {
  thread_ = std::thread([this] { run(); });  // rollups always; compaction unless compact_after_days is 0
}

BackgroundCompactor::~BackgroundCompactor() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    if (running_) running_->cancel();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool BackgroundCompactor::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, d, [this] { return stop_.load(); });
}

bool BackgroundCompactor::lagging() const {
  double lag = 0;
  for (const auto& family : registry_->Collect()) {
    if (family.name != "webmon_writer_consumer_lag") continue;
    for (const auto& m : family.metric) lag += m.gauge.value;
  }
  return lag > static_cast<double>(writer_.batch_max_rows);
}

void BackgroundCompactor::run() {
  using namespace std::chrono_literals;
  // Not at start: a writer that was down has a backlog to write first. Then every minute the
  // hourly rollups of the last closed hours (a closed hour is rolled up within about a minute and
  // rolled up again when late rows change its count), and every 15 minutes the rollups of the
  // last day and of compacted days, and the compaction of closed days.
  auto wait = std::chrono::milliseconds(60s);
  auto next_full = std::chrono::steady_clock::now();
  while (sleep_for(wait)) {
    wait = 1min;
    const bool full = std::chrono::steady_clock::now() >= next_full;
    try {
      CompactorOptions options;
      options.should_yield = [this] { return lagging(); };
      options.stop = &stop_;
      Compactor compactor(pg_session(postgres_).conninfo, options);
      struct Running {  // the destructor cancels what runs
        BackgroundCompactor& b;
        Running(BackgroundCompactor& owner, Compactor& c) : b(owner) {
          std::lock_guard lock(b.mutex_);
          b.running_ = &c;
        }
        ~Running() {
          std::lock_guard lock(b.mutex_);
          b.running_ = nullptr;
        }
        Running(const Running&) = delete;
        Running& operator=(const Running&) = delete;
      } running(*this, compactor);
      const auto now = std::chrono::system_clock::now();
      const auto rolled = compactor.roll_up(now - (full ? std::chrono::hours(24) : std::chrono::hours(3)), now, full);
      if (rolled.hours > 0 || rolled.days > 0) {
        spdlog::info("rollups: {} hours and {} compacted days rolled up", rolled.hours, rolled.days);
      }
      if (stop_) return;
      if (!full) continue;
      next_full = std::chrono::steady_clock::now() + 15min;
      if (writer_.compact_after_days <= 0) continue;
      const auto today = today_utc();
      std::optional<std::chrono::sys_days> oldest;
      if (writer_.retention_days) oldest = today - std::chrono::days(*writer_.retention_days);
      for (const auto day : compactor.due_days(compaction_until(today, writer_.compact_after_days), oldest)) {
        if (stop_) return;
        const auto started = std::chrono::steady_clock::now();
        const auto out = compactor.compact_day(day);
        const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (out.status == CompactionOutcome::Status::compacted) {
          spdlog::info("compacted {}: {} rows into compact rows ({} checks that day) in {:.1f} s", iso_date(day),
                       out.rows_read, out.checks_in_day, took);
        } else if (out.status == CompactionOutcome::Status::busy) {
          spdlog::info("compaction: another compaction is running; next pass later");
          break;
        } else if (out.status != CompactionOutcome::Status::nothing) {
          spdlog::info("compaction of {}: {}", iso_date(day), to_string(out.status));
        }
      }
    } catch (const std::exception& e) {
      // The day or hour stays as it was (the transaction rolled back); the next pass tries again.
      spdlog::warn("compaction/rollups failed (postgresql {}): {}; next pass in 1 minute", redact_uri(postgres_.uri),
                   e.what());
      next_full = std::chrono::steady_clock::now();
    }
  }
}

}  // namespace webmon::writer
