#include "webmon/checker/scheduler.hpp"

#include <algorithm>
#include <deque>
#include <future>
#include <thread>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "webmon/checker/metrics.hpp"
#include "webmon/checker/resolver.hpp"
#include "webmon/checker/schedule.hpp"

namespace webmon::checker {
namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

Nanos steady_now() { return std::chrono::duration_cast<Nanos>(steady_clock::now().time_since_epoch()); }

// The system clock minus the steady clock, read back to back: UTC = steady + this.
Nanos utc_minus_steady() {
  const auto steady = steady_now();
  const auto utc = std::chrono::duration_cast<Nanos>(std::chrono::system_clock::now().time_since_epoch());
  return utc - steady;
}

// A clock step (settimeofday, an NTP step) larger than this is taken over at the next second.
constexpr Nanos kClockStep = std::chrono::milliseconds(10);

double seconds(Nanos d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

// One io_context, one thread, and the targets that hash to it. Everything below is touched only on
// that thread, except the atomics read by the owner for stop() and metrics. (A "shard" here is a
// thread's share of the targets; a fleet's shards, the partitions Kafka assigns, are a ShardSet.)
class Scheduler::Shard {
 public:
  Shard(std::size_t cap, const SchedulerOptions& options, ResultFn on_result, CheckerMetrics& metrics)
      : cap_(cap), instance_id_(options.instance_id), location_(options.location), owned_(options.shards),
        on_result_(std::move(on_result)), metrics_(metrics), duration_(duration_buckets()),
        lateness_(duration_buckets()), dns_duration_(duration_buckets()), flush_timer_(io_) {}

  asio::any_io_executor executor() { return io_.get_executor(); }

  void start() {
    thread_ = std::thread([this] {
      auto guard = asio::make_work_guard(io_);
      io_.run();
    });
    asio::co_spawn(io_, flush_loop(), asio::detached);
  }

  void apply(std::vector<TargetPtr> targets, ProbeFn probe, std::shared_ptr<Resolver> resolver) {
    asio::post(io_, [this, targets = std::move(targets), probe = std::move(probe),
                     resolver = std::move(resolver)]() mutable {
      if (resolver_) {
        resolver->adopt_cache(*resolver_);
        metrics_.add_dns(resolver_->take_stats(), dns_duration_);
      }
      resolver_ = std::move(resolver);
      utc_offset_ = utc_minus_steady();
      apply_here(std::move(targets), std::move(probe));
    });
  }

  void post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

  // On this shard's thread.
  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    for (auto& [name, slot] : slots_) slot->timer.cancel();
    waiting_.clear();
    flush_timer_.cancel();
    flush_metrics();
  }

  // On this shard's thread: targets of shards gained start at their next due time, those of
  // shards lost stop (a probe in flight still reports).
  void set_shards(const ShardSet& owned) {
    owned_ = owned;
    if (stopping_) return;
    utc_offset_ = utc_minus_steady();
    const Nanos now = utc_now();
    for (auto& [name, slot] : slots_) {
      const bool want = owned_.owns(slot->cfg->name);
      if (want == slot->active) continue;
      activate(slot, want, now);
    }
  }

  void join() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }
  std::uint64_t skipped() const noexcept { return skipped_.load(std::memory_order_relaxed); }
  std::uint64_t started() const noexcept { return started_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    Slot(asio::io_context& io, std::shared_ptr<const TargetConfig> c, Nanos now)
        : cfg(std::move(c)), schedule(cfg->name, cfg->interval, now), timer(io) {}
    std::shared_ptr<const TargetConfig> cfg;
    TargetSchedule schedule;  // in UTC nanoseconds since the epoch
    asio::steady_timer timer;
    bool removed = false;
    bool active = false;       // its shard is owned: the timer runs
    std::uint64_t armed = 0;   // bumped when the timer's chain is ended or restarted
  };

  Nanos utc_now() const { return steady_now() + utc_offset_; }
  steady_clock::time_point steady_at(Nanos utc) const {
    return steady_clock::time_point(std::chrono::duration_cast<steady_clock::duration>(utc - utc_offset_));
  }

