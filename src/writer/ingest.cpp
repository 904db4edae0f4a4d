#include "webmon/writer/ingest.hpp"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "webmon/common/backoff.hpp"
#include "webmon/common/logging.hpp"
#include "webmon/common/service.hpp"

namespace webmon::writer {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

kafka::TopicPartitionListPtr make_list(const std::string& topic, const std::map<std::int32_t, std::int64_t>& offsets) {
  kafka::TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& [p, off] : offsets) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = off;
  return list;
}

std::chrono::sys_days today_utc() {
  return std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
}

// How often the topic's partition count is compared with what the group's members hold.
constexpr auto kPartitionCheckEvery = std::chrono::seconds(10);

// A writer fenced again this soon after it joined anew after a fence has another writer beside
// it with its instance id (rejoin_after_fence).
constexpr auto kFenceWindow = std::chrono::seconds(60);
// How long leaving the group may take before the process ends without it: within the systemd
// unit's WatchdogSec (30 s) and TimeoutStopSec (60 s).
constexpr auto kCloseLimit = std::chrono::seconds(20);

const char* job_name(const PgJob& job) {
  if (job.kind == PgJob::Kind::write) return "writing a batch";
  if (job.connect) return "connecting";
  return job.partitions.empty() ? (job.maintenance ? "partition maintenance" : "a ping") : "reading offsets";
}

// How long one job may take before the consumer thread gives up on the server: the server's own
// statement_timeout plus a margin, and the connect timeout on top for a job that connects.
Clock::duration job_limit(const PgSession& s, const PgJob& job) {
  const Clock::duration statement = s.statement_timeout.count() > 0 ? Clock::duration(s.statement_timeout)
                                                                     : Clock::duration(std::chrono::seconds(60));
  const Clock::duration connect = job.connect ? Clock::duration(s.connect_timeout) : Clock::duration::zero();
  return statement + connect + std::chrono::seconds(5);
}

}  // namespace

Ingestor::Ingestor(const Config& config, std::shared_ptr<WriterMetrics> metrics, const std::atomic<bool>& stop,
                   IngestOptions options)
    : config_(config),
      metrics_(std::move(metrics)),
      stop_(stop),
      options_(options),
      session_(pg_session(config.postgres)),
      sink_(session_.conninfo, config.writer.group_id),
      builder_(config.writer.batch_max_rows, config.writer.batch_max_ms) {
  make_consumer();
  worker_ = std::make_unique<PgWorker>([this](PgDone& done) { run_job(done); });
}

void Ingestor::make_consumer() {
  // Positions come from PostgreSQL: nothing is committed or stored automatically. Kafka's
  // committed offsets are written only after PostgreSQL's, for lag tools. Static membership
  // (group.instance.id) and a 10 s session: a writer that crashed and restarts gets its
  // partitions back at once, one that is gone for good is replaced within 10 s. kafka.properties
  // may override each of them.
  auto conf = kafka::make_conf(config_.kafka, {
                                                  {"group.id", config_.writer.group_id},
                                                  {"group.instance.id", config_.writer.instance_id},
                                                  {"session.timeout.ms", "10000"},
                                                  {"heartbeat.interval.ms", "3000"},
                                                  {"enable.auto.commit", "false"},
                                                  {"enable.auto.offset.store", "false"},
                                                  {"auto.offset.reset", "earliest"},
                                                  {"enable.partition.eof", "false"},
                                                  {"client.id", "webmon-writer"},
                                              });
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Ingestor::rebalance_cb);
  rd_kafka_conf_set_error_cb(conf.get(), &Ingestor::error_cb);
  rd_kafka_conf_set_opaque(conf.get(), this);
  rk_ = kafka::new_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(rk_.get());
}

Ingestor::~Ingestor() {
  sink_.abort();  // a job still blocked on a silent server returns, so the worker can be joined
  worker_.reset();
}

// ---- librdkafka's callbacks ----

void Ingestor::rebalance_cb(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                            void* opaque) {
  auto* self = static_cast<Ingestor*>(opaque);
  try {
    self->on_rebalance(err, parts);
  } catch (const std::exception& e) {
    self->on_rebalance_failed(err, parts, e.what());
  } catch (...) {
    self->on_rebalance_failed(err, parts, "unknown exception");
  }
}

void Ingestor::error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<Ingestor*>(opaque);
  try {
    self->on_kafka_error(rk, err, reason);
  } catch (...) {
    // Logging itself failed (out of memory, a closed sink): nothing more can be said.
  }
}

// librdkafka answers NULL when the consumer is not (or no longer) in a group, as while
// rd_kafka_consumer_close() serves a last rebalance: then the eager calls apply.
const char* Ingestor::protocol() const {
  const char* p = rd_kafka_rebalance_protocol(rk_.get());
  return p ? p : "NONE";
}

bool Ingestor::cooperative() const { return std::strcmp(protocol(), "COOPERATIVE") == 0; }

