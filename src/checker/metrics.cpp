#include "webmon/checker/metrics.hpp"

#include <algorithm>

namespace webmon::checker {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// The label values of webmon_checker_probes_total: "ok", "not_ok", then the error classes.
constexpr std::array<std::string_view, 2 + kErrorClasses.size()> kOutcomes = [] {
  std::array<std::string_view, 2 + kErrorClasses.size()> out{"ok", "not_ok"};
  for (std::size_t i = 0; i < kErrorClasses.size(); ++i) out[2 + i] = kErrorClasses[i].name;
  return out;
}();

std::size_t outcome_index(const CheckResult& r) noexcept {
  for (std::size_t i = 0; i < kErrorClasses.size(); ++i) {
    if (kErrorClasses[i].value == r.error) return 2 + i;
  }
  return r.ok ? 0 : 1;  // ErrorClass::none
}

prometheus::Family<prometheus::Counter>& reloads_family(prometheus::Registry& reg) {
  // Registering the same name, type and help again returns the family already there.
  return BuildCounter().Name("webmon_checker_config_reloads_total").Help("Config reloads by result").Register(reg);
}

}  // namespace

std::string_view outcome_label(const CheckResult& r) noexcept { return kOutcomes[outcome_index(r)]; }

const std::vector<double>& duration_buckets() {
  static const std::vector<double> b = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return b;
}

LocalHistogram::LocalHistogram(const std::vector<double>& bounds) : bounds_(bounds), counts_(bounds.size() + 1, 0.0) {}

void LocalHistogram::observe(double v) noexcept {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  counts_[static_cast<std::size_t>(it - bounds_.begin())] += 1;
  sum_ += v;
  dirty_ = true;
}

void LocalHistogram::flush_into(prometheus::Histogram& h) {
  if (!dirty_) return;
  h.ObserveMultiple(counts_, sum_);
  std::fill(counts_.begin(), counts_.end(), 0.0);
  sum_ = 0;
  dirty_ = false;
}

CheckerMetrics::CheckerMetrics(bool per_target) : CheckerMetrics(std::make_shared<prometheus::Registry>(), per_target) {}

