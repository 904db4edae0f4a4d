#include "incidents.hpp"

#include <algorithm>
#include <cmath>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <pqxx/pqxx>

#include "text_table.hpp"

namespace webmon::cli {

std::vector<Incident> query_incidents(pqxx::connection_base& conn, const IncidentsQuery& query) {
  static const std::string kSql = R"SQL(
SELECT target, location,
       to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       extract(epoch FROM duration)::double precision, checks_failed, first_error, first_error_detail,
       first_http_status
FROM webmon_incidents($1, $2,
                      CASE WHEN $3::double precision = 0 THEN '-infinity'::timestamptz
                           ELSE now() - make_interval(secs => $3::double precision) END,
                      nullif($4::text, ''))
WHERE NOT $5::boolean OR ended_at IS NULL
ORDER BY started_at, target, location NULLS FIRST
)SQL";
  pqxx::read_transaction tx(conn);
  const pqxx::result rows = tx.exec_params(kSql, query.open_after, query.close_after,
                                           static_cast<double>(query.since.count()),
                                           query.target.value_or(std::string()), query.open_only);
  std::vector<Incident> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    Incident i;
    i.target = row[0].as<std::string>();
    if (!row[1].is_null()) i.location = row[1].as<std::string>();
    i.started_at = row[2].as<std::string>();
    if (!row[3].is_null()) i.ended_at = row[3].as<std::string>();
    i.duration_s = row[4].as<double>();
    i.checks_failed = row[5].as<std::int64_t>();
    if (!row[6].is_null()) i.first_error = row[6].as<std::string>();
    if (!row[7].is_null()) i.first_error_detail = row[7].as<std::string>();
    if (!row[8].is_null()) i.first_http_status = row[8].as<int>();
    out.push_back(std::move(i));
  }
  return out;
}

namespace {

std::string error_cell(const Incident& i) {
  if (i.first_error) return one_line(*i.first_error + (i.first_error_detail ? ": " + *i.first_error_detail : ""));
  if (i.first_http_status) return "HTTP " + std::to_string(*i.first_http_status);
  return "-";
}

}  // namespace

std::string format_incidents_table(const std::vector<Incident>& incidents) {
  if (incidents.empty()) return "no incidents in the selected window\n";
  std::vector<std::string> header = {"TARGET", "STARTED", "ENDED", "DURATION", "FAILED", "FIRST ERROR"};
  std::vector<bool> right = {false, false, false, true, true, false};
  const bool locations = std::any_of(incidents.begin(), incidents.end(),
                                     [](const Incident& i) { return i.location.has_value(); });
  if (locations) {
    header.emplace_back("LOCATION");
    right.push_back(false);
  }
  std::vector<std::vector<std::string>> rows{header};
  for (const auto& i : incidents) {
    rows.push_back({one_line(i.target), i.started_at, i.ended_at.value_or("open"), duration_cell(i.duration_s),
                    std::to_string(i.checks_failed), error_cell(i)});
    if (locations) rows.back().push_back(i.location ? one_line(*i.location) : "-");
  }
  return render_table(rows, right);
}

std::string format_incidents_json(const std::vector<Incident>& incidents) {
  std::string out = "{\"incidents\": [";
  for (std::size_t n = 0; n < incidents.size(); ++n) {
    const auto& i = incidents[n];
    if (n > 0) out += ", ";
    out += fmt::format(
        "{{\"target\": {}, \"location\": {}, \"started_at\": {}, \"ended_at\": {}, \"duration_s\": {}, "
        "\"checks_failed\": {}, \"first_error\": {}, \"first_error_detail\": {}, \"first_http_status\": {}}}",
        json_string(i.target), json_string(i.location), json_string(i.started_at), json_string(i.ended_at),
        std::isfinite(i.duration_s) ? fmt::format("{}", i.duration_s) : "null", i.checks_failed,
        json_string(i.first_error), json_string(i.first_error_detail),
        i.first_http_status ? std::to_string(*i.first_http_status) : "null");
  }
  out += "]}\n";
  return out;
}

}  // namespace webmon::cli