void Ingestor::on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
  if (closing_ && err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    // Not even rd_kafka_rebalance_protocol(): it asks the group too.
    spdlog::debug("kafka: {} for {} partition(s) served while leaving the group: not taken", rd_kafka_err2name(err),
                  parts ? parts->cnt : 0);
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    assigned(parts);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    revoked(parts);
  } else {
    spdlog::warn("kafka rebalance error: {}", rd_kafka_err2str(err));
    forget_partitions();
    if (cooperative()) {
      kafka::ErrorPtr e(rd_kafka_incremental_unassign(rk_.get(), parts));
    } else {
      rd_kafka_assign(rk_.get(), nullptr);
    }
  }
}

void Ingestor::on_rebalance_failed(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                                   const char* what) noexcept {
  // Whatever failed half-way, librdkafka must still see the assignment change, and positions that
  // may be half-updated are read again from PostgreSQL, as after an outage.
  try {
    spdlog::error("kafka rebalance ({}): {}; re-reading positions", rd_kafka_err2str(err), what);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      for (int i = 0; i < parts->cnt; ++i) parts_[parts->elems[i].partition] = PartitionState{};
      if (cooperative()) {
        kafka::ErrorPtr e(rd_kafka_incremental_assign(rk_.get(), parts));
      } else {
        rd_kafka_assign(rk_.get(), parts);
      }
    } else {
      for (int i = 0; i < parts->cnt; ++i) parts_.erase(parts->elems[i].partition);
      if (cooperative()) {
        kafka::ErrorPtr e(rd_kafka_incremental_unassign(rk_.get(), parts));
      } else {
        parts_.clear();
        rd_kafka_assign(rk_.get(), nullptr);
      }
    }
    lose_positions();
  } catch (...) {
  }
}

void Ingestor::on_kafka_error(rd_kafka_t* rk, int err, const char* reason) {
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) kafka_up_ = false;
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    on_fatal(rk);
    return;
  }
  const auto now = Clock::now();
  if (now - last_kafka_warning_ > std::chrono::seconds(10)) {
    last_kafka_warning_ = now;
    spdlog::warn("kafka: {}", reason ? reason : rd_kafka_err2str(code));
  }
}

void Ingestor::on_fatal(rd_kafka_t* rk) {
  // Reported through error_cb or as a consumer error, whichever comes first: noted once.
  if (fatal_.exchange(true)) return;
  std::array<char, 512> buf{};
  fatal_code_ = rd_kafka_fatal_error(rk, buf.data(), buf.size());
  fatal_reason_ = buf.data();
}

bool Ingestor::rejoin_after_fence() {
  // A fence has two causes that look alike. Another writer joined with this one's instance id and
  // took its place; or this writer's own older membership was fenced by its own rejoin: after a
  // broker restart librdkafka may join again with a new member id while an offset commit of the
  // old one is still queued, and the broker refuses that commit with FENCED_INSTANCE_ID (which
  // librdkafka makes fatal). So the first fence is answered with a new consumer under the same
  // instance id. If another writer is there, the two fence each other and whichever is fenced a
  // second time within kFenceWindow stops; the positions stay PostgreSQL's throughout, so neither
  // writes a row twice.
  const auto now = Clock::now();
  if (fatal_code_ != RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID) {
    spdlog::critical("kafka: fatal error {}: {}; stopping", rd_kafka_err2name(fatal_code_), fatal_reason_);
    return false;
  }
  if (fenced_at_ && now - *fenced_at_ < kFenceWindow) {
    spdlog::critical(
        "kafka: another webmon-writer joined group {} with this writer's instance id \"{}\" (writer.instance_id, "
        "used as group.instance.id) and took its place; each writer needs its own instance id. Stopping. ({}; "
        "fenced again {} s after joining anew)",
        config_.writer.group_id, config_.writer.instance_id, fatal_reason_,
        std::chrono::duration_cast<std::chrono::seconds>(now - *fenced_at_).count());
    return false;
  }
  fenced_at_ = now;
  spdlog::warn(
      "kafka: fenced in group {} as instance \"{}\" ({}): either a commit of this writer's own older "
      "membership, refused after a broker restart, or another writer with this instance id. Joining anew; "
      "fenced again within {} s, it stops",
      config_.writer.group_id, config_.writer.instance_id, fatal_reason_,
      std::chrono::duration_cast<std::chrono::seconds>(kFenceWindow).count());
  // The batch in flight is settled first (its offsets are PostgreSQL's, committed or not); what
  // was read but not written is dropped and read again from the stored offsets once assigned.
  if (pg_ == PgState::busy) {
    if (auto done = await_job()) settle(*done);
  }
  forget_partitions();
  close_consumer();  // fatal: returns at once, with no rebalance to serve
  make_consumer();
  fatal_ = false;
  fatal_code_ = RD_KAFKA_RESP_ERR_NO_ERROR;
  fatal_reason_.clear();
  resubscribe_at_.reset();  // an unsubscribe of the old consumer's, waiting to join again
  subscribe();
  return true;
}

