// `webmon incidents`: runs of failed checks per target and location (sql/005_incidents.sql's
// webmon_incidents, with incidents.open_after / close_after), as a terminal table or JSON.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace webmon::cli {

struct Incident {
  std::string target;
  std::optional<std::string> location;
  std::string started_at;               // RFC 3339 UTC with milliseconds
  std::optional<std::string> ended_at;  // none while open
  double duration_s = 0;                // while open: up to the last check
  std::int64_t checks_failed = 0;
  std::optional<std::string> first_error;         // error class of the first failed check
  std::optional<std::string> first_error_detail;
  std::optional<int> first_http_status;
  bool operator==(const Incident&) const = default;
};

struct IncidentsQuery {
  std::chrono::seconds since{7 * 24 * 3600};  // checks scheduled since now() - since; 0: all
  std::optional<std::string> target;
  bool open_only = false;
  int open_after = 2;
  int close_after = 1;
};

// Oldest first. Throws pqxx exceptions on database errors.
std::vector<Incident> query_incidents(pqxx::connection_base& conn, const IncidentsQuery& query);

// Columns TARGET, STARTED, ENDED ("open" while open), DURATION, FAILED, FIRST ERROR ("class:
// detail", else "HTTP <status>", else "-"), then LOCATION when some incident has one. An empty
// result gives a one-line note.
std::string format_incidents_table(const std::vector<Incident>& incidents);
// {"incidents": [{"target", "location", "started_at", "ended_at", "duration_s", "checks_failed",
// "first_error", "first_error_detail", "first_http_status"}]}, null for what is absent.
std::string format_incidents_json(const std::vector<Incident>& incidents);

}  // namespace webmon::cli