CheckerMetrics::CheckerMetrics(std::shared_ptr<prometheus::Registry> reg, bool per_target)
    : probe_duration(BuildHistogram()
                         .Name("webmon_checker_probe_duration_seconds")
                         .Help("Duration of whole probes (DNS to body), seconds")
                         .Register(*reg)
                         .Add({}, duration_buckets())),
      lateness(BuildHistogram()
                   .Name("webmon_checker_lateness_seconds")
                   .Help("How late probes started: start minus due time, seconds")
                   .Register(*reg)
                   .Add({}, duration_buckets())),
      in_flight(BuildGauge().Name("webmon_checker_probes_in_flight").Help("Probes running now").Register(*reg).Add({})),
      skipped(BuildCounter()
                  .Name("webmon_checker_probes_skipped_total")
                  .Help("Due probes not started because the previous probe of the target was still running")
                  .Register(*reg)
                  .Add({})),
      kafka_queue(BuildGauge()
                      .Name("webmon_checker_kafka_queue_messages")
                      .Help("Results queued in the Kafka producer, not yet acknowledged")
                      .Register(*reg)
                      .Add({})),
      delivered(BuildCounter()
                    .Name("webmon_checker_results_delivered_total")
                    .Help("Results acknowledged by Kafka")
                    .Register(*reg)
                    .Add({})),
      delivery_errors(BuildCounter()
                          .Name("webmon_checker_delivery_errors_total")
                          .Help("Results Kafka failed to take (delivery reports with an error)")
                          .Register(*reg)
                          .Add({})),
      dropped(BuildCounter()
                  .Name("webmon_checker_results_dropped_total")
                  .Help("Results dropped because the producer queue was full")
                  .Register(*reg)
                  .Add({})),
      reloads_ok(reloads_family(*reg).Add({{"result", "ok"}})),
      reloads_failed(reloads_family(*reg).Add({{"result", "failed"}})),
      targets(BuildGauge().Name("webmon_checker_targets").Help("Targets configured").Register(*reg).Add({})),
      dns_duration(BuildHistogram()
                       .Name("webmon_checker_dns_lookup_duration_seconds")
                       .Help("Duration of DNS queries sent to the name servers (cache hits excluded), seconds")
                       .Register(*reg)
                       .Add({}, duration_buckets())),
      dns_cache_hits(BuildCounter()
                         .Name("webmon_checker_dns_cache_hits_total")
                         .Help("Name lookups answered from the checker's DNS cache")
                         .Register(*reg)
                         .Add({})),
      dns_shared(BuildCounter()
                     .Name("webmon_checker_dns_lookups_shared_total")
                     .Help("Name lookups that waited for a query already running for the same name")
                     .Register(*reg)
                     .Add({})),
      shards(BuildGauge()
                 .Name("webmon_checker_shards")
                 .Help("Shards of the checker group (partitions of kafka.coordination_topic); 0: standalone")
                 .Register(*reg)
                 .Add({})),
      shards_owned(BuildGauge()
                       .Name("webmon_checker_shards_owned")
                       .Help("Shards of the checker group assigned to this instance")
                       .Register(*reg)
                       .Add({})),
      targets_owned(BuildGauge()
                        .Name("webmon_checker_targets_owned")
                        .Help("Targets this instance probes: those of its shards (standalone: all)")
                        .Register(*reg)
                        .Add({})),
      rebalances(BuildCounter()
                     .Name("webmon_checker_rebalances_total")
                     .Help("Changes of this instance's shards made by the group (assignments and revocations)")
                     .Register(*reg)
                     .Add({})),
      last_rebalance(BuildGauge()
                         .Name("webmon_checker_last_rebalance_timestamp_seconds")
                         .Help("Unix time of this instance's last rebalance (0: none yet)")
                         .Register(*reg)
                         .Add({})),
      registry_(std::move(reg)),
      per_target_(per_target),
      probes_family_(BuildCounter()
                         .Name("webmon_checker_probes_total")
                         .Help("Probes finished, by outcome (ok, not_ok or the error class)")
                         .Register(*registry_)) {
  for (std::size_t i = 0; i < kOutcomes.size(); ++i) {
    probes_by_outcome_[i] = &probes_family_.Add({{"outcome", std::string(kOutcomes[i])}});
  }
  auto& dns_family = BuildCounter()
                         .Name("webmon_checker_dns_lookups_total")
                         .Help("DNS queries finished, by outcome (ok, nxdomain, nodata, servfail, refused, "
                               "no_answer, error)")
                         .Register(*registry_);
  for (int i = 0; i < kDnsStatusCount; ++i) {
    dns_lookups_[static_cast<std::size_t>(i)] =
        &dns_family.Add({{"outcome", std::string(dns_status_label(static_cast<DnsStatus>(i)))}});
  }
  if (per_target_) {
    target_up_ = &BuildGauge()
                      .Name("webmon_checker_target_up")
                      .Help("1 when the target's last probe was ok, else 0 (checker.per_target_metrics)")
                      .Register(*registry_);
    target_response_ = &BuildGauge()
                            .Name("webmon_checker_target_response_seconds")
                            .Help("The target's last http_response_time (checker.per_target_metrics)")
                            .Register(*registry_);
  }
}

prometheus::Counter& CheckerMetrics::probes(const CheckResult& r) { return *probes_by_outcome_[outcome_index(r)]; }

void CheckerMetrics::add_dns(ResolverStats stats, LocalHistogram& durations) {
  for (int i = 0; i < kDnsStatusCount; ++i) {
    if (stats.by_status[i] > 0) dns_lookups(static_cast<DnsStatus>(i)).Increment(static_cast<double>(stats.by_status[i]));
  }
  if (stats.cache_hits > 0) dns_cache_hits.Increment(static_cast<double>(stats.cache_hits));
  if (stats.shared > 0) dns_shared.Increment(static_cast<double>(stats.shared));
  for (const double d : stats.query_seconds) durations.observe(d);
  durations.flush_into(dns_duration);
}

void CheckerMetrics::observe_target(const CheckResult& r) {
  if (!per_target_) return;
  const prometheus::Labels labels{{"target", r.target}};
  target_up_->Add(labels).Set(r.ok ? 1 : 0);
  if (r.http_response_time) target_response_->Add(labels).Set(*r.http_response_time);
}

void CheckerMetrics::forget_target(const std::string& name) {
  if (!per_target_) return;
  const prometheus::Labels labels{{"target", name}};
  target_up_->Remove(&target_up_->Add(labels));
  target_response_->Remove(&target_response_->Add(labels));
}

}  // namespace webmon::checker