// ---- the partitions' phases ----

void Ingestor::assigned(rd_kafka_topic_partition_list_t* parts) {
  kafka_up_ = true;
  if (!cooperative()) parts_.clear();  // eager: the whole assignment, after a revoke of all
  for (int i = 0; i < parts->cnt; ++i) {
    parts_[parts->elems[i].partition] = PartitionState{};
    // Paused until PostgreSQL says where to start; from the beginning so that the fetcher starts
    // at once (no committed-offset lookup) and the seek to the stored offset finds it running.
    parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  if (cooperative()) {
    if (kafka::ErrorPtr e{rd_kafka_incremental_assign(rk_.get(), parts)}) {
      throw std::runtime_error(std::string("incremental assign: ") + rd_kafka_error_string(e.get()));
    }
  } else if (auto e = rd_kafka_assign(rk_.get(), parts)) {
    throw std::runtime_error(std::string("assign: ") + rd_kafka_err2str(e));
  }
  rd_kafka_pause_partitions(rk_.get(), parts);
  spdlog::info("assigned {} partition(s) of {} ({} rebalance protocol), {} in all", parts->cnt, config_.kafka.topic,
               protocol(), parts_.size());
}

void Ingestor::revoked(rd_kafka_topic_partition_list_t* parts) {
  std::set<std::int32_t> gone;
  for (int i = 0; i < parts->cnt; ++i) gone.insert(parts->elems[i].partition);
  // Write what has been read from these partitions while they are still ours; if that fails, or
  // the assignment was lost (others may own them already), the next owner reads it again.
  if (pg_ == PgState::busy) {
    if (auto done = await_job()) settle(*done);
  }
  if (!builder_.empty()) {
    if (pg_ == PgState::idle && !rd_kafka_assignment_lost(rk_.get())) {
      submit_batch();
      if (auto done = await_job()) settle(*done);
    }
    if (!builder_.empty()) lose_positions();  // not written: the partitions we keep go back too
  }
  for (auto p : gone) {
    metrics_->remove_lag(config_.kafka.topic, p);
    parts_.erase(p);
  }
  if (cooperative()) {
    if (kafka::ErrorPtr e{rd_kafka_incremental_unassign(rk_.get(), parts)}) {
      throw std::runtime_error(std::string("incremental unassign: ") + rd_kafka_error_string(e.get()));
    }
  } else {
    parts_.clear();
    rd_kafka_assign(rk_.get(), nullptr);
  }
  spdlog::info("revoked {} partition(s) of {}, {} left", gone.size(), config_.kafka.topic, parts_.size());
}

void Ingestor::forget_partitions() {
  builder_.discard();
  for (const auto& [p, s] : parts_) metrics_->remove_lag(config_.kafka.topic, p);
  parts_.clear();
}

void Ingestor::lose_positions() {
  builder_.discard();
  std::map<std::int32_t, std::int64_t> all;
  for (auto& [p, s] : parts_) {
    s.phase = Phase::unsynced;
    all[p] = RD_KAFKA_OFFSET_INVALID;
  }
  if (!all.empty()) {
    auto list = make_list(config_.kafka.topic, all);
    rd_kafka_pause_partitions(rk_.get(), list.get());
  }
}

void Ingestor::positions_read(const PgDone& done) {
  if (in_doubt_) {
    bool known = true;
    bool landed = true;
    for (const auto& [p, span] : in_doubt_->spans) {
      auto it = done.offsets.find(p);
      if (it == done.offsets.end()) known = false;
      else if (it->second != std::optional<std::int64_t>(span.next)) landed = false;
    }
    if (known) {
      spdlog::info("the batch whose commit was in doubt {}", landed ? "was committed" : "was not committed");
      if (landed) {
        metrics_->rows_written.Increment(static_cast<double>(in_doubt_->rows));
        metrics_->dead_letters.Increment(static_cast<double>(in_doubt_->dead_letters));
      }
      in_doubt_.reset();
    }
  }
  std::map<std::int32_t, std::int64_t> seek;
  for (const auto& [p, stored] : done.offsets) {
    auto it = parts_.find(p);
    if (it == parts_.end() || it->second.phase != Phase::syncing) continue;  // revoked, or lost again since
    auto& s = it->second;
    s.stored = stored;
    s.position = stored;
    s.fence = stored;
    seek[p] = stored ? *stored : RD_KAFKA_OFFSET_BEGINNING;
  }
  if (!seek.empty()) seek_and_resume(seek);
}

void Ingestor::seek_and_resume(const std::map<std::int32_t, std::int64_t>& offsets) {
  // A seek discards what was fetched from the old positions (librdkafka's version barrier), so
  // nothing read before it reaches a batch.
  auto list = make_list(config_.kafka.topic, offsets);
  kafka::ErrorPtr error(rd_kafka_seek_partitions(rk_.get(), list.get(), 5000));
  std::map<std::int32_t, std::int64_t> resume;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    auto& s = parts_.at(e.partition);
    if (error || e.err) {
      spdlog::debug("partition {}: seek to {} failed ({}); again shortly", e.partition, e.offset,
                    error ? rd_kafka_error_string(error.get()) : rd_kafka_err2str(e.err));
      s.phase = Phase::unsynced;
      next_sync_ = Clock::now() + milliseconds(200);
      continue;
    }
    s.phase = Phase::consuming;
    resume[e.partition] = e.offset;
  }
  if (!resume.empty()) {
    auto rl = make_list(config_.kafka.topic, resume);
    rd_kafka_resume_partitions(rk_.get(), rl.get());
  }
}

