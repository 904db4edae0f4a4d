#include "stats.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <fmt/format.h>
#include <pqxx/pqxx>

#include "text_table.hpp"

namespace webmon::cli {

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text == "all" || text == "0") return std::chrono::seconds(0);
  if (text.empty()) return std::nullopt;
  long long total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    long long n = 0;
    const std::size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      n = n * 10 + (text[i] - '0');
      if (n > 100'000'000) return std::nullopt;  // beyond any retention
      ++i;
    }
    if (i == start || i == text.size()) return std::nullopt;  // a number needs a unit
    long long unit = 0;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: return std::nullopt;
    }
    total += n * unit;
    ++i;
  }
  if (total <= 0) return std::nullopt;
  return std::chrono::seconds(total);
}

std::vector<TargetStats> query_stats(pqxx::connection_base& conn, const StatsQuery& query) {
  // sql/006_rollups.sql's webmon_check_summary: the closed hours that have rollups from them, the
  // rest (the open hour, hours not rolled up yet, the part of the window's first hour before its
  // start) from the rows, with percentile_cont's exact percentiles when no rollup is involved.
  // last_error: the most recent check in the window that had one, not necessarily the last check.
  // One row per target and location; location is selected last so that the columns before it
  // keep their places.
  static constexpr const char* kSql = R"SQL(
SELECT t.name, s.checks, (s.ok_checks * 1.0 / s.checks)::double precision, s.p50, s.p95, s.p99,
       s.last_status, s.last_error, l.name
FROM webmon_check_summary(CASE WHEN $1::double precision = 0 THEN '-infinity'::timestamptz
                               ELSE now() - make_interval(secs => $1::double precision) END,
                          NULL, nullif($2::text, ''), CASE WHEN $3::boolean THEN $4::text END) s
JOIN targets t ON t.id = s.target_id
LEFT JOIN locations l ON l.id = s.location_id
ORDER BY t.name, l.name NULLS FIRST
)SQL";
  pqxx::read_transaction tx(conn);
  const pqxx::result rows =
      tx.exec_params(kSql, static_cast<double>(query.since.count()), query.target.value_or(std::string()),
                     query.location.has_value(), query.location.value_or(std::string()));
  std::vector<TargetStats> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    TargetStats s;
    s.target = row[0].as<std::string>();
    s.checks = row[1].as<long long>();
    s.ok_ratio = row[2].as<double>();
    if (!row[3].is_null()) s.p50_s = row[3].as<double>();
    if (!row[4].is_null()) s.p95_s = row[4].as<double>();
    if (!row[5].is_null()) s.p99_s = row[5].as<double>();
    if (!row[6].is_null()) s.last_status = row[6].as<int>();
    if (!row[7].is_null()) s.last_error = row[7].as<std::string>();
    if (!row[8].is_null()) s.location = row[8].as<std::string>();
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

std::string seconds_cell(const std::optional<double>& v) { return v ? fmt::format("{:.3f}s", *v) : "-"; }

std::string json_number(const std::optional<double>& v) {
  if (!v || !std::isfinite(*v)) return "null";
  return fmt::format("{}", *v);  // shortest round-trip form, e.g. 0.123
}

// Whether the location column is shown: only when some row has one.
bool any_location(const std::vector<TargetStats>& stats) {
  return std::any_of(stats.begin(), stats.end(), [](const TargetStats& s) { return s.location.has_value(); });
}

}  // namespace

std::string format_table(const std::vector<TargetStats>& stats) {
  if (stats.empty()) return "no checks in the selected window\n";
  std::vector<std::string> header = {"TARGET", "CHECKS", "OK", "P50", "P95", "P99", "LAST STATUS", "LAST ERROR"};
  // Numeric columns are right-aligned, text columns left-aligned; the last column is not padded.
  std::vector<bool> right = {false, true, true, true, true, true, true, false};
  const bool locations = any_location(stats);
  if (locations) {
    header.emplace_back("LOCATION");
    right.push_back(false);
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back(header);
  for (const auto& s : stats) {
    rows.push_back({one_line(s.target), std::to_string(s.checks), fmt::format("{:.1f}%", s.ok_ratio * 100.0),
                    seconds_cell(s.p50_s), seconds_cell(s.p95_s), seconds_cell(s.p99_s),
                    s.last_status ? std::to_string(*s.last_status) : "-",
                    s.last_error ? one_line(*s.last_error) : "-"});
    if (locations) rows.back().push_back(s.location ? one_line(*s.location) : "-");
  }
  return render_table(rows, right);
}

std::string format_json(const std::vector<TargetStats>& stats) {
  const bool locations = any_location(stats);
  std::string out = "{\"stats\": [";
  for (std::size_t i = 0; i < stats.size(); ++i) {
    const auto& s = stats[i];
    if (i > 0) out += ", ";
    out += fmt::format(
        "{{\"target\": {}, \"checks\": {}, \"ok_ratio\": {}, \"p50_s\": {}, \"p95_s\": {}, \"p99_s\": {}, "
        "\"last_status\": {}, \"last_error\": {}}}",
        json_string(s.target), s.checks, json_number(s.ok_ratio), json_number(s.p50_s), json_number(s.p95_s),
        json_number(s.p99_s), s.last_status ? std::to_string(*s.last_status) : "null", json_string(s.last_error));
    if (locations) {
      out.pop_back();  // the object's '}'
      out += ", \"location\": " + json_string(s.location) + "}";
    }
  }
  out += "]}\n";
  return out;
}

}  // namespace webmon::cli
