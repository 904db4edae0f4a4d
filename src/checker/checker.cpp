#include "webmon/checker/checker.hpp"

#include <algorithm>
#include <csignal>
#include <memory>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "webmon/checker/membership.hpp"
#include "webmon/checker/metrics.hpp"
#include "webmon/checker/probe.hpp"
#include "webmon/checker/producer.hpp"
#include "webmon/checker/scheduler.hpp"
#include "webmon/common/config_keys.hpp"
#include "webmon/common/logging.hpp"
#include "webmon/common/metrics_server.hpp"
#include "webmon/common/service.hpp"

namespace webmon::checker {
namespace asio = boost::asio;

namespace {

// The longest a probe in flight can still take: its timeout (plus a little for scheduling).
std::chrono::milliseconds drain_limit(const std::vector<TargetPtr>& targets) {
  std::chrono::nanoseconds longest{0};
  for (const auto& t : targets) longest = std::max(longest, t->timeout);
  return std::chrono::duration_cast<std::chrono::milliseconds>(longest) + std::chrono::seconds(2);
}

SchedulerOptions scheduler_options(const CheckerSection& c) {
  SchedulerOptions o;
  o.threads = c.threads;
  o.max_in_flight = c.max_in_flight;
  o.instance_id = c.instance_id;
  o.location = c.location;
  // In a group nothing is probed until Kafka assigns shards.
  if (!c.fleet_group().empty()) o.shards = ShardSet::none(0);
  return o;
}

std::string digest_text(const std::vector<TargetPtr>& targets) {
  return fmt::format("{:016x}", targets_digest(targets));
}

class CheckerProcess {
 public:
  CheckerProcess(Config config, std::filesystem::path path)
      : config_(std::move(config)), path_(std::move(path)), metrics_(config_.checker.per_target_metrics),
        producer_(config_.kafka, config_.checker.instance_id, metrics_),
        scheduler_(scheduler_options(config_.checker), [this](const CheckResult& r) { producer_.publish(r); },
                   metrics_),
        signals_(io_, SIGINT, SIGTERM, SIGHUP), watchdog_(io_) {
    if (!config_.checker.fleet_group().empty()) {
      Membership::Events events;
      events.shards_changed = [this](const ShardSet& shards) { scheduler_.set_shards(shards); };
      events.fatal = [this] {
        asio::post(io_, [this] {
          exit_code_ = 1;
          watchdog_.cancel();
          io_.stop();
        });
      };
      membership_.emplace(config_, metrics_, std::move(events));
    }
  }

  int run() {
    auto ctx = ProbeContext::for_targets(config_.targets, limits());  // TlsSetupError is fatal at first start
    targets_ = share_targets(std::move(config_.targets));    // one copy, shared with the scheduler
    producer_.start();
    if (!config_.checker.metrics_listen.empty()) {
      metrics_server_.emplace(metrics_.registry(), [this] { return producer_.connected(); });
      metrics_server_->start(config_.checker.metrics_listen);
    }
    scheduler_.start();
    scheduler_.apply(targets_, probe_fn(std::move(ctx)), config_.checker.dns);  // DnsSetupError is fatal here
    metrics_.targets.Set(static_cast<double>(targets_.size()));
    spdlog::info("webmon-checker started: {} targets, {} threads, topic {} on {}, instance {}{}",
                 targets_.size(), config_.checker.threads, config_.kafka.topic,
                 config_.kafka.bootstrap_servers, config_.checker.instance_id,
                 config_.checker.location.empty() ? "" : ", location " + config_.checker.location);
    // Instances of one group must probe the same list: equal digests say they do.
    spdlog::info("targets: {} (digest {}), {}", targets_.size(), digest_text(targets_),
                 config_.checker.fleet_group().empty() ? std::string("standalone: probing all of them")
                                                       : "group " + config_.checker.fleet_group() +
                                                             ": probing those of the shards Kafka assigns");
    if (targets_.empty()) spdlog::warn("no targets configured: nothing to probe until a reload adds some");
    if (membership_) membership_->start();

    wait_signal();
    if (const auto every = service::watchdog_interval()) feed_watchdog(*every / 2);
    service::notify_ready();
    io_.run();
    return shutdown();
  }