// ---- the PostgreSQL side, as the consumer thread drives it ----

void Ingestor::submit(PgJob job) {
  const auto now = Clock::now();
  job_deadline_ = now + job_limit(session_, job);
  busy_with_ = job.kind;
  aborted_ = false;
  pg_ = PgState::busy;
  worker_->submit(std::move(job));
}

void Ingestor::submit_batch() {
  PgJob job;
  job.kind = PgJob::Kind::write;
  job.batch = builder_.take();
  // The next batch of each partition is fenced on where this one ends; if this one fails, the
  // next is discarded unwritten and both are read again.
  for (const auto& [p, span] : job.batch.partitions) {
    if (auto it = parts_.find(p); it != parts_.end()) it->second.fence = span.next;
  }
  submit(std::move(job));
}

void Ingestor::step_pg(Clock::time_point now) {
  if (pg_ == PgState::busy) {
    enforce_deadline(now);
    return;
  }
  if (pg_ == PgState::down) {
    if (now < next_attempt_) return;
    metrics_->postgres_retries.Increment();
    PgJob job;
    job.connect = true;
    job.maintenance = true;
    next_maintenance_ = now + options_.maintenance_every;
    for (auto& [p, s] : parts_) {
      if (s.phase == Phase::unsynced) s.phase = Phase::syncing;
      if (s.phase == Phase::syncing) job.partitions.push_back(p);
    }
    submit(std::move(job));
    return;
  }
  // Idle: positions first, then the batch, then the chores.
  PgJob job;
  if (now >= next_sync_) {
    for (auto& [p, s] : parts_) {
      if (s.phase == Phase::unsynced) {
        s.phase = Phase::syncing;
        job.partitions.push_back(p);
      }
    }
  }
  if (!job.partitions.empty()) {
    submit(std::move(job));
  } else if (builder_.due(now)) {
    submit_batch();
  } else if (now >= next_maintenance_) {
    next_maintenance_ = now + options_.maintenance_every;
    job.maintenance = true;
    submit(std::move(job));
  } else if (now - last_job_end_ >= options_.ping_every) {
    submit(std::move(job));  // a ping: a server that froze while idle is noticed too
  }
}

void Ingestor::enforce_deadline(Clock::time_point now) {
  if (aborted_ || now < job_deadline_) return;
  aborted_ = true;
  pg_up_ = false;
  metrics_->postgres_up.Set(0);
  spdlog::warn("postgresql: no answer in time ({}); dropping the connection and treating PostgreSQL as down",
               busy_with_ == PgJob::Kind::write ? "writing a batch" : "connecting or reading offsets");
  outage_log_.count();  // that warning was this outage's one
  sink_.abort();
}

std::optional<PgDone> Ingestor::await_job() {
  while (true) {
    feed_watchdog();
    if (auto done = worker_->wait_for(milliseconds(250))) return done;
    const auto now = Clock::now();
    enforce_deadline(now);
    if (aborted_ && now > job_deadline_ + std::chrono::seconds(10)) {
      spdlog::error("postgresql: the job in flight did not return after its connection was shut down");
      return std::nullopt;  // settled later by the loop
    }
  }
}

void Ingestor::pg_failed(const PgFailure& failure, const char* during) {
  ++failed_in_a_row_;
  pg_ = PgState::down;
  metrics_->postgres_errors.Increment();
  metrics_->postgres_up.Set(0);
  const bool was_up = pg_up_.exchange(false);
  if (outage_log_.count() != 0 || was_up) {
    spdlog::warn("postgresql ({}): {} failed: {}; pausing consumption and reconnecting",
                 redact_uri(config_.postgres.uri), during, failure.describe());
  } else {
    spdlog::debug("postgresql: {} failed: {}", during, failure.describe());
  }
  lose_positions();
  // A job that fails again and again must not spin: each consecutive failure doubles the wait.
  backoff_ = backoff_delay(options_.backoff_initial, options_.backoff_max, failed_in_a_row_ - 1);
  next_attempt_ = Clock::now() + backoff_;
}

