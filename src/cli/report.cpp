#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "text_table.hpp"

namespace webmon::cli {

namespace {

struct Key {
  std::string target;
  std::optional<std::string> location;
  bool operator<(const Key& o) const { return std::tie(target, location) < std::tie(o.target, o.location); }
};
struct Span {
  std::int64_t from_us;
  std::int64_t to_us;
};

}  // namespace

std::vector<ReportRow> query_report(const std::string& conninfo, const ReportQuery& query) {
  // The summary and the incidents cost about the same to compute (on 30 days of 1,000 targets
  // 1.5-2 s and 1.4 s), so they run at once, on two connections of one snapshot
  // (pg_export_snapshot), and each period's downtime (every incident of its target and location
  // that overlaps it, clipped to it) is summed here, in whole microseconds.
  pqxx::connection summary_conn(conninfo);
  pqxx::connection incidents_conn(conninfo);
  pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(summary_conn);
  const auto head = tx.exec_params(
      "SELECT pg_export_snapshot(), CASE WHEN $1::double precision = 0 THEN '-infinity'::timestamptz "
      "ELSE now() - make_interval(secs => $1::double precision) END::text",
      static_cast<double>(query.since.count()));
  const auto snapshot = head[0][0].as<std::string>();
  const auto since = head[0][1].as<std::string>();

  auto incidents = std::async(std::launch::async, [&] {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> itx(incidents_conn);
    itx.exec("SET TRANSACTION SNAPSHOT " + itx.quote(snapshot));
    const auto rows = itx.exec_params(
        "SELECT i.target, i.location, (extract(epoch FROM i.started_at) * 1000000)::bigint, "
        "(extract(epoch FROM i.started_at + i.duration) * 1000000)::bigint "
        "FROM webmon_incidents($1, $2, $3::timestamptz, nullif($4::text, '')) i ORDER BY 1, 2, 3",
        query.open_after, query.close_after, since, query.target.value_or(std::string()));
    std::map<Key, std::vector<Span>> by_key;
    for (const auto& row : rows) {
      Key k{row[0].as<std::string>(), std::nullopt};
      if (!row[1].is_null()) k.location = row[1].as<std::string>();
      by_key[std::move(k)].push_back({row[2].as<std::int64_t>(), row[3].as<std::int64_t>()});
    }
    return by_key;
  });

  std::vector<ReportRow> out;
  std::vector<std::pair<std::int64_t, std::int64_t>> periods;  // each row's [start, end) in µs
  try {
    static constexpr const char* kSql = R"SQL(
SELECT to_char(s.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), t.name, l.name, s.checks,
       (s.ok_checks * 100.0 / s.checks)::double precision, s.p50, s.p95, s.p99,
       (extract(epoch FROM s.period_start) * 1000000)::bigint,
       (extract(epoch FROM s.period_start + ('1 ' || $1::text)::interval) * 1000000)::bigint
FROM webmon_check_summary($2::timestamptz, $1::text, nullif($3::text, ''), NULL) s
JOIN targets t ON t.id = s.target_id
LEFT JOIN locations l ON l.id = s.location_id
ORDER BY t.name, l.name NULLS FIRST, s.period_start
)SQL";
    const pqxx::result rows = tx.exec_params(kSql, query.period, since, query.target.value_or(std::string()));
    out.reserve(rows.size());
    periods.reserve(rows.size());
    for (const auto& row : rows) {
      ReportRow r;
      r.period = row[0].as<std::string>();
      r.target = row[1].as<std::string>();
      if (!row[2].is_null()) r.location = row[2].as<std::string>();
      r.checks = row[3].as<std::int64_t>();
      r.availability_pct = row[4].as<double>();
      if (!row[5].is_null()) r.p50_s = row[5].as<double>();
      if (!row[6].is_null()) r.p95_s = row[6].as<double>();
      if (!row[7].is_null()) r.p99_s = row[7].as<double>();
      periods.emplace_back(row[8].as<std::int64_t>(), row[9].as<std::int64_t>());
      out.push_back(std::move(r));
    }
  } catch (...) {
    incidents.wait();  // its connection and transaction are its own until it returns
    throw;
  }
  const auto by_key = incidents.get();  // rethrows the incidents query's error
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto it = by_key.find(Key{out[i].target, out[i].location});
    if (it == by_key.end()) continue;
    const auto [from, to] = periods[i];
    std::int64_t us = 0;
    for (const auto& span : it->second) {
      if (span.from_us >= to) break;  // by start: none later overlaps
      if (span.to_us > from) us += std::min(span.to_us, to) - std::max(span.from_us, from);
    }
    out[i].downtime_s = static_cast<double>(us) / 1e6;
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
