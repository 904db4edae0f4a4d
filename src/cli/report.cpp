#include "report.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "text_table.hpp"

namespace webmon::cli {

std::vector<ReportRow> query_report(pqxx::connection_base& conn, const ReportQuery& query) {
  // Downtime: each incident of the target and location that overlaps the period, clipped to it
  // (a hash join on the target and location, so the incidents are not scanned once per period).
  static constexpr const char* kSql = R"SQL(
WITH w AS (
  SELECT CASE WHEN $2::double precision = 0 THEN '-infinity'::timestamptz
              ELSE now() - make_interval(secs => $2::double precision) END AS since
), s AS (
  SELECT s.*, s.period_start + ('1 ' || $1::text)::interval AS period_end
  FROM w, webmon_check_summary(w.since, $1::text, nullif($3::text, ''), NULL) s
), i AS MATERIALIZED (
  SELECT t.id AS target_id, coalesce(l.id, 0) AS location_id, i.started_at, i.started_at + i.duration AS ended_at
  FROM w, webmon_incidents($4, $5, w.since, nullif($3::text, '')) i
  JOIN targets t ON t.name = i.target
  LEFT JOIN locations l ON l.name = i.location
), d AS (
  SELECT s.target_id, s.location_id, s.period_start,
         sum(extract(epoch FROM least(i.ended_at, s.period_end) - greatest(i.started_at, s.period_start))) AS downtime
  FROM s
  JOIN i ON i.target_id = s.target_id AND i.location_id = s.location_id
        AND i.started_at < s.period_end AND i.ended_at > s.period_start
  GROUP BY 1, 2, 3
)
SELECT to_char(s.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), t.name, l.name, s.checks,
       (s.ok_checks * 100.0 / s.checks)::double precision, coalesce(d.downtime, 0)::double precision,
       s.p50, s.p95, s.p99
FROM s
JOIN targets t ON t.id = s.target_id
LEFT JOIN locations l ON l.id = s.location_id
LEFT JOIN d ON d.target_id = s.target_id AND d.location_id = s.location_id AND d.period_start = s.period_start
ORDER BY t.name, l.name NULLS FIRST, s.period_start
)SQL";
  pqxx::read_transaction tx(conn);
  const pqxx::result rows = tx.exec_params(kSql, query.period, static_cast<double>(query.since.count()),
                                           query.target.value_or(std::string()), query.open_after, query.close_after);
  std::vector<ReportRow> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    ReportRow r;
    r.period = row[0].as<std::string>();
    r.target = row[1].as<std::string>();
    if (!row[2].is_null()) r.location = row[2].as<std::string>();
    r.checks = row[3].as<std::int64_t>();
    r.availability_pct = row[4].as<double>();
    r.downtime_s = row[5].as<double>();
    if (!row[6].is_null()) r.p50_s = row[6].as<double>();
    if (!row[7].is_null()) r.p95_s = row[7].as<double>();
    if (!row[8].is_null()) r.p99_s = row[8].as<double>();
    out.push_back(std::move(r));
  }
  return out;
}

namespace {

std::string seconds_cell(const std::optional<double>& v) { return v ? fmt::format("{:.3f}s", *v) : "-"; }

std::string number(const std::optional<double>& v, const char* none) {
  if (!v || !std::isfinite(*v)) return none;
  return fmt::format("{}", *v);  // shortest round-trip form
}

bool any_location(const std::vector<ReportRow>& rows) {
  return std::any_of(rows.begin(), rows.end(), [](const ReportRow& r) { return r.location.has_value(); });
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string format_report_table(const std::vector<ReportRow>& rows) {
  if (rows.empty()) return "no checks in the selected window\n";
  std::vector<std::string> header = {"PERIOD", "TARGET", "CHECKS", "AVAILABILITY", "DOWNTIME", "P50", "P95", "P99"};
  std::vector<bool> right = {false, false, true, true, true, true, true, true};
  const bool locations = any_location(rows);
  if (locations) {
    header.emplace_back("LOCATION");
    right.push_back(false);
  }
  std::vector<std::vector<std::string>> table{header};
  for (const auto& r : rows) {
    table.push_back({r.period, one_line(r.target), std::to_string(r.checks), fmt::format("{:.3f}%", r.availability_pct),
                     duration_cell(r.downtime_s), seconds_cell(r.p50_s), seconds_cell(r.p95_s), seconds_cell(r.p99_s)});
    if (locations) table.back().push_back(r.location ? one_line(*r.location) : "-");
  }
  return render_table(table, right);
}

std::string format_report_json(const std::vector<ReportRow>& rows) {
  std::string out = "{\"report\": [";
  for (std::size_t n = 0; n < rows.size(); ++n) {
    const auto& r = rows[n];
    if (n > 0) out += ", ";
    out += fmt::format(
        "{{\"period\": {}, \"target\": {}, \"location\": {}, \"checks\": {}, \"availability_pct\": {}, "
        "\"downtime_s\": {}, \"p50_s\": {}, \"p95_s\": {}, \"p99_s\": {}}}",
        json_string(r.period), json_string(r.target), json_string(r.location), r.checks,
        number(r.availability_pct, "null"), number(r.downtime_s, "null"), number(r.p50_s, "null"),
        number(r.p95_s, "null"), number(r.p99_s, "null"));
  }
  out += "]}\n";
  return out;
}

std::string format_report_csv(const std::vector<ReportRow>& rows) {
  std::string out = "period,target,location,checks,availability_pct,downtime_s,p50_s,p95_s,p99_s\r\n";
  for (const auto& r : rows) {
    out += fmt::format("{},{},{},{},{},{},{},{},{}\r\n", r.period, csv_field(r.target),
                       csv_field(r.location.value_or("")), r.checks, number(r.availability_pct, ""),
                       number(r.downtime_s, ""), number(r.p50_s, ""), number(r.p95_s, ""), number(r.p99_s, ""));
  }
  return out;
}

}  // namespace webmon::cli
