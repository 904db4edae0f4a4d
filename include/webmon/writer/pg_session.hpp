// The connection string every PostgreSQL session of the writer and the CLI uses: the configured
// URI plus deadlines (connect_timeout, TCP keepalives, statement_timeout), so that no session can
// wait on a silent server for ever. A value the URI gives itself wins over the `postgres` keys.
#pragma once

#include <chrono>
#include <string>

#include "webmon/common/config.hpp"

namespace webmon::writer {

struct PgSession {
  std::string conninfo;                          // key=value form, for pqxx::connection
  std::chrono::seconds connect_timeout{0};       // as in effect (the URI's when it gives one)
  std::chrono::milliseconds statement_timeout{0};  // as in effect; 0: none
};

// Throws std::invalid_argument with libpq's message when the URI does not parse.
PgSession pg_session(const PostgresConfig& pg);

}  // namespace webmon::writer