  // Starts (at the next due time) or ends the target's timer chain; counts it as owned or not.
  void activate(const std::shared_ptr<Slot>& slot, bool on, Nanos now) {
    slot->active = on;
    ++slot->armed;
    if (on) {
      slot->schedule.reset(slot->cfg->name, slot->cfg->interval, now);
      arm(slot);
      metrics_.targets_owned.Increment();
    } else {
      slot->timer.cancel();
      metrics_.targets_owned.Decrement();
    }
  }
  struct Waiting {
    std::shared_ptr<Slot> slot;
    Nanos due;
  };

  void apply_here(std::vector<TargetPtr> targets, ProbeFn probe) {
    probe_ = std::move(probe);
    if (stopping_) return;
    std::unordered_map<std::string_view, std::shared_ptr<Slot>> next;
    next.reserve(targets.size());
    const Nanos now = utc_now();
    for (auto& cfg : targets) {
      auto it = slots_.find(cfg->name);
      if (it == slots_.end()) {
        auto slot = std::make_shared<Slot>(io_, cfg, now);
        if (owned_.owns(slot->cfg->name)) activate(slot, true, now);
        next.emplace(slot->cfg->name, std::move(slot));
        continue;
      }
      auto slot = it->second;
      slots_.erase(it);
      if (!slot->cfg->same_probe(*cfg) || slot->cfg->interval != cfg->interval) {
        const bool new_phase = slot->cfg->interval != cfg->interval;
        slot->cfg = cfg;
        if (new_phase) {
          slot->schedule.reset(cfg->name, cfg->interval, now);
          if (slot->active) slot->timer.cancel();  // the loop re-arms on the new phase
        }
      }
      next.emplace(slot->cfg->name, std::move(slot));
    }
    for (auto& [name, slot] : slots_) {  // what is left was removed
      slot->removed = true;
      if (slot->active) activate(slot, false, now);
      metrics_.forget_target(slot->cfg->name);
    }
    slots_ = std::move(next);
  }

  // Arms the target's timer for its next due time. The handler captures `this`: it runs only on
  // io_, which this shard owns and stops before it goes, so it cannot outlive the shard.
  void arm(std::shared_ptr<Slot> slot) {
    slot->timer.expires_at(steady_at(slot->schedule.next_due()));
    auto* timer = &slot->timer;
    const auto armed = slot->armed;
    timer->async_wait([this, slot = std::move(slot), armed](const boost::system::error_code&) mutable {
      on_due(std::move(slot), armed);
    });
  }

  // Also reached when a reload cancelled the wait to move the target to a new phase: fire() then
  // finds nothing due yet and the timer is simply re-armed. A chain that activate() ended or
  // restarted since it was armed stops here.
  void on_due(std::shared_ptr<Slot> slot, std::uint64_t armed) {
    if (slot->removed || stopping_ || !slot->active || slot->armed != armed) return;
    const auto fire = slot->schedule.fire(utc_now());
    if (fire.skipped) {
      skipped_.fetch_add(fire.skipped, std::memory_order_relaxed);
      metrics_.skipped.Increment(static_cast<double>(fire.skipped));
    }
    if (fire.start) admit(slot, fire.due);
    arm(std::move(slot));
  }

  // The in-flight cap: start now, or queue in due order.
  void admit(const std::shared_ptr<Slot>& slot, Nanos due) {
    if (in_flight_.load(std::memory_order_relaxed) < cap_) {
      launch(slot, due);
    } else {
      waiting_.push_back({slot, due});
    }
  }

  void launch(std::shared_ptr<Slot> slot, Nanos due) {
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    started_.fetch_add(1, std::memory_order_relaxed);
    metrics_.in_flight.Increment();
    asio::co_spawn(io_, probe_once(std::move(slot), due), asio::detached);
  }

