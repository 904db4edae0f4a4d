// The writer's Prometheus series (rows, batches, batch duration, dead letters, lag per partition,
// PostgreSQL errors and retries), kept in a registry that the metrics endpoint serves.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace webmon::writer {

class WriterMetrics {
 public:
  explicit WriterMetrics(std::shared_ptr<prometheus::Registry> registry);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  void set_lag(const std::string& topic, std::int32_t partition, double lag);
  void remove_lag(const std::string& topic, std::int32_t partition);

  prometheus::Counter& rows_written;
  prometheus::Counter& batches_committed;
  prometheus::Counter& batches_fenced;   // another writer had moved the partition on
  prometheus::Counter& batches_failed;   // PostgreSQL failed during the batch (rolled back)
  prometheus::Histogram& batch_duration;
  prometheus::Counter& dead_letters;
  prometheus::Counter& postgres_errors;
  prometheus::Counter& postgres_retries;  // reconnection attempts
  prometheus::Gauge& postgres_up;
  prometheus::Counter& offset_gaps;       // messages that skipped ahead of the stored offset

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& lag_family_;
  std::mutex mutex_;
  std::map<std::pair<std::string, std::int32_t>, prometheus::Gauge*> lag_;
};

}  // namespace webmon::writer
