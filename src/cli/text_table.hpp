// What the CLI's reports (stats, incidents) render alike: cells for a terminal table and the
// table itself, and JSON strings.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace webmon::cli {

// One line per cell: a newline or tab in an error detail would break the columns.
std::string one_line(std::string s);

// Seconds for people: 90 -> "1m30s", 3725 -> "1h2m5s", 0.5 -> "0.5s", over a day "1d0h0m0s".
std::string duration_cell(double s);

// A JSON string, or null.
std::string json_string(const std::optional<std::string>& v);

// Aligned columns, two spaces apart: `right[c]` columns right-aligned (numbers), the others left;
// the last column is not padded and no line ends in spaces. rows[0] is the header.
std::string render_table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right);

}  // namespace webmon::cli
