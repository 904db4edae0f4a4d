#include "webmon/writer/migrations.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <openssl/evp.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "embedded_sql.hpp"
#include "webmon/common/hex.hpp"

namespace webmon::writer {
namespace {

// pg_advisory_lock key shared by every writer and `webmon migrate` ("webmon" + 1 in ASCII).
constexpr long long kMigrationLockKey = 0x7765626d6f6e01;

Migration make_migration(const std::string& name, std::string sql) {
  static const std::regex pattern(R"(^([0-9]{3})_[A-Za-z0-9_]+\.sql$)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) {
    throw MigrationError("migration file " + name + ": name must be NNN_name.sql");
  }
  Migration mig;
  mig.version = std::stoi(m[1].str());
  mig.name = name;
  mig.checksum = sha256_hex(sql);
  mig.sql = std::move(sql);
  return mig;
}

std::vector<Migration> sorted_checked(std::vector<Migration> migs) {
  std::sort(migs.begin(), migs.end(), [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (std::size_t i = 1; i < migs.size(); ++i) {
    if (migs[i].version == migs[i - 1].version) {
      throw MigrationError("migrations " + migs[i - 1].name + " and " + migs[i].name + " share version " +
                           std::to_string(migs[i].version));
    }
  }
  return migs;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest), len));
}

const std::vector<Migration>& embedded_migrations() {
  static const std::vector<Migration> migs = [] {
    std::vector<Migration> v;
    for (std::size_t i = 0; i < detail::kEmbeddedSqlCount; ++i) {
      const auto& e = detail::kEmbeddedSql[i];
      if (e.name) v.push_back(make_migration(e.name, std::string(e.data, e.size)));
    }
    return sorted_checked(std::move(v));
  }();
  return migs;
}

std::vector<Migration> load_migrations(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw MigrationError("migrations directory " + dir.string() + " does not exist");
  }
  std::vector<Migration> v;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".sql") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (!in) throw MigrationError("cannot read " + entry.path().string());
    v.push_back(make_migration(entry.path().filename().string(), ss.str()));
  }
  return sorted_checked(std::move(v));
}

std::vector<Migration> default_migrations() {
  const char* dir = std::getenv("WEBMON_MIGRATIONS_DIR");
  if (dir && *dir) {
    spdlog::info("migrations from {} (WEBMON_MIGRATIONS_DIR)", dir);
    return load_migrations(dir);
  }
  return embedded_migrations();
}

MigrationReport apply_migrations(pqxx::connection_base& conn, const std::vector<Migration>& migrations) {
  MigrationReport report;
  {
    pqxx::nontransaction nt(conn);
    nt.exec("SELECT pg_advisory_lock(" + std::to_string(kMigrationLockKey) + ")");
  }
  // The lock is per session: released whatever happens, or when the connection goes.
  struct Unlock {
    pqxx::connection_base& c;
    ~Unlock() {
      try {
        pqxx::nontransaction nt(c);
        nt.exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) + ")");
      } catch (const std::exception&) {
        // A broken connection has released it already.
      }
    }
  } unlock{conn};

  std::map<int, std::pair<std::string, std::string>> recorded;  // version -> name, checksum
  {
    pqxx::work tx(conn);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    for (const auto& row : tx.exec("SELECT version, name, checksum FROM schema_migrations ORDER BY version")) {
      recorded[row[0].as<int>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
    }
    tx.commit();
  }

  for (const auto& m : migrations) {
    if (auto it = recorded.find(m.version); it != recorded.end()) {
      if (it->second.second != m.checksum) {
        throw MigrationError("migration " + m.name + " was changed after it was applied (recorded as " +
                             it->second.first + " with checksum " + it->second.second.substr(0, 12) +
                             "..., the file now has " + m.checksum.substr(0, 12) +
                             "...); refusing to continue: restore the file and put the change in a new migration");
      }
      ++report.already_applied;
      continue;
    }
    pqxx::work tx(conn);
    try {
      tx.exec(m.sql);
    } catch (const pqxx::sql_error& e) {
      throw MigrationError("migration " + m.name + " failed: " + e.what());
    }
    tx.exec_params("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.version,
                   m.name, m.checksum);
    tx.commit();
    spdlog::info("applied migration {}", m.name);
    report.applied.push_back(m.name);
  }
  for (const auto& [version, rec] : recorded) {
    const bool known = std::any_of(migrations.begin(), migrations.end(),
                                   [v = version](const Migration& m) { return m.version == v; });
    if (!known) report.unknown_in_db.push_back(rec.first);
  }
  for (const auto& name : report.unknown_in_db) {
    spdlog::warn("the database has migration {} that this binary does not know (a newer webmon?)", name);
  }
  return report;
}

MigrationReport apply_migrations(const std::string& pg_uri) {
  const auto migs = default_migrations();
  pqxx::connection conn(pg_uri);
  return apply_migrations(conn, migs);
}

}  // namespace webmon::writer