void Ingestor::settle(PgDone& done) {
  pg_ = PgState::idle;
  last_job_end_ = Clock::now();
  const auto& job = done.job;
  if (done.outcome == PgOutcome::ok) {
    // Only finished work ends a run of failures: a reconnect (and the offsets read with it) that
    // works says nothing of the batch that failed before it, so a batch that fails every time
    // waits twice as long each time instead of being retried at the first step's pace.
    if (job.kind == PgJob::Kind::write || (!job.connect && job.partitions.empty())) failed_in_a_row_ = 0;
    if (!pg_up_.exchange(true) && outage_log_.seen() != 0) spdlog::info("postgresql: connected again; resuming");
    outage_log_.reset();
    metrics_->postgres_up.Set(1);
  }
  if (job.kind == PgJob::Kind::sync) {
    if (done.outcome == PgOutcome::ok) {
      positions_read(done);
    } else {
      pg_failed(done.failure, job_name(job));
    }
    return;
  }
  metrics_->batch_duration.Observe(done.took.count());
  // Whatever committed (all of it, or the pieces before a failure) is stored.
  if (done.rows_written || done.dead_letters_written || !done.committed.empty()) {
    metrics_->rows_written.Increment(static_cast<double>(done.rows_written));
    metrics_->dead_letters.Increment(static_cast<double>(done.dead_letters_written));
    for (const auto& [p, next] : done.committed) {
      if (auto it = parts_.find(p); it != parts_.end()) it->second.stored = next;
    }
    commit_to_kafka(done.committed);
  }
  switch (done.outcome) {
    case PgOutcome::ok:
      metrics_->batches_committed.Increment();
      spdlog::debug("batch: {} rows, {} dead letters ({} refused by PostgreSQL), written in {:.1f} ms",
                    done.rows_written, done.dead_letters_written, done.refused, done.took.count() * 1000);
      return;
    case PgOutcome::fenced:
      metrics_->batches_fenced.Increment();
      spdlog::info("batch of {} messages fenced: another writer has moved on; re-reading offsets",
                   job.batch.messages());
      lose_positions();
      return;
    case PgOutcome::in_doubt:
      metrics_->batches_failed.Increment();
      in_doubt_ = InDoubt{done.in_doubt, done.in_doubt_rows, done.in_doubt_dead_letters};
      pg_failed(done.failure, "commit (outcome unknown)");
      return;
    case PgOutcome::failed:
      metrics_->batches_failed.Increment();
      pg_failed(done.failure, "writing a batch");
      return;
  }
}

// ---- the PostgreSQL thread ----

void Ingestor::run_job(PgDone& done) {
  const auto& job = done.job;
  try {
    if (job.connect || !sink_.connected()) sink_.connect();
    if (job.kind == PgJob::Kind::write) {
      ensure_days(job.batch);
      done.outcome = write_isolating(std::move(done.job.batch), done) ? PgOutcome::ok : PgOutcome::fenced;
      return;
    }
    if (job.maintenance) maintenance();
    if (!job.partitions.empty()) {
      done.offsets = sink_.read_offsets(config_.kafka.topic, job.partitions);
    } else if (!job.connect && !job.maintenance) {
      sink_.ping();
    }
    done.outcome = PgOutcome::ok;
  } catch (const pqxx::in_doubt_error& e) {
    done.outcome = PgOutcome::in_doubt;
    done.failure = PgFailure::from(e);
    sink_.disconnect();
  } catch (const std::exception& e) {
    done.outcome = PgOutcome::failed;
    done.failure = PgFailure::from(e);
    sink_.disconnect();
  }
}

bool Ingestor::write_isolating(Batch batch, PgDone& done) {
  try {
    if (sink_.write(batch) == PgSink::Result::fenced) return false;
    done.rows_written += batch.rows.size();
    done.dead_letters_written += batch.dead_letters.size();
    for (const auto& [p, span] : batch.partitions) done.committed[p] = span.next;
    return true;
  } catch (const pqxx::in_doubt_error&) {
    done.in_doubt = batch.partitions;
    done.in_doubt_rows = batch.rows.size();
    done.in_doubt_dead_letters = batch.dead_letters.size();
    throw;
  } catch (const pqxx::sql_error& e) {
    const auto failure = PgFailure::from(e);
    if (failure.is_retryable() || batch.rows.empty()) throw;
    if (batch.messages() > 1) {
      spdlog::debug("postgresql refused a batch of {} messages ({}); splitting it", batch.messages(),
                    failure.describe());
      auto [first, second] = split_batch(std::move(batch));
      return write_isolating(std::move(first), done) && write_isolating(std::move(second), done);
    }
    // The one message PostgreSQL refuses: a dead letter with the server's reason and its bytes.
    auto dl = refused_row(batch, 0, "refused by PostgreSQL: " + failure.describe());
    spdlog::warn("partition {} offset {}: {}; stored in dead_letters", dl.partition, dl.offset, dl.reason);
    batch.rows.clear();
    batch.origins.clear();
    batch.raw.clear();
    batch.dead_letters.push_back(std::move(dl));
    ++done.refused;
    return write_isolating(std::move(batch), done);
  }
}

