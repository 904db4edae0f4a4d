// Publishes results to Kafka: one rd_kafka_t per process, idempotent (acks=all), compressed,
// messages that never expire while queued, and a bounded queue. publish() never blocks the calling
// io_context: a full queue drops the result and counts it. Delivery reports are served by a
// dedicated poll thread, which also ensures the topic exists (admin API) and retries until it does.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "webmon/common/check_result.hpp"
#include "webmon/common/config.hpp"
#include "webmon/common/kafka.hpp"
#include "webmon/common/log_limit.hpp"

namespace webmon::checker {

class CheckerMetrics;

class Producer {
 public:
  // The defaults the checker sets before `kafka.properties` (which may override them).
  static kafka::Properties default_properties(const std::string& instance_id);

  // Creates the handle; throws kafka::ConfigError for a property librdkafka refuses.
  Producer(const KafkaConfig& cfg, const std::string& instance_id, CheckerMetrics& metrics);
  ~Producer();  // stops the poll thread; does not flush (call flush() first)
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Starts the poll thread (delivery reports, topic creation).
  void start();

  // Encodes and enqueues; thread-safe and non-blocking. Returns false when the result was dropped
  // (queue full, or another local error, logged).
  bool publish(const CheckResult& r);

  // Waits up to `limit` for queued results to be delivered; returns how many were still queued.
  int flush(std::chrono::milliseconds limit);

  // True once a broker answered (topic ensured or a result delivered) and until all brokers are down.
  bool connected() const noexcept { return connected_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque) noexcept;
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) noexcept;
  void poll_loop();

  std::string topic_;
  int partitions_;
  CheckerMetrics& metrics_;
  kafka::HandlePtr rk_;
  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::atomic<bool> topic_ready_{false};
  std::atomic<std::uint64_t> dropped_{0};
  LogLimit delivery_error_log_;  // the first 10 delivery errors, then every 1000th
};

}  // namespace webmon::checker
