#include "fleet_support.hpp"

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "support/http_client.hpp"
#include "support/kafka_topic.hpp"
#include "support/stack.hpp"
#include "webmon/common/check_result.hpp"

namespace webmon::test::fleet {

namespace json = boost::json;

std::string target_name(std::size_t i) {
  std::string n = std::to_string(i);
  return "fleet-" + std::string(n.size() < 3 ? 3 - n.size() : 0, '0') + n;
}

std::string config_yaml(const FleetConfig& c) {
  std::string y = "kafka:\n"
                  "  bootstrap_servers: \"" + kafka_bootstrap() + "\"\n"
                  "  topic: " + c.topic + "\n"
                  "  topic_partitions: 3\n"
                  "  coordination_topic: " + c.coordination_topic + "\n"
                  "checker:\n"
                  "  threads: 1\n"
                  "  metrics_listen: \"127.0.0.1:${WEBMON_TEST_METRICS_PORT}\"\n"
                  "  session_timeout_ms: " + std::to_string(c.session_timeout_ms) + "\n";
  if (!c.group.empty()) y += "  group: " + c.group + "\n";
  if (c.static_ids) y += "  instance_id: ${WEBMON_TEST_INSTANCE}\n";
  if (c.location) y += "  location: ${WEBMON_TEST_LOCATION}\n";
  y += "targets:\n";
  for (std::size_t i = 0; i < c.target_urls.size(); ++i) {
    y += "  - name: " + target_name(i) + "\n    target: \"" + c.target_urls[i] +
         "\"\n    check_interval_seconds: 1\n    timeout_seconds: 0.8\n";
  }
  return y;
}

Instance::Instance(std::filesystem::path config, std::filesystem::path dir, std::string id, std::string location)
    : config_(std::move(config)), dir_(std::move(dir)), id_(std::move(id)), location_(std::move(location)),
      port_(free_port()) {}

void Instance::start() {
  proc_.reset();
  proc_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{WEBMON_CHECKER_BIN, "--config", config_.string()}, dir_ / (id_ + ".log"),
      std::vector<std::string>{"WEBMON_TEST_METRICS_PORT=" + std::to_string(port_), "WEBMON_TEST_INSTANCE=" + id_,
                               "WEBMON_TEST_LOCATION=" + location_});
}

void Instance::kill() {
  if (!proc_) return;
  proc_->signal(SIGKILL);
  proc_->wait_for_exit(std::chrono::seconds(30));
}

std::optional<int> Instance::stop(std::chrono::milliseconds limit) {
  if (!proc_) return std::nullopt;
  proc_->signal(SIGTERM);
  return proc_->wait_for_exit(limit);
}

bool Instance::running() const { return proc_ && proc_->running(); }

std::optional<double> Instance::metric(std::string_view series) const { return scrape_metric(port_, series); }

