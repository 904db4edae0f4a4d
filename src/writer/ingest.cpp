#include "webmon/writer/ingest.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <stdexcept>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "webmon/common/logging.hpp"
#include "webmon/common/service.hpp"
#include "webmon/writer/batch_worker.hpp"

namespace webmon::writer {
namespace {

using Clock = std::chrono::steady_clock;

kafka::TopicPartitionListPtr make_list(const std::string& topic, const std::map<std::int32_t, std::int64_t>& offsets) {
  kafka::TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& [p, off] : offsets) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = off;
  return list;
}

std::chrono::sys_days today_utc() {
  return std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
}

}  // namespace

Ingestor::Ingestor(const Config& config, std::shared_ptr<WriterMetrics> metrics, const std::atomic<bool>& stop,
                   IngestOptions options)
    : config_(config),
      metrics_(std::move(metrics)),
      stop_(stop),
      options_(options),
      sink_(config.postgres.uri, config.writer.group_id),
      builder_(config.writer.batch_max_rows, config.writer.batch_max_ms) {
  // Positions come from PostgreSQL: nothing is committed or stored automatically. Kafka's
  // committed offsets are written only after PostgreSQL's, for lag tools.
  auto conf = kafka::make_conf(config_.kafka, {
                                                  {"group.id", config_.writer.group_id},
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
  worker_ = std::make_unique<BatchWorker>([this](const Batch& batch) {
    ensure_days(batch);
    return sink_.write(batch);
  });
}

Ingestor::~Ingestor() = default;

void Ingestor::rebalance_cb(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                            void* opaque) {
  static_cast<Ingestor*>(opaque)->on_rebalance(err, parts);
}

void Ingestor::error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<Ingestor*>(opaque);
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) self->kafka_up_ = false;
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    std::array<char, 512> buf{};
    rd_kafka_fatal_error(rk, buf.data(), buf.size());
    spdlog::critical("kafka: fatal error: {}", buf.data());
    return;
  }
  const auto now = Clock::now();
  if (now - self->last_kafka_warning_ > std::chrono::seconds(10)) {
    self->last_kafka_warning_ = now;
    spdlog::warn("kafka: {}", reason);
  }
}

void Ingestor::on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
  settle_worker();  // the sink is this thread's again
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    kafka_up_ = true;
    parts_.clear();
    std::vector<std::int32_t> ids;
    for (int i = 0; i < parts->cnt; ++i) {
      ids.push_back(parts->elems[i].partition);
      parts_[parts->elems[i].partition] = PartitionState{};
    }
    spdlog::info("assigned {} partition(s) of {}", ids.size(), config_.kafka.topic);
    if (sink_.connected()) {
      try {
        const auto stored = sink_.read_offsets(config_.kafka.topic, ids);
        for (int i = 0; i < parts->cnt; ++i) {
          auto& s = parts_[parts->elems[i].partition];
          s.stored = stored.at(parts->elems[i].partition);
          s.position = s.stored;
          s.fence = s.stored;
          s.synced = true;
          parts->elems[i].offset = s.stored ? *s.stored : RD_KAFKA_OFFSET_BEGINNING;
        }
        rd_kafka_assign(rk_.get(), parts);
        return;
      } catch (const std::exception& e) {
        for (auto& [p, s] : parts_) s = PartitionState{};
        on_pg_failure(e, "reading offsets");
      }
    }
    // Without PostgreSQL the positions are unknown: assign (the group expects it), but paused,
    // and whatever arrives is dropped until sync_positions() seeks to the stored offsets.
    rd_kafka_assign(rk_.get(), parts);
    rd_kafka_pause_partitions(rk_.get(), parts);
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    // Write what has been read from these partitions while they are still ours; if that fails the
    // next owner reads it again from the stored offsets.
    if (!builder_.empty()) {
      if (sink_.connected()) flush_now();
      builder_.discard();
    }
  } else {
    spdlog::warn("kafka rebalance error: {}", rd_kafka_err2str(err));
  }
  for (const auto& [p, s] : parts_) metrics_->remove_lag(config_.kafka.topic, p);
  parts_.clear();
  rd_kafka_assign(rk_.get(), nullptr);
}

