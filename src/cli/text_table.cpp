#include "text_table.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace webmon::cli {

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return s;
}

// 90 -> "1m30s", 3725 -> "1h2m5s", 0.5 -> "0.5s".
std::string duration_cell(double s) {
  if (s < 60) return fmt::format("{}s", std::round(s * 10) / 10);
  auto total = static_cast<long long>(std::llround(s));
  std::string out;
  if (total >= 86400) {
    out += std::to_string(total / 86400) + "d";
    total %= 86400;
  }
  if (total >= 3600 || !out.empty()) {
    out += std::to_string(total / 3600) + "h";
    total %= 3600;
  }
  out += std::to_string(total / 60) + "m";
  out += std::to_string(total % 60) + "s";
  return out;
}

std::string json_string(const std::optional<std::string>& v) {
  if (!v) return "null";
  return boost::json::serialize(boost::json::string(*v));
}

std::string render_table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  std::vector<std::size_t> width(right.size(), 0);
  for (const auto& r : rows) {
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t c = 0; c < r.size(); ++c) {
      if (c > 0) line += "  ";
      const std::size_t pad = width[c] - r[c].size();
      if (right[c]) line.append(pad, ' ');
      line += r[c];
      if (!right[c] && c + 1 < r.size()) line.append(pad, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace webmon::cli