 private:
  void wait_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reload();
        wait_signal();
        return;
      }
      spdlog::info("received {}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      watchdog_.cancel();
      io_.stop();
    });
  }

  void feed_watchdog(std::chrono::microseconds every) {
    service::notify_watchdog();
    watchdog_.expires_after(every);
    watchdog_.async_wait([this, every](const boost::system::error_code& ec) {
      if (!ec) feed_watchdog(every);
    });
  }

  // A new file is validated completely before anything changes; a bad one keeps the old config.
  void reload() {
    service::notify_reloading();
    spdlog::info("SIGHUP: reloading {}", path_.string());
    auto load = load_config(path_, Component::checker);
    if (!load.ok()) {
      for (const auto& e : load.errors) spdlog::error("reload: {}", e.to_string());
      spdlog::error("reload failed: {} error(s); the previous config keeps running", load.errors.size());
      metrics_.reloads_failed.Increment();
      service::notify_ready();
      return;
    }
    Config next = std::move(*load.config);
    std::shared_ptr<const ProbeContext> ctx;
    try {
      ctx = ProbeContext::for_targets(next.targets, limits());
    } catch (const std::exception& e) {
      spdlog::error("reload failed: {}; the previous config keeps running", e.what());
      metrics_.reloads_failed.Increment();
      service::notify_ready();
      return;
    }
    auto targets = share_targets(std::move(next.targets));
    next.targets.clear();  // compared with config_, whose targets moved to targets_ at start
    const auto added_changed_removed = diff_summary(targets_, targets);
    try {
      scheduler_.apply(targets, probe_fn(std::move(ctx)), next.checker.dns);
    } catch (const std::exception& e) {
      spdlog::error("reload failed: {}; the previous config keeps running", e.what());
      metrics_.reloads_failed.Increment();
      service::notify_ready();
      return;
    }
    apply_or_log_restart(next);
    targets_ = std::move(targets);
    metrics_.targets.Set(static_cast<double>(targets_.size()));
    metrics_.reloads_ok.Increment();
    spdlog::info("reloaded: {} targets ({}), digest {}", targets_.size(), added_changed_removed, digest_text(targets_));
    if (targets_.empty()) spdlog::warn("no targets configured: nothing to probe until a reload adds some");
    service::notify_ready();
  }

  // Every changed key is either applied here or logged as needing a restart, as the key tables
  // say (config_keys.hpp); a key that needs one keeps its old value, so that each later reload
  // says so again until the restart. The targets were applied by the caller.
  void apply_or_log_restart(const Config& next) {
    for (const auto& line : reload_lines(changed_keys(config_, next), Component::checker)) {
      if (line.needs_restart) spdlog::warn("{}", line.text);
      else spdlog::info("{}", line.text);
    }
    config_.checker.dns = next.checker.dns;
    config_.checker.max_body_memory_bytes = next.checker.max_body_memory_bytes;
    body_budget_->set_limit(next.checker.max_body_memory_bytes);
    config_.log_format = next.log_format;
    set_log_format(next.log_format);
  }

  ProbeLimits limits() const {
    ProbeLimits l;
    l.body_budget = body_budget_;
    return l;
  }

  static std::string diff_summary(const std::vector<TargetPtr>& before, const std::vector<TargetPtr>& after) {
    std::size_t added = 0, changed = 0, removed = 0;
    std::unordered_map<std::string_view, const TargetConfig*> old;
    for (const auto& t : before) old.emplace(t->name, t.get());
    for (const auto& t : after) {
      auto it = old.find(t->name);
      if (it == old.end()) {
        ++added;
        continue;
      }
      if (!it->second->same_probe(*t) || it->second->interval != t->interval) ++changed;
      old.erase(it);
    }
    removed = old.size();
    return fmt::format("{} added, {} changed, {} removed", added, changed, removed);
  }

  // Stop scheduling, let probes in flight end (bounded by their deadlines), flush Kafka (bounded).
  int shutdown() {
    service::notify_stopping();
    // No probe starts from here on; then the group is left (a static member keeps its shards for
    // the session timeout), so that the others take over the next due times while these drain.
    scheduler_.stop_scheduling();
    if (membership_) membership_->stop();
    const auto left = scheduler_.stop(drain_limit(targets_));
    if (left > 0) spdlog::warn("{} probes still in flight at shutdown were abandoned", left);
    const int undelivered = producer_.flush(std::chrono::seconds(10));
    if (undelivered > 0) {
      spdlog::error("{} results not delivered to Kafka within 10 s of shutdown: lost", undelivered);
    }
    if (metrics_server_) metrics_server_->stop();
    spdlog::info("webmon-checker stopped: {} probes started, {} skipped, {} dropped", scheduler_.started(),
                 scheduler_.skipped(), producer_.dropped());
    return exit_code_;
  }

  Config config_;  // its targets are moved into targets_ at start
  std::vector<TargetPtr> targets_;
  std::filesystem::path path_;
  // One for the life of the process: probes in flight across a reload share it.
  std::shared_ptr<BodyBudget> body_budget_ = std::make_shared<BodyBudget>(config_.checker.max_body_memory_bytes);
  CheckerMetrics metrics_;
  Producer producer_;
  Scheduler scheduler_;
  int exit_code_ = 0;
  std::optional<MetricsServer> metrics_server_;
  asio::io_context io_{1};
  asio::signal_set signals_;
  asio::steady_timer watchdog_;
  // With checker.group (or a location). Last: its thread, which calls into the scheduler and posts
  // to io_, ends before they go.
  std::optional<Membership> membership_;
};

}  // namespace

int run_checker(Config config, std::filesystem::path config_path) {
  CheckerProcess process(std::move(config), std::move(config_path));
  return process.run();
}

}  // namespace webmon::checker