void Ingestor::on_pg_failure(const std::exception& e, const char* during) {
  metrics_->postgres_errors.Increment();
  metrics_->postgres_up.Set(0);
  if (pg_up_.exchange(false)) {
    spdlog::warn("postgresql: {} failed: {}; pausing consumption and reconnecting", during, e.what());
    outage_logged_ = true;
  } else {
    spdlog::debug("postgresql: {} failed: {}", during, e.what());
  }
  sink_.disconnect();
  builder_.discard();
  std::map<std::int32_t, std::int64_t> all;
  for (auto& [p, s] : parts_) {
    s.synced = false;
    all[p] = RD_KAFKA_OFFSET_INVALID;
  }
  if (!all.empty()) {
    auto list = make_list(config_.kafka.topic, all);
    rd_kafka_pause_partitions(rk_.get(), list.get());
  }
  // A batch that fails again and again (not a lost connection but, say, a row PostgreSQL refuses)
  // must not spin: each consecutive failure doubles the wait before the next attempt.
  const int doublings = std::min(failed_in_a_row_, 10);
  backoff_ = std::min(options_.backoff_initial * (1 << doublings), options_.backoff_max);
  next_attempt_ = Clock::now() + backoff_;
}

void Ingestor::sync_positions() {
  if (parts_.empty()) return;
  std::vector<std::int32_t> ids;
  for (const auto& [p, s] : parts_) ids.push_back(p);
  const auto stored = sink_.read_offsets(config_.kafka.topic, ids);

  if (in_doubt_) {
    bool landed = true;
    for (const auto& [p, span] : in_doubt_->partitions) {
      auto it = stored.find(p);
      if (it == stored.end() || it->second != std::optional<std::int64_t>(span.next)) landed = false;
    }
    spdlog::info("the batch whose commit was in doubt {}", landed ? "was committed" : "was not committed");
    if (landed) {
      metrics_->rows_written.Increment(static_cast<double>(in_doubt_->rows.size()));
      metrics_->dead_letters.Increment(static_cast<double>(in_doubt_->dead_letters.size()));
    }
    in_doubt_.reset();
  }

  std::map<std::int32_t, std::int64_t> offsets;
  for (auto& [p, s] : parts_) {
    s.stored = stored.at(p);
    s.position = s.stored;
    s.fence = s.stored;
    s.synced = true;
    offsets[p] = s.stored ? *s.stored : RD_KAFKA_OFFSET_BEGINNING;
  }
  // Re-assigning with explicit offsets restarts every fetcher there and discards what was
  // prefetched from the old positions.
  auto list = make_list(config_.kafka.topic, offsets);
  if (auto err = rd_kafka_assign(rk_.get(), list.get())) {
    throw std::runtime_error(std::string("kafka assign: ") + rd_kafka_err2str(err));
  }
  rd_kafka_resume_partitions(rk_.get(), list.get());
}

