// `webmon stats`: per-target summary of the check_results view (checks, ok ratio, response-time
// percentiles, last status, last error), one row per target and location, and its two
// renderings, a terminal table and JSON.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace webmon::cli {

struct TargetStats {
  std::string target;
  long long checks = 0;
  double ok_ratio = 0;              // 0..1
  std::optional<double> p50_s;      // percentile_cont of http_response_time; none without responses
  std::optional<double> p95_s;
  std::optional<double> p99_s;
  std::optional<int> last_status;   // http_status of the most recent check (null: no response)
  std::optional<std::string> last_error;  // the most recent error in the window, "class: detail"
  std::optional<std::string> location;    // checker.location of these checks; none: no location
  bool operator==(const TargetStats&) const = default;
};

struct StatsQuery {
  std::chrono::seconds since{3600};   // window: scheduled_at >= now() - since; 0 = everything
  std::optional<std::string> target;  // one target only
  std::optional<std::string> location;  // one location only; "": the checks without a location
};

// Parses "90s", "15m", "1h", "1h30m", "7d", "2w"; "all" or "0" = no limit. nullopt when invalid.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

// Runs the query (read-only transaction). Throws pqxx exceptions on database errors.
std::vector<TargetStats> query_stats(pqxx::connection_base& conn, const StatsQuery& query);

// Rows by target, then location (none first). The location column (table: LOCATION, JSON:
// "location") is added last, and only when some row has a location: the output of a deployment
// without locations is the same bytes as before locations existed.

// Aligned columns for a terminal; "-" for nulls. An empty result gives a one-line note.
std::string format_table(const std::vector<TargetStats>& stats);
// {"stats": [{"target", "checks", "ok_ratio", "p50_s", "p95_s", "p99_s", "last_status",
// "last_error"[, "location"]}]}, one line, nulls as null.
std::string format_json(const std::vector<TargetStats>& stats);

}  // namespace webmon::cli
