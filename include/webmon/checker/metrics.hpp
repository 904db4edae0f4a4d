// The checker's Prometheus metrics. Counters are prometheus-cpp's (atomic); histograms are
// accumulated per shard without locks and folded into the registry's histograms by a periodic
// flush, so the probe path never takes the histogram's mutex.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "webmon/checker/resolver.hpp"
#include "webmon/common/check_result.hpp"

namespace webmon::checker {

// Outcome label of webmon_checker_probes_total: "ok", "not_ok" (a response arrived but the status
// was not valid or the regexp did not match) or the error class.
std::string_view outcome_label(const CheckResult& r) noexcept;

// Buckets (seconds) shared by the probe duration and lateness histograms.
const std::vector<double>& duration_buckets();

// A histogram one shard fills on its own thread; flush_into() moves what it gathered into a
// prometheus::Histogram (the only place a lock is taken, once per flush).
class LocalHistogram {
 public:
  explicit LocalHistogram(const std::vector<double>& bounds);
  void observe(double v) noexcept;
  void flush_into(prometheus::Histogram& h);

 private:
  const std::vector<double>& bounds_;
  std::vector<double> counts_;  // one per bound, plus +Inf
  double sum_ = 0;
  bool dirty_ = false;
};

class CheckerMetrics {
 public:
  explicit CheckerMetrics(bool per_target);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  prometheus::Counter& probes(const CheckResult& r);  // by outcome
  void observe_target(const CheckResult& r);          // per-target series, when enabled
  void forget_target(const std::string& name);        // target removed by a reload

  prometheus::Histogram& probe_duration;  // seconds, the whole probe
  prometheus::Histogram& lateness;        // seconds, start minus due
  prometheus::Gauge& in_flight;
  prometheus::Counter& skipped;
  prometheus::Gauge& kafka_queue;
  prometheus::Counter& delivered;
  prometheus::Counter& delivery_errors;
  prometheus::Counter& dropped;
  prometheus::Counter& reloads_ok;
  prometheus::Counter& reloads_failed;
  prometheus::Gauge& targets;
  prometheus::Histogram& dns_duration;  // seconds, each query c-ares ran (cache hits not included)
  prometheus::Counter& dns_cache_hits;
  prometheus::Counter& dns_shared;      // lookups that joined a query already running for the name
  // The fleet (checker.group): what this instance probes of it. Standalone: shards 0, every target owned.
  prometheus::Gauge& shards;            // partitions of the coordination topic (0: standalone)
  prometheus::Gauge& shards_owned;
  prometheus::Gauge& targets_owned;     // targets whose shard is owned (standalone: all)
  prometheus::Counter& rebalances;      // assignment changes Kafka made (assign and revoke)
  prometheus::Gauge& last_rebalance;    // Unix time of the last one, seconds
  prometheus::Counter& dns_lookups(DnsStatus s) { return *dns_lookups_[static_cast<std::size_t>(s)]; }

  // Adds what one shard's resolver counted since the last call; `durations` is the shard's own.
  void add_dns(ResolverStats stats, LocalHistogram& durations);

 private:
  CheckerMetrics(std::shared_ptr<prometheus::Registry> registry, bool per_target);
  std::shared_ptr<prometheus::Registry> registry_;
  bool per_target_;
  prometheus::Family<prometheus::Counter>& probes_family_;
  std::array<prometheus::Counter*, 8> probes_by_outcome_{};
  std::array<prometheus::Counter*, kDnsStatusCount> dns_lookups_{};
  prometheus::Family<prometheus::Gauge>* target_up_ = nullptr;
  prometheus::Family<prometheus::Gauge>* target_response_ = nullptr;
};

}  // namespace webmon::checker
