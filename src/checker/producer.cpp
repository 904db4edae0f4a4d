#include "webmon/checker/producer.hpp"

#include <array>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "webmon/checker/metrics.hpp"

namespace webmon::checker {

kafka::Properties Producer::default_properties(const std::string& instance_id) {
  return {
      {"client.id", "webmon-checker-" + instance_id},
      {"enable.idempotence", "true"},  // implies acks=all and ordered, de-duplicated retries
      {"compression.type", "lz4"},
      {"linger.ms", "20"},
      {"message.timeout.ms", "0"},  // a queued result never expires: it waits for Kafka
      {"queue.buffering.max.messages", "200000"},
      {"queue.buffering.max.kbytes", "262144"},
  };
}

Producer::Producer(const KafkaConfig& cfg, const std::string& instance_id, CheckerMetrics& metrics)
    : topic_(cfg.topic), partitions_(cfg.topic_partitions), metrics_(metrics) {
  auto conf = kafka::make_conf(cfg, default_properties(instance_id));
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::on_delivery);
  rd_kafka_conf_set_error_cb(conf.get(), &Producer::on_error);
  rk_ = kafka::new_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

Producer::~Producer() {
  stop_ = true;
  if (poller_.joinable()) poller_.join();
}

void Producer::start() { poller_ = std::thread([this] { poll_loop(); }); }

bool Producer::publish(const CheckResult& r) {
  // One buffer per calling thread, reused: librdkafka copies the value (F_COPY, into the same
  // allocation as its message) before produceva returns, so this is the one copy.
  thread_local std::string value;
  encode_check_result(r, value);
  kafka::HeadersPtr headers(rd_kafka_headers_new(1));
  rd_kafka_header_add(headers.get(), kSchemaHeaderName.data(), static_cast<ssize_t>(kSchemaHeaderName.size()),
                      kSchemaHeaderValue.data(), static_cast<ssize_t>(kSchemaHeaderValue.size()));
  std::array<rd_kafka_vu_t, 5> vu{};
  vu[0].vtype = RD_KAFKA_VTYPE_TOPIC;
  vu[0].u.cstr = topic_.c_str();
  vu[1].vtype = RD_KAFKA_VTYPE_KEY;
  vu[1].u.mem = {const_cast<char*>(r.target.data()), r.target.size()};
  vu[2].vtype = RD_KAFKA_VTYPE_VALUE;
  vu[2].u.mem = {const_cast<char*>(value.data()), value.size()};
  vu[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vu[3].u.i = RD_KAFKA_MSG_F_COPY;  // no F_BLOCK: a full queue fails at once
  vu[4].vtype = RD_KAFKA_VTYPE_HEADERS;
  vu[4].u.headers = headers.get();
  kafka::ErrorPtr error(rd_kafka_produceva(rk_.get(), vu.data(), vu.size()));
  if (!error) {
    (void)headers.release();  // the message owns the headers now
    return true;
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  metrics_.dropped.Increment();
  if (rd_kafka_error_code(error.get()) != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    spdlog::error("kafka: result of {} not queued: {}", r.target, rd_kafka_error_string(error.get()));
  }
  return false;
}

int Producer::flush(std::chrono::milliseconds limit) {
  rd_kafka_flush(rk_.get(), static_cast<int>(limit.count()));
  return rd_kafka_outq_len(rk_.get());
}

// librdkafka's C callbacks: nothing may cross its C frames, so each catches everything (only the
// logging itself can throw) and the event still counts as what it stands for.
void Producer::on_delivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* msg, void* opaque) noexcept {
  auto* self = static_cast<Producer*>(opaque);
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->metrics_.delivered.Increment();
    self->connected_.store(true, std::memory_order_relaxed);
    return;
  }
  self->metrics_.delivery_errors.Increment();
  try {
    // Log the first few and then every 1000th, so that an outage does not flood the log.
    if (const auto n = self->delivery_error_log_.count()) {
      spdlog::error("kafka: delivery failed ({} so far): {}", n, rd_kafka_err2str(msg->err));
    }
  } catch (...) {
    // The failure is counted above; only its log line is lost.
  }
}

void Producer::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) noexcept {
  auto* self = static_cast<Producer*>(opaque);
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) self->connected_.store(false, std::memory_order_relaxed);
  try {
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
      std::array<char, 512> buf{};
      const auto orig = rd_kafka_fatal_error(rk, buf.data(), buf.size());
      spdlog::critical("kafka: fatal producer error {}: {}", rd_kafka_err2name(orig), buf.data());
      return;
    }
    spdlog::warn("kafka: {}: {}", rd_kafka_err2name(code), reason ? reason : "");
  } catch (...) {
    // Only the log line is lost; the state above is already updated.
  }
}

void Producer::poll_loop() {
  auto next_topic_try = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    rd_kafka_poll(rk_.get(), 100);
    metrics_.kafka_queue.Set(rd_kafka_outq_len(rk_.get()));
    if (!topic_ready_ && std::chrono::steady_clock::now() >= next_topic_try) {
      try {
        kafka::ensure_topic(rk_.get(), topic_, partitions_, 5000);
        topic_ready_ = true;
        connected_ = true;
        spdlog::info("kafka: topic {} ready", topic_);
      } catch (const std::exception& e) {
        spdlog::warn("kafka: cannot ensure topic {} yet ({}); results stay queued, retrying", topic_, e.what());
        next_topic_try = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      }
    }
  }
  rd_kafka_poll(rk_.get(), 0);
}

}  // namespace webmon::checker
