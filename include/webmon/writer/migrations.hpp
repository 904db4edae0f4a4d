// The schema's numbered migrations (sql/NNN_name.sql, embedded into the binary at build time) and
// the one function that applies the pending ones: used by webmon-writer at start and by
// `webmon migrate`.
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace webmon::writer {

struct Migration {
  int version = 0;       // NNN
  std::string name;      // file name, e.g. "001_init.sql"
  std::string sql;
  std::string checksum;  // SHA-256 of sql, lowercase hex
};

// Refused: an applied migration changed, a file name out of pattern, a duplicate version, SQL that
// fails. what() says which file and why.
class MigrationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MigrationReport {
  std::vector<std::string> applied;         // names applied by this call, in order
  std::size_t already_applied = 0;          // found recorded with a matching checksum
  std::vector<std::string> unknown_in_db;   // recorded versions this binary does not know (newer schema)
};

std::string sha256_hex(std::string_view data);

// The migrations compiled into this binary, in version order.
const std::vector<Migration>& embedded_migrations();
// Migrations read from a directory of NNN_name.sql files, in version order. Throws MigrationError.
std::vector<Migration> load_migrations(const std::filesystem::path& dir);
// $WEBMON_MIGRATIONS_DIR when set (an override, e.g. for a hot fix), else the embedded ones.
std::vector<Migration> default_migrations();

// Applies the pending migrations in order, each in its own transaction, under a session advisory
// lock so that concurrent writers and `webmon migrate` take turns. Running it again is harmless.
// Throws MigrationError (refusals) or pqxx exceptions (connection problems).
MigrationReport apply_migrations(pqxx::connection_base& conn, const std::vector<Migration>& migrations);
// Connects to `pg_uri`, applies default_migrations(), disconnects. The entry point of `webmon migrate`.
MigrationReport apply_migrations(const std::string& pg_uri);

}  // namespace webmon::writer
