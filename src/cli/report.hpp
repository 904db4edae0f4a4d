// `webmon report`: availability per target, location and period (UTC day, ISO week or month):
// checks, availability, downtime from incidents clipped to the period, p50/p95/p99; read from the
// hourly rollups and the rows of the open hours (sql/006_rollups.sql's webmon_check_summary) and
// sql/005's webmon_incidents; rendered as a terminal table, JSON or CSV.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace webmon::cli {

struct ReportRow {
  std::string period;  // the period's first day, YYYY-MM-DD (UTC; a week starts on Monday)
  std::string target;
  std::optional<std::string> location;
  std::int64_t checks = 0;
  double availability_pct = 0;  // ok checks / checks x 100
  double downtime_s = 0;        // incidents' time inside the period (an open one: to its last check)
  std::optional<double> p50_s;  // none without responses
  std::optional<double> p95_s;
  std::optional<double> p99_s;
  bool operator==(const ReportRow&) const = default;
};

struct ReportQuery {
  std::string period = "day";                  // day, week or month
  std::chrono::seconds since{30 * 24 * 3600};  // checks scheduled since now() - since; 0: all
  std::optional<std::string> target;
  int open_after = 2;  // incidents.open_after / close_after
  int close_after = 1;
};

// By target, location (none first), period. Opens two connections (the summary and the incidents
// run at once, in one snapshot). Throws pqxx exceptions on database errors.
std::vector<ReportRow> query_report(const std::string& conninfo, const ReportQuery& query);

// Columns PERIOD, TARGET, CHECKS, AVAILABILITY ("99.931%"), DOWNTIME ("1h2m5s"), P50, P95, P99,
// then LOCATION when some row has one. An empty result gives a one-line note.
std::string format_report_table(const std::vector<ReportRow>& rows);
// {"report": [{"period", "target", "location", "checks", "availability_pct", "downtime_s",
// "p50_s", "p95_s", "p99_s"}]}, null for what is absent.
std::string format_report_json(const std::vector<ReportRow>& rows);
// RFC 4180: a header line period,target,location,checks,availability_pct,downtime_s,p50_s,p95_s,
// p99_s, then one line per row; empty fields for what is absent; CRLF line ends.
std::string format_report_csv(const std::vector<ReportRow>& rows);

}  // namespace webmon::cli