void Ingestor::maintenance() {
  const auto today = today_utc();
  std::set<std::chrono::sys_days> days;
  for (int d = -1; d <= 2; ++d) days.insert(today + std::chrono::days(d));
  sink_.ensure_partitions(days);
  if (config_.writer.retention_days) {
    const int dropped = sink_.drop_before(today - std::chrono::days(*config_.writer.retention_days));
    if (dropped > 0) spdlog::info("retention: dropped {} partition(s) older than {} days", dropped,
                                  *config_.writer.retention_days);
  }
}

void Ingestor::ensure_days(const Batch& batch) {
  // Partitions for the days in the batch (a month back at most: older rows go to the default
  // partition rather than create a table per stray day).
  const auto today = today_utc();
  const auto oldest = today - std::chrono::days(config_.writer.retention_days.value_or(31));
  std::set<std::chrono::sys_days> days;
  for (const auto& r : batch.rows) {
    const auto d = std::chrono::floor<std::chrono::days>(r.scheduled_at);
    if (d >= oldest && d <= today + std::chrono::days(2)) days.insert(std::chrono::sys_days(d));
  }
  sink_.ensure_partitions(days);
}

// ---- Kafka ----

void Ingestor::on_message(const rd_kafka_message_t* msg) {
  if (msg->err) {
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    if (msg->err == RD_KAFKA_RESP_ERR__FATAL) {
      on_fatal(rk_.get());
      return;
    }
    const auto now = Clock::now();
    if (now - last_kafka_warning_ > std::chrono::seconds(10)) {
      last_kafka_warning_ = now;
      spdlog::warn("kafka: {}", rd_kafka_message_errstr(msg));
    }
    return;
  }
  kafka_up_ = true;
  auto it = parts_.find(msg->partition);
  if (it == parts_.end() || it->second.phase != Phase::consuming) return;  // not ours, or position unknown
  auto& s = it->second;
  if (s.position) {
    if (msg->offset < *s.position) return;  // fetched before a seek; already handled
    if (msg->offset > *s.position) {
      // Kafka no longer holds the messages in between (retention) or they were never data.
      metrics_->offset_gaps.Increment();
      spdlog::warn("partition {}: expected offset {}, got {}", msg->partition, *s.position, msg->offset);
    }
  }
  InMessage m;
  m.topic = config_.kafka.topic;
  m.partition = msg->partition;
  m.offset = msg->offset;
  if (msg->key) m.key = std::string_view(static_cast<const char*>(msg->key), msg->key_len);
  if (msg->payload) m.value = std::string_view(static_cast<const char*>(msg->payload), msg->len);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR && headers) {
    const void* v = nullptr;
    std::size_t n = 0;
    static const std::string header_name(kSchemaHeaderName);
    if (rd_kafka_header_get_last(headers, header_name.c_str(), &v, &n) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      m.schema_header = v ? std::string_view(static_cast<const char*>(v), n) : std::string_view();
    }
  }
  builder_.add(m, s.fence, Clock::now());
  s.position = msg->offset + 1;
}

void Ingestor::commit_to_kafka(const std::map<std::int32_t, std::int64_t>& offsets) {
  // Only partitions this consumer holds: a batch settled after a rebalance error or a new
  // consumer (rejoin_after_fence) is not this membership's to commit.
  std::map<std::int32_t, std::int64_t> held;
  for (const auto& [p, next] : offsets) {
    if (parts_.count(p)) held[p] = next;
  }
  if (held.empty()) return;
  auto list = make_list(config_.kafka.topic, held);
  rd_kafka_commit(rk_.get(), list.get(), 1);  // async: only lag tools read it
  for (const auto& [p, next] : held) {
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    if (rd_kafka_get_watermark_offsets(rk_.get(), config_.kafka.topic.c_str(), p, &lo, &hi) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        hi >= 0) {
      metrics_->set_lag(config_.kafka.topic, p, static_cast<double>(std::max<std::int64_t>(0, hi - next)));
    }
  }
}

void Ingestor::check_kafka() {
  // Readiness when no messages flow: a metadata request answered means the brokers are back.
  const auto now = Clock::now();
  if (kafka_up_ || now < next_kafka_check_) return;
  next_kafka_check_ = now + std::chrono::seconds(5);
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk_.get(), 0, nullptr, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    kafka_up_ = true;
    rd_kafka_metadata_destroy(md);
  }
}

