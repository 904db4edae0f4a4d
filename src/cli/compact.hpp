// `webmon compact [--day D]`: compacts closed days now (sql/004_compaction.sql, the writer's
// compactor): the given UTC day, or every day before today - writer.compact_after_days.
#pragma once

#include <chrono>
#include <iosfwd>
#include <optional>

#include "webmon/common/config.hpp"

namespace webmon::cli {

// One line per day compacted (or a line saying there was nothing). Waits for a compaction that
// another writer runs. Returns the exit code: 0 done, 1 when a day kept receiving rows.
// Throws pqxx exceptions on database errors.
int compact(const Config& cfg, std::optional<std::chrono::sys_days> day, std::ostream& out, std::ostream& err);

}  // namespace webmon::cli
