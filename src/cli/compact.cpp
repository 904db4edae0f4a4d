#include "compact.hpp"

#include <ostream>
#include <vector>

#include "webmon/writer/compactor.hpp"
#include "webmon/writer/pg_session.hpp"

namespace webmon::cli {

int compact(const Config& cfg, std::optional<std::chrono::sys_days> day, std::ostream& out, std::ostream& err) {
  using Status = writer::CompactionOutcome::Status;
  writer::CompactorOptions options;
  options.wait_for_lock = true;  // a writer's pass may be running: wait for it, then do ours
  writer::Compactor compactor(writer::pg_session(cfg.postgres).conninfo, options);
  std::vector<std::chrono::sys_days> days;
  const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  if (day) {
    days.push_back(*day);
  } else {
    const int after = cfg.writer.compact_after_days > 0 ? cfg.writer.compact_after_days : 2;
    std::optional<std::chrono::sys_days> oldest;
    if (cfg.writer.retention_days) oldest = today - std::chrono::days(*cfg.writer.retention_days);
    days = compactor.due_days(writer::compaction_until(today, after), oldest);
    if (days.empty()) {
      out << "nothing to compact before " << writer::iso_date(writer::compaction_until(today, after)) << "\n";
      return 0;
    }
  }
  int status = 0;
  for (const auto d : days) {
    const auto r = compactor.compact_day(d);
    out << writer::iso_date(d) << ": ";
    if (r.status == Status::compacted) {
      out << "compacted " << r.rows_read << " rows (" << r.checks_in_day << " checks in compact rows)\n";
    } else if (r.status == Status::nothing) {
      out << "nothing to compact (" << r.checks_in_day << " checks in compact rows)\n";
    } else {
      out << writer::to_string(r.status) << "\n";
      err << "webmon: " << writer::iso_date(d) << ": " << writer::to_string(r.status) << "\n";
      status = 1;
    }
  }
  return status;
}

}  // namespace webmon::cli