void Ingestor::subscribe() {
  kafka::TopicPartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), config_.kafka.topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(rk_.get(), topics.get())) {
    throw std::runtime_error(std::string("kafka subscribe: ") + rd_kafka_err2str(err));
  }
  // The first partition check once the join has had time to settle.
  next_partition_check_ = Clock::now() + kPartitionCheckEvery;
  uncovered_in_a_row_ = 0;
}

void Ingestor::check_partitions() {
  // A group assigns the partitions its leader sees when the group rebalances. Partitions added
  // later are noticed by librdkafka only as a change of the partition count it saw before
  // (topic.metadata.refresh.interval.ms, 5 min by default), and never by a static member that
  // restarted after they were added: Kafka hands it its old assignment without a rebalance. So
  // every 10 s the topic's partition count is read, and when it is more than the group's
  // assignment was seen to hold, the group is asked what its members hold; partitions no member
  // holds, found twice in a row (not a rebalance's passing state), make this writer leave the
  // group and join again, which is a rebalance: the assignor hands out every partition, the new
  // ones start at their earliest offset (none is stored in ingest_offsets), the others where
  // ingest_offsets says.
  const auto now = Clock::now();
  if (resubscribe_at_) {
    // Joined again once the revocation has been served (librdkafka sends LeaveGroup after it).
    kafka::TopicPartitionListPtr assignment;
    rd_kafka_topic_partition_list_t* raw = nullptr;
    if (rd_kafka_assignment(rk_.get(), &raw) == RD_KAFKA_RESP_ERR_NO_ERROR) assignment.reset(raw);
    if (now < *resubscribe_at_ || !parts_.empty() || (assignment && assignment->cnt > 0)) return;
    resubscribe_at_.reset();
    subscribe();
    spdlog::info("kafka: joining group {} again", config_.writer.group_id);
    return;
  }
  if (!kafka_up_ || now < next_partition_check_) return;
  next_partition_check_ = now + kPartitionCheckEvery;
  int partitions = 0;
  try {
    partitions = kafka::topic_partitions(rk_.get(), config_.kafka.topic, 1000);
  } catch (const std::exception& e) {
    spdlog::debug("kafka: {}", e.what());  // no answer now: next time
    return;
  }
  if (partitions <= partitions_covered_) {
    uncovered_in_a_row_ = 0;
    return;
  }
  const auto held = partitions_held_by_group(partitions);
  if (!held) return;  // no answer, or the group is rebalancing: next time
  if (*held == static_cast<std::size_t>(partitions)) {
    partitions_covered_ = partitions;
    uncovered_in_a_row_ = 0;
    return;
  }
  if (++uncovered_in_a_row_ < 2) return;
  uncovered_in_a_row_ = 0;
  spdlog::info(
      "kafka: topic {} has {} partitions and the members of group {} hold {} of them (partitions added?); "
      "leaving the group and joining again so that all are assigned",
      config_.kafka.topic, partitions, config_.writer.group_id, *held);
  if (auto err = rd_kafka_unsubscribe(rk_.get())) {
    spdlog::warn("kafka unsubscribe: {}", rd_kafka_err2str(err));
    return;
  }
  resubscribe_at_ = now + std::chrono::seconds(1);
}

std::optional<std::size_t> Ingestor::partitions_held_by_group(int partitions) {
  constexpr int kTimeoutMs = 3000;
  std::array<char, 512> err{};
  kafka::AdminOptionsPtr opts(rd_kafka_AdminOptions_new(rk_.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS));
  if (rd_kafka_AdminOptions_set_request_timeout(opts.get(), kTimeoutMs, err.data(), err.size())) return std::nullopt;
  kafka::QueuePtr queue(rd_kafka_queue_new(rk_.get()));
  const char* groups[] = {config_.writer.group_id.c_str()};
  rd_kafka_DescribeConsumerGroups(rk_.get(), groups, 1, opts.get(), queue.get());
  kafka::EventPtr ev(rd_kafka_queue_poll(queue.get(), kTimeoutMs + 1000));
  if (!ev || rd_kafka_event_error(ev.get())) {
    spdlog::debug("kafka: describing group {}: {}", config_.writer.group_id,
                  ev ? rd_kafka_event_error_string(ev.get()) : "no answer in time");
    return std::nullopt;
  }
  std::size_t n = 0;
  const auto** descs = rd_kafka_DescribeConsumerGroups_result_groups(
      rd_kafka_event_DescribeConsumerGroups_result(ev.get()), &n);
  if (n != 1 || rd_kafka_ConsumerGroupDescription_error(descs[0]) ||
      rd_kafka_ConsumerGroupDescription_state(descs[0]) != RD_KAFKA_CONSUMER_GROUP_STATE_STABLE) {
    return std::nullopt;
  }
  std::set<std::int32_t> held;
  for (std::size_t m = 0; m < rd_kafka_ConsumerGroupDescription_member_count(descs[0]); ++m) {
    const auto* member = rd_kafka_ConsumerGroupDescription_member(descs[0], m);
    const auto* assignment = member ? rd_kafka_MemberDescription_assignment(member) : nullptr;
    const auto* list = assignment ? rd_kafka_MemberAssignment_partitions(assignment) : nullptr;
    for (int i = 0; list && i < list->cnt; ++i) {
      const auto& e = list->elems[i];
      if (config_.kafka.topic == e.topic && e.partition >= 0 && e.partition < partitions) held.insert(e.partition);
    }
  }
  return held.size();
}