  asio::awaitable<void> probe_once(std::shared_ptr<Slot> slot, Nanos due) {
    // scheduled_at is the due time itself (UTC, the same on every instance of a fleet); started_at
    // is the system clock now.
    const auto started_at = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    const auto scheduled_at = std::chrono::floor<std::chrono::milliseconds>(
        std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(due)));
    const Nanos start = steady_now();
    lateness_.observe(seconds(utc_now() - due));

    auto cfg = slot->cfg;
    CheckResult r;
    try {
      const Nanos not_after = due + cfg->interval - deadline_margin(cfg->interval);
      // A named local, not a temporary in the co_await: g++ 12 destroys such temporaries twice.
      ProbeRun run{resolver_, steady_at(not_after)};
      auto probing = probe_(cfg, std::move(run));
      r = co_await std::move(probing);
    } catch (const std::exception& e) {
      // run_probe does not throw; should anything else, the target still gets its result.
      r = CheckResult{};
      r.url = cfg->url;
      r.error = ErrorClass::protocol;
      r.error_detail = std::string("internal error: ") + e.what();
      r.timings.total = seconds(steady_now() - start);
    }
    r.target = cfg->name;
    r.scheduled_at = scheduled_at;
    r.started_at = started_at;
    r.checker = instance_id_;
    r.location = location_;
    duration_.observe(r.timings.total);
    metrics_.probes(r).Increment();
    metrics_.observe_target(r);
    on_result_(r);

    slot->schedule.probe_finished();
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    metrics_.in_flight.Decrement();
    while (!waiting_.empty() && in_flight_.load(std::memory_order_relaxed) < cap_) {
      auto w = std::move(waiting_.front());
      waiting_.pop_front();
      if (!w.slot->removed && !stopping_) launch(std::move(w.slot), w.due);
    }
  }

  asio::awaitable<void> flush_loop() {
    while (!stopping_) {
      flush_timer_.expires_after(std::chrono::seconds(1));
      co_await flush_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      flush_metrics();
      follow_clock_step();
    }
  }

  // The system clock was set (a step, not NTP's slewing, which moves both clocks alike): due
  // times stay on the UTC grid. Timers armed before fire at their old steady time; fire() then
  // finds the due time not reached (and re-arms) or passed (and skips what was missed).
  void follow_clock_step() {
    const Nanos now = utc_minus_steady();
    const Nanos step = now - utc_offset_;
    if (step > kClockStep || step < -kClockStep) {
      spdlog::warn("the system clock moved by {:.3f} s: due times follow it", seconds(step));
      utc_offset_ = now;
    }
  }

  void flush_metrics() {
    duration_.flush_into(metrics_.probe_duration);
    lateness_.flush_into(metrics_.lateness);
    if (resolver_) metrics_.add_dns(resolver_->take_stats(), dns_duration_);
  }

  asio::io_context io_{1};  // first: destroyed last, after everything that holds its timers
  std::thread thread_;
  std::size_t cap_;
  std::string instance_id_;
  std::string location_;
  ShardSet owned_;      // the fleet's shards probed here (standalone: all)
  Nanos utc_offset_ = utc_minus_steady();  // UTC minus steady_clock, mapped at start, reload, rebalance
  ResultFn on_result_;
  CheckerMetrics& metrics_;
  ProbeFn probe_;
  std::shared_ptr<Resolver> resolver_;  // this shard's; replaced by apply (probes hold the old)
  std::unordered_map<std::string_view, std::shared_ptr<Slot>> slots_;  // keys view slot->cfg->name
  std::deque<Waiting> waiting_;
  bool stopping_ = false;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::uint64_t> skipped_{0};
  std::atomic<std::uint64_t> started_{0};
  LocalHistogram duration_;
  LocalHistogram lateness_;
  LocalHistogram dns_duration_;
  asio::steady_timer flush_timer_;
};

Scheduler::Scheduler(SchedulerOptions options, ResultFn on_result, CheckerMetrics& metrics) {
  const unsigned n = std::max(1u, options.threads);
  const std::size_t cap = std::max<std::size_t>(1, (options.max_in_flight + n - 1) / n);
  for (unsigned i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>(cap, options, on_result, metrics));
}

Scheduler::~Scheduler() {
  if (running_) stop(std::chrono::milliseconds(0));
}

