#include "webmon/writer/metrics.hpp"

namespace webmon::writer {
namespace {

prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& r, const std::string& name,
                                                        const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

}  // namespace

WriterMetrics::WriterMetrics(std::shared_ptr<prometheus::Registry> registry)
    : rows_written(counter_family(*registry, "webmon_writer_rows_written_total", "Checks committed to PostgreSQL")
                       .Add({})),
      batches_committed(counter_family(*registry, "webmon_writer_batches_total", "Batches by outcome")
                            .Add({{"result", "committed"}})),
      batches_fenced(counter_family(*registry, "webmon_writer_batches_total", "Batches by outcome")
                         .Add({{"result", "fenced"}})),
      batches_failed(counter_family(*registry, "webmon_writer_batches_total", "Batches by outcome")
                         .Add({{"result", "failed"}})),
      batch_duration(prometheus::BuildHistogram()
                         .Name("webmon_writer_batch_duration_seconds")
                         .Help("Time to write one batch (one transaction)")
                         .Register(*registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                                           1, 2.5, 5, 10})),
      dead_letters(counter_family(*registry, "webmon_writer_dead_letters_total",
                                  "Messages stored in dead_letters (undecodable or unstorable)")
                       .Add({})),
      postgres_errors(counter_family(*registry, "webmon_writer_postgres_errors_total",
                                     "PostgreSQL errors (connection lost, failed statements)")
                          .Add({})),
      postgres_retries(counter_family(*registry, "webmon_writer_postgres_retries_total",
                                      "Attempts to reconnect to PostgreSQL")
                           .Add({})),
      postgres_up(prometheus::BuildGauge()
                      .Name("webmon_writer_postgres_up")
                      .Help("1 when connected to PostgreSQL")
                      .Register(*registry)
                      .Add({})),
      offset_gaps(counter_family(*registry, "webmon_writer_offset_gaps_total",
                                 "Times a partition's next message was past the stored offset")
                      .Add({})),
      registry_(std::move(registry)),
      lag_family_(prometheus::BuildGauge()
                      .Name("webmon_writer_consumer_lag")
                      .Help("Messages in the partition not yet written (high watermark - stored offset)")
                      .Register(*registry_)) {}

void WriterMetrics::set_lag(const std::string& topic, std::int32_t partition, double lag) {
  std::lock_guard lock(mutex_);
  auto& g = lag_[{topic, partition}];
  if (!g) g = &lag_family_.Add({{"topic", topic}, {"partition", std::to_string(partition)}});
  g->Set(lag);
}

void WriterMetrics::remove_lag(const std::string& topic, std::int32_t partition) {
  std::lock_guard lock(mutex_);
  if (auto it = lag_.find({topic, partition}); it != lag_.end()) {
    lag_family_.Remove(it->second);
    lag_.erase(it);
  }
}

}  // namespace webmon::writer