std::string Instance::log() const {
  std::ifstream in(dir_ / (id_ + ".log"), std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::string> Instance::owned() const {
  static const std::regex line(R"(owns (\d+) of (\d+): \[([^\]]*)\])");
  const auto text = log();
  std::optional<std::string> last;
  for (std::sregex_iterator it(text.begin(), text.end(), line), end; it != end; ++it) last = (*it)[3].str();
  return last;
}

std::size_t Instance::rebalance_lines() const { return occurrences(log(), "; owns "); }

bool wait_settled(const std::vector<Instance*>& running, int shards, std::chrono::milliseconds limit,
                  std::chrono::milliseconds quiet) {
  std::vector<double> last_counts;
  auto stable_since = std::chrono::steady_clock::now();
  return eventually(
      [&] {
        double sum = 0;
        std::vector<double> counts;
        for (const auto* i : running) {
          const auto owned = i->metric("webmon_checker_shards_owned");
          const auto moves = i->metric("webmon_checker_rebalances_total");
          if (!owned || !moves || *owned < 1) {
            last_counts.clear();
            return false;
          }
          sum += *owned;
          counts.push_back(*moves);
        }
        const auto now = std::chrono::steady_clock::now();
        if (sum != shards || counts != last_counts) {
          last_counts = counts;
          stable_since = now;
          return false;
        }
        return now - stable_since >= quiet;
      },
      limit, std::chrono::milliseconds(250));
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::map<std::string, std::vector<Result>> results_by_target(const std::string& topic, std::size_t min_records) {
  std::map<std::string, std::vector<Result>> out;
  for (const auto& r : read_topic(topic, min_records, std::chrono::seconds(5), std::chrono::minutes(5))) {
    const auto body = json::parse(r.value).as_object();
    const auto at = parse_rfc3339(json::value_to<std::string>(body.at("scheduled_at")));
    if (!at) throw std::runtime_error("scheduled_at not RFC 3339: " + r.value);
    Result res{at->time_since_epoch().count(), json::value_to<std::string>(body.at("checker")), std::nullopt};
    if (const auto* loc = body.if_contains("location"); loc && loc->is_string()) {
      res.location = json::value_to<std::string>(*loc);
    }
    out[r.key].push_back(std::move(res));
  }
  return out;
}

SeriesCheck check_series(const std::map<std::string, std::vector<std::int64_t>>& by_target,
                         const std::vector<std::string>& names, std::int64_t from_ms, std::int64_t to_ms,
                         std::int64_t interval_ms, const std::vector<Event>& events) {
  SeriesCheck c;
  for (const auto& e : events) c.gaps[e.name];
  for (const auto& name : names) {
    std::vector<std::int64_t> ts;
    if (auto it = by_target.find(name); it != by_target.end()) {
      for (const auto t : it->second) {
        if (t >= from_ms && t <= to_ms) ts.push_back(t);
      }
    }
    std::sort(ts.begin(), ts.end());
    c.results += ts.size();
    // The window's first due time is at most an interval in; its last at most two before the end
    // (the last due time before the instances were stopped, give or take the ms rounding).
    if (ts.empty() || ts.front() - from_ms > interval_ms || to_ms - ts.back() > 2 * interval_ms) {
      c.missing.push_back(name + (ts.empty() ? std::string(" (none)")
                                             : " (first " + std::to_string(ts.front() - from_ms) + " ms in, last " +
                                                   std::to_string(to_ms - ts.back()) + " ms before the end)"));
    }
    std::map<std::string, std::int64_t> longest;
    for (std::size_t i = 1; i < ts.size(); ++i) {
      const auto step = ts[i] - ts[i - 1];
      if (step == 0) {
        c.duplicates.emplace_back(name, ts[i]);
        continue;
      }
      if (step % interval_ms != 0) c.off_grid.push_back(name + ": step " + std::to_string(step) + " ms");
      if (step <= interval_ms) continue;
      // A gap: explained by an event it spans (or touches), and within that event's bound.
      const Event* by = nullptr;
      for (const auto& e : events) {
        if (ts[i - 1] <= e.to_ms && ts[i] >= e.from_ms) by = &e;
      }
      if (!by) {
        c.skipped_gaps.push_back(name + ": " + std::to_string(step) + " ms after " + std::to_string(ts[i - 1]) +
                                 " with no event in between");
        c.skipped_slots += step / interval_ms - 1;
      } else {
        longest[by->name] = std::max(longest[by->name], step);
        if (step > by->bound_ms) {
          c.unexplained.push_back(name + ": " + std::to_string(step) + " ms over " + by->name + " (bound " +
                                  std::to_string(by->bound_ms) + " ms)");
        }
      }
    }
    for (const auto& [event, step] : longest) c.gaps[event].push_back(step);
  }
  return c;
}

std::string gap_summary(std::vector<std::int64_t> gaps) {
  if (gaps.empty()) return "no gap";
  std::sort(gaps.begin(), gaps.end());
  return "p50 " + std::to_string(gaps[gaps.size() / 2]) + " ms, max " + std::to_string(gaps.back()) + " ms over " +
         std::to_string(gaps.size()) + " targets";
}

std::string first_few(const std::vector<std::string>& items, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < n; ++i) out += "  " + items[i] + "\n";
  if (items.size() > n) out += "  ... and " + std::to_string(items.size() - n) + " more\n";
  return out;
}

std::string first_few(const std::vector<std::pair<std::string, std::int64_t>>& items, std::size_t n) {
  std::vector<std::string> text;
  for (const auto& [name, at] : items) text.push_back(name + " at " + std::to_string(at));
  return first_few(text, n);
}

}  // namespace webmon::test::fleet