void Ingestor::try_reconnect() {
  if (Clock::now() < next_attempt_) return;
  metrics_->postgres_retries.Increment();
  try {
    sink_.connect();
    sync_positions();
    pg_up_ = true;
    metrics_->postgres_up.Set(1);
    next_maintenance_ = Clock::now();
    if (outage_logged_) spdlog::info("postgresql: connected again; resuming");
    outage_logged_ = false;
  } catch (const std::exception& e) {
    sink_.disconnect();
    for (auto& [p, s] : parts_) s.synced = false;
    if (!outage_logged_) {
      spdlog::warn("postgresql: cannot connect to {}: {}; retrying with backoff", redact_uri(config_.postgres.uri),
                   e.what());
      outage_logged_ = true;
    } else {
      spdlog::debug("postgresql: still unavailable: {}", e.what());
    }
    metrics_->postgres_errors.Increment();
    backoff_ = std::min(std::max(backoff_ * 2, options_.backoff_initial), options_.backoff_max);
    next_attempt_ = Clock::now() + backoff_;
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
  next_maintenance_ = Clock::now() + options_.maintenance_every;
}

void Ingestor::on_message(const rd_kafka_message_t* msg) {
  if (msg->err) {
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    const auto now = Clock::now();
    if (now - last_kafka_warning_ > std::chrono::seconds(10)) {
      last_kafka_warning_ = now;
      spdlog::warn("kafka: {}", rd_kafka_message_errstr(msg));
    }
    return;
  }
  kafka_up_ = true;
  auto it = parts_.find(msg->partition);
  if (it == parts_.end() || !it->second.synced) return;  // not ours, or position unknown: read again later
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

void Ingestor::commit_to_kafka(const Batch& batch) {
  std::map<std::int32_t, std::int64_t> offsets;
  for (const auto& [p, span] : batch.partitions) offsets[p] = span.next;
  auto list = make_list(batch.topic, offsets);
  rd_kafka_commit(rk_.get(), list.get(), 1);  // async: only lag tools read it
  for (const auto& [p, span] : batch.partitions) {
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    if (rd_kafka_get_watermark_offsets(rk_.get(), batch.topic.c_str(), p, &lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        hi >= 0) {
      metrics_->set_lag(batch.topic, p, static_cast<double>(std::max<std::int64_t>(0, hi - span.next)));
    }
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

void Ingestor::submit() {
  Batch batch = builder_.take();
  // The next batch of each partition is fenced on where this one ends; if this one fails, the
  // next is discarded unwritten (settle) and both are read again.
  for (const auto& [p, span] : batch.partitions) {
    if (auto it = parts_.find(p); it != parts_.end()) it->second.fence = span.next;
  }
  worker_->submit(std::move(batch));
}

void Ingestor::settle_worker() {
  if (!worker_ || !worker_->busy()) return;
  auto done = worker_->wait();
  settle(done);
}

void Ingestor::flush_now() {
  settle_worker();
  if (builder_.empty() || !sink_.connected()) return;
  submit();
  settle_worker();
}

void Ingestor::settle(BatchDone& done) {
  const auto& batch = done.batch;
  metrics_->batch_duration.Observe(done.took.count());
  switch (done.outcome) {
    case BatchOutcome::committed:
      failed_in_a_row_ = 0;
      metrics_->batches_committed.Increment();
      metrics_->rows_written.Increment(static_cast<double>(batch.rows.size()));
      metrics_->dead_letters.Increment(static_cast<double>(batch.dead_letters.size()));
      for (const auto& [p, span] : batch.partitions) {
        if (auto it = parts_.find(p); it != parts_.end()) it->second.stored = span.next;
      }
      spdlog::debug("batch: {} rows, {} dead letters, written in {:.1f} ms", batch.rows.size(),
                    batch.dead_letters.size(), done.took.count() * 1000);
      commit_to_kafka(batch);
      return;
    case BatchOutcome::fenced:
      metrics_->batches_fenced.Increment();
      spdlog::info("batch of {} messages fenced: another writer has moved on; re-reading offsets", batch.messages());
      builder_.discard();
      try {
        sync_positions();
      } catch (const std::exception& e) {
        on_pg_failure(e, "re-reading offsets");
      }
      return;
    case BatchOutcome::in_doubt:
      ++failed_in_a_row_;
      metrics_->batches_failed.Increment();
      in_doubt_ = std::move(done.batch);
      on_pg_failure(std::runtime_error(done.error), "commit (outcome unknown)");
      return;
    case BatchOutcome::failed:
      ++failed_in_a_row_;
      metrics_->batches_failed.Increment();
      on_pg_failure(std::runtime_error(done.error), "writing a batch");
      return;
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

void Ingestor::run() {
  try {
    kafka::ensure_topic(rk_.get(), config_.kafka.topic, config_.kafka.topic_partitions, 10000);
  } catch (const std::exception& e) {
    // The checker creates it too; subscribing to a missing topic just waits for it.
    spdlog::warn("{}", e.what());
  }
  {
    kafka::TopicPartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(topics.get(), config_.kafka.topic.c_str(), RD_KAFKA_PARTITION_UA);
    if (auto err = rd_kafka_subscribe(rk_.get(), topics.get())) {
      throw std::runtime_error(std::string("kafka subscribe: ") + rd_kafka_err2str(err));
    }
  }
  kafka_up_ = true;  // until librdkafka says all brokers are down
  backoff_ = std::chrono::milliseconds(0);
  next_attempt_ = Clock::now();
  const auto watchdog = service::watchdog_interval();
  auto next_watchdog = Clock::now();

  while (!stop_.load()) {
    const auto now = Clock::now();
    if (watchdog && now >= next_watchdog) {
      service::notify_watchdog();
      next_watchdog = now + *watchdog / 2;
    }
    if (auto done = worker_->poll()) settle(*done);
    if (!worker_->busy()) {
      if (!sink_.connected()) {
        try_reconnect();
      } else if (now >= next_maintenance_) {
        try {
          maintenance();
        } catch (const std::exception& e) {
          on_pg_failure(e, "partition maintenance");
        }
      }
    }
    check_kafka();

    if (!builder_.full()) {
      auto timeout = std::chrono::milliseconds(100);
      if (auto deadline = builder_.deadline()) {
        timeout = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now),
                             std::chrono::milliseconds(0), timeout);
      }
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
    if (sink_.connected() && builder_.due(Clock::now())) {
      settle_worker();  // one batch in flight at most: this is the back-pressure
      if (sink_.connected() && !builder_.empty()) submit();
    }
  }

  // Finish the batches in flight if PostgreSQL is there; otherwise they are read again next time.
  flush_now();
  builder_.discard();
  spdlog::info("leaving the consumer group");
  rd_kafka_consumer_close(rk_.get());
  pg_up_ = false;
}

}  // namespace webmon::writer
