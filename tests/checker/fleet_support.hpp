// Helpers for the fleet tests: several real webmon-checker processes in one Kafka group, started
// from one shared config file (what differs between instances, as in a deployment, comes from the
// environment: the metrics port, the instance id, the location), their /metrics and logs, and the
// results on the topic checked per target: every due time once, and every gap explained by an
// event (a kill, a stop, a Kafka restart) and within that event's bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/process.hpp"

namespace webmon::test::fleet {

struct FleetConfig {
  std::string topic;               // results
  std::string coordination_topic;  // the group's shards
  std::string group;               // checker.group; empty: none given (the location's default)
  std::vector<std::string> target_urls;  // target i is named fleet-<i>
  int session_timeout_ms = 6000;
  bool static_ids = false;         // instance_id from $WEBMON_TEST_INSTANCE (static membership)
  bool location = false;           // location from $WEBMON_TEST_LOCATION
};

// The YAML every instance of a test reads.
std::string config_yaml(const FleetConfig& c);
std::string target_name(std::size_t i);  // fleet-000, fleet-001, ...

class Instance {
 public:
  Instance(std::filesystem::path config, std::filesystem::path dir, std::string id, std::string location = "");
  void start();  // also after a stop: the same id, port and log file (appended)
  void kill();   // SIGKILL, reaped
  // SIGTERM; the exit status within `limit`, nullopt if it did not exit.
  std::optional<int> stop(std::chrono::milliseconds limit = std::chrono::seconds(60));
  bool running() const;

  const std::string& id() const { return id_; }
  const std::string& location() const { return location_; }
  unsigned short metrics_port() const { return port_; }
  std::optional<double> metric(std::string_view series) const;  // nullopt when it does not answer
  std::string log() const;  // every run's output, in order
  // The shards it owns according to its last rebalance line ("0-3,9"), nullopt before the first.
  std::optional<std::string> owned() const;
  std::size_t rebalance_lines() const;  // rebalance lines in the log so far

 private:
  std::filesystem::path config_;
  std::filesystem::path dir_;
  std::string id_;
  std::string location_;
  unsigned short port_;
  std::unique_ptr<ChildProcess> proc_;  // every run appends to <dir>/<id>.log
};

// Waits until the running instances own every one of `shards` between them, each at least one,
// with no rebalance for `quiet`; false after `limit`.
bool wait_settled(const std::vector<Instance*>& running, int shards, std::chrono::milliseconds limit,
                  std::chrono::milliseconds quiet = std::chrono::seconds(3));

std::int64_t now_ms();  // Unix time, ms

struct Result {
  std::int64_t scheduled_ms;  // Unix ms
  std::string checker;
  std::optional<std::string> location;  // the message's `location`, when it has the field
};
// Every result on `topic`, by target name (at least `min_records`, then quiet for 5 s).
std::map<std::string, std::vector<Result>> results_by_target(const std::string& topic, std::size_t min_records);

// Something that may interrupt a target's series: between `from_ms` and `to_ms` (a moment: equal),
// a gap may reach `bound_ms` (from one scheduled_at to the next).
struct Event {
  std::string name;
  std::int64_t from_ms;
  std::int64_t to_ms;
  std::int64_t bound_ms;
};

struct SeriesCheck {
  std::vector<std::pair<std::string, std::int64_t>> duplicates;  // (target, scheduled_at ms) seen twice
  std::vector<std::string> off_grid;       // a step that is not a multiple of the interval
  std::vector<std::string> unexplained;    // a gap beyond the bound of the event it spans
  // Gaps that no event explains: due times no instance reported. A checker starved of the CPU for
  // more than an interval (a loaded machine, the sanitizers) skips the due times it fell behind
  // and counts them in webmon_checker_probes_skipped_total; a test holds these against that count.
  std::vector<std::string> skipped_gaps;
  std::int64_t skipped_slots = 0;          // due times missing in skipped_gaps
  std::vector<std::string> missing;        // a target with no result early or late in the window
  std::map<std::string, std::vector<std::int64_t>> gaps;  // per event: each target's longest step over it
  std::size_t results = 0;
};

// Checks the series of scheduled_at of each target in `names`, within [from_ms, to_ms].
SeriesCheck check_series(const std::map<std::string, std::vector<std::int64_t>>& by_target,
                         const std::vector<std::string>& names, std::int64_t from_ms, std::int64_t to_ms,
                         std::int64_t interval_ms, const std::vector<Event>& events);

// "p50 X ms, max Y ms over N targets" for a report line.
std::string gap_summary(std::vector<std::int64_t> gaps);
std::string first_few(const std::vector<std::string>& items, std::size_t n = 10);
std::string first_few(const std::vector<std::pair<std::string, std::int64_t>>& items, std::size_t n = 10);

}  // namespace webmon::test::fleet
