#include "webmon/writer/pg_session.hpp"

#include <charconv>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>

#include <libpq-fe.h>

namespace webmon::writer {
namespace {

// A value in key='value' form: single quotes and backslashes escaped, as libpq reads it.
std::string conninfo_value(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::optional<long> leading_number(std::string_view s, std::string_view* rest = nullptr) {
  long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  if (rest) *rest = std::string_view(p, static_cast<std::size_t>(s.data() + s.size() - p));
  return v;
}

// statement_timeout from `-c statement_timeout=...` (or --statement_timeout=...) in libpq's
// `options`; PostgreSQL's units ms, s, min, h; nullopt when absent or not understood.
std::optional<std::chrono::milliseconds> statement_timeout_in(std::string_view options) {
  const auto at = options.find("statement_timeout=");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view unit;
  auto v = leading_number(options.substr(at + 18), &unit);
  if (!v) return std::nullopt;
  unit = unit.substr(0, unit.find_first_of(" \t"));
  if (unit.empty() || unit == "ms") return std::chrono::milliseconds(*v);
  if (unit == "s") return std::chrono::seconds(*v);
  if (unit == "min") return std::chrono::minutes(*v);
  if (unit == "h") return std::chrono::hours(*v);
  return std::nullopt;
}

}  // namespace

PgSession pg_session(const PostgresConfig& pg) {
  char* err = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> opts(PQconninfoParse(pg.uri.c_str(), &err),
                                                                     &PQconninfoFree);
  if (!opts) {
    std::string why = err ? err : "out of memory";
    if (err) PQfreemem(err);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw std::invalid_argument("postgres.uri: " + why);
  }
  std::map<std::string, std::string> given;  // only what the URI sets itself
  for (auto* o = opts.get(); o->keyword; ++o) {
    if (o->val) given[o->keyword] = o->val;
  }
  PgSession out;
  auto set_default = [&](const char* key, const std::string& value) { given.try_emplace(key, value); };
  set_default("connect_timeout", std::to_string(pg.connect_timeout_seconds));
  set_default("keepalives", "1");
  set_default("keepalives_idle", std::to_string(pg.keepalives_idle_seconds));
  set_default("keepalives_interval", std::to_string(pg.keepalives_interval_seconds));
  set_default("keepalives_count", std::to_string(pg.keepalives_count));

  std::string& options = given["options"];
  if (auto from_uri = statement_timeout_in(options)) {
    out.statement_timeout = *from_uri;
  } else if (options.find("statement_timeout") == std::string::npos) {
    if (!options.empty()) options += ' ';
    options += "-c statement_timeout=" + std::to_string(pg.statement_timeout_ms);
    out.statement_timeout = std::chrono::milliseconds(pg.statement_timeout_ms);
  } else {
    out.statement_timeout = std::chrono::milliseconds(pg.statement_timeout_ms);  // not understood: ours as a guess
  }
  // libpq: 0 or absent means no limit, and values below 2 s are taken as 2 s.
  const auto ct = leading_number(given["connect_timeout"]).value_or(pg.connect_timeout_seconds);
  out.connect_timeout = std::chrono::seconds(ct <= 0 ? 0 : std::max(ct, 2L));

  for (const auto& [key, value] : given) {
    if (!out.conninfo.empty()) out.conninfo.push_back(' ');
    out.conninfo += key + "=" + conninfo_value(value);
  }
  return out;
}

}  // namespace webmon::writer