void Scheduler::start() {
  for (auto& s : shards_) s->start();
  running_ = true;
}

std::chrono::nanoseconds deadline_margin(std::chrono::nanoseconds interval) noexcept {
  return std::min<std::chrono::nanoseconds>(interval / 20, std::chrono::milliseconds(100));
}

std::vector<TargetPtr> share_targets(std::vector<TargetConfig>&& targets) {
  std::vector<TargetPtr> out;
  out.reserve(targets.size());
  for (auto& t : targets) out.push_back(std::make_shared<const TargetConfig>(std::move(t)));
  targets.clear();
  targets.shrink_to_fit();
  return out;
}

void Scheduler::apply(const std::vector<TargetPtr>& targets, ProbeFn probe, const CheckerDns& dns) {
  // Made here, on the caller's thread, so that a failure changes nothing; each is used only on
  // its shard's thread from then on (c-ares channels are not shared between threads).
  std::vector<std::shared_ptr<Resolver>> resolvers;
  for (auto& s : shards_) resolvers.push_back(std::make_shared<Resolver>(s->executor(), dns));
  std::vector<std::vector<TargetPtr>> per_shard(shards_.size());
  for (const auto& t : targets) per_shard[stable_hash(t->name) % shards_.size()].push_back(t);
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    shards_[i]->apply(std::move(per_shard[i]), probe, std::move(resolvers[i]));
  }
}

std::uint64_t targets_digest(const std::vector<TargetPtr>& targets) {
  std::vector<const TargetConfig*> sorted;
  sorted.reserve(targets.size());
  for (const auto& t : targets) sorted.push_back(t.get());
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
  std::string text;
  for (const auto* t : sorted) {
    // NUL-separated: no name or URL holds one, so two different lists cannot spell the same text.
    text += t->name;
    text += '\0';
    text += t->url;
    text += '\0';
    text += std::to_string(t->interval.count());
    text += '\n';
  }
  return stable_hash(text);
}

void Scheduler::on_every_thread(const std::function<void(Shard&)>& fn, std::chrono::milliseconds limit) {
  std::vector<std::future<void>> done;
  for (auto& s : shards_) {
    auto p = std::make_shared<std::promise<void>>();
    done.push_back(p->get_future());
    Shard* shard = s.get();
    shard->post([shard, fn, p] {
      fn(*shard);
      p->set_value();
    });
  }
  if (!running_) return;  // the threads run it when they start
  const auto until = steady_clock::now() + limit;
  for (auto& f : done) {
    if (f.wait_until(until) != std::future_status::ready) {
      spdlog::warn("a scheduler thread did not answer within {} ms", limit.count());
      return;
    }
  }
}

void Scheduler::set_shards(const ShardSet& shards) {
  // Each thread's copy of the set lives in the function posted to it (the wait may give up).
  on_every_thread([shards](Shard& s) { s.set_shards(shards); }, std::chrono::seconds(5));
}

void Scheduler::stop_scheduling() {
  if (!running_ || scheduling_stopped_) return;
  scheduling_stopped_ = true;
  on_every_thread([](Shard& s) { s.begin_stop(); }, std::chrono::seconds(5));
}

std::size_t Scheduler::stop(std::chrono::milliseconds drain_limit) {
  if (!running_) return 0;
  stop_scheduling();
  const auto until = steady_clock::now() + drain_limit;
  while (in_flight() > 0 && steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const std::size_t left = in_flight();
  for (auto& s : shards_) s->join();
  running_ = false;
  return left;
}

std::size_t Scheduler::in_flight() const noexcept {
  std::size_t n = 0;
  for (const auto& s : shards_) n += s->in_flight();
  return n;
}

std::uint64_t Scheduler::skipped() const noexcept {
  std::uint64_t n = 0;
  for (const auto& s : shards_) n += s->skipped();
  return n;
}

std::uint64_t Scheduler::started() const noexcept {
  std::uint64_t n = 0;
  for (const auto& s : shards_) n += s->started();
  return n;
}

}  // namespace webmon::checker