void Ingestor::feed_watchdog() {
  if (!watchdog_) return;
  const auto now = Clock::now();
  if (now < next_watchdog_) return;
  service::notify_watchdog();
  next_watchdog_ = now + *watchdog_ / 2;
}

bool Ingestor::run() {
  try {
    kafka::ensure_topic(rk_.get(), config_.kafka.topic, config_.kafka.topic_partitions, 10000);
  } catch (const std::exception& e) {
    // The checker creates it too; subscribing to a missing topic just waits for it.
    spdlog::warn("{}", e.what());
  }
  subscribe();
  spdlog::info("kafka: group {} as instance {}", config_.writer.group_id, config_.writer.instance_id);
  kafka_up_ = true;  // until librdkafka says all brokers are down
  pg_ = PgState::down;
  next_attempt_ = Clock::now();
  if (auto w = service::watchdog_interval()) watchdog_ = std::chrono::duration_cast<Clock::duration>(*w);

  while (!stop_.load()) {
    if (fatal_.load()) {
      if (!rejoin_after_fence()) break;
      continue;
    }
    feed_watchdog();
    if (auto done = worker_->poll()) settle(*done);
    step_pg(Clock::now());
    check_kafka();
    check_partitions();
    if (builder_.full()) {
      // One batch in flight and the next one ready: this is the back-pressure. Bounded: past the
      // deadline the job is aborted and returns.
      if (auto done = worker_->wait_for(milliseconds(100))) settle(*done);
      continue;
    }
    auto timeout = milliseconds(100);
    if (auto deadline = builder_.deadline()) {
      timeout = std::clamp(std::chrono::duration_cast<milliseconds>(*deadline - Clock::now()), milliseconds(0),
                           timeout);
    }
    if (pg_ == PgState::busy) timeout = std::min(timeout, milliseconds(20));  // settle it soon after it ends
    if (kafka::MessagePtr msg{rd_kafka_consumer_poll(rk_.get(), static_cast<int>(timeout.count()))}) {
      on_message(msg.get());
      // Drain what librdkafka already holds without waiting, up to a full batch.
      while (!builder_.full()) {
        kafka::MessagePtr next{rd_kafka_consumer_poll(rk_.get(), 0)};
        if (!next) break;
        on_message(next.get());
      }
    }
  }

  if (fatal_ && stop_) {
    spdlog::error("kafka: fatal error {} while stopping: {}", rd_kafka_err2name(fatal_code_), fatal_reason_);
  }
  if (!fatal_) {
    // Finish the batch in flight and the one built if PostgreSQL is there; otherwise they are
    // read again next time.
    if (pg_ == PgState::busy) {
      if (auto done = await_job()) settle(*done);
    }
    if (pg_ == PgState::idle && !builder_.empty()) {
      submit_batch();
      if (auto done = await_job()) settle(*done);
    }
  }
  builder_.discard();
  spdlog::info("leaving the consumer group");
  close_consumer();
  pg_up_ = false;
  return !fatal_;
}

namespace {

// Ends the process if the consumer's close has not returned within `limit`. Every batch is
// settled before the close begins and the positions are PostgreSQL's, so nothing is lost: a stop
// that was asked for happens, as systemd's TimeoutStopSec would make it happen later with SIGKILL.
class CloseDeadline {
 public:
  explicit CloseDeadline(std::chrono::seconds limit) : thread_([this, limit] { watch(limit); }) {}
  ~CloseDeadline() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  CloseDeadline(const CloseDeadline&) = delete;
  CloseDeadline& operator=(const CloseDeadline&) = delete;

 private:
  void watch(std::chrono::seconds limit) {
    std::unique_lock lock(mutex_);
    if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
    spdlog::error(
        "kafka: the consumer's close has not returned after {} s; exiting without it (every batch is settled, "
        "the positions are in PostgreSQL: nothing is lost; the group hands this writer's partitions on)",
        limit.count());
    spdlog::default_logger()->flush();
    std::_Exit(0);
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: started once the members it uses are
};

}  // namespace

void Ingestor::close_consumer() {
  closing_ = true;
  {
    const CloseDeadline deadline(kCloseLimit);
    rd_kafka_consumer_close(rk_.get());
    rk_.reset();  // rd_kafka_destroy() waits for librdkafka's threads: under the same bound
  }
  closing_ = false;
}

}  // namespace webmon::writer
