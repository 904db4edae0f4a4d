// `webmon migrate` as an operator runs it, as processes against a fresh database on the stack's
// real PostgreSQL: several at once (an upgrade started on two hosts) apply each file exactly once
// under the advisory lock, a file edited after it was applied is refused, and a migration recorded
// by a newer webmon is a warning, not an error.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/database.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/writer/migrations.hpp"

namespace {

using namespace std::chrono_literals;
using webmon::test::ChildProcess;
using webmon::test::TempDir;
using webmon::test::occurrences;

TEST(CliMigrate, SeveralAtOnceApplyEachFileExactlyOnce) {
  webmon::test::TestDatabase db;
  TempDir dir;
  const auto config = dir.write("config.yml", "postgres:\n  uri: " + db.uri() + "\n");
  constexpr int kRuns = 4;
  std::vector<std::unique_ptr<ChildProcess>> runs;
  for (int i = 0; i < kRuns; ++i) {
    runs.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{WEBMON_CLI_BIN, "migrate", "--config", config.string()},
        dir.path() / ("migrate" + std::to_string(i) + ".log")));
  }
  std::string all;
  for (auto& run : runs) {
    EXPECT_EQ(run->wait_for_exit(120s), std::optional<int>(0)) << run->log();
    all += run->log();
  }
  const auto migrations = webmon::writer::embedded_migrations();
  ASSERT_FALSE(migrations.empty());
  // One run applied each file; the others waited on the lock and found it there.
  for (const auto& m : migrations) EXPECT_EQ(occurrences(all, "applied " + m.name + "\n"), 1u) << m.name << "\n" << all;
  EXPECT_EQ(occurrences(all, "schema up to date"), static_cast<std::size_t>(kRuns - 1)) << all;
  EXPECT_EQ(db.scalar("SELECT count(*) FROM schema_migrations"), std::to_string(migrations.size()));
  EXPECT_EQ(db.scalar("SELECT count(DISTINCT version) FROM schema_migrations"), std::to_string(migrations.size()));
}

TEST(CliMigrate, AFileEditedAfterItWasAppliedIsRefused) {
  webmon::test::TestDatabase db;
  TempDir dir;
  const auto config = dir.write("config.yml", "postgres:\n  uri: " + db.uri() + "\n");
  const auto [first, out] = webmon::test::run_command({WEBMON_CLI_BIN, "migrate", "--config", config.string()});
  ASSERT_EQ(first, 0) << out;
  for (const auto& m : webmon::writer::embedded_migrations()) {
    dir.write("sql/" + m.name, m.version == 1 ? m.sql + "\n-- edited later\n" : m.sql);
  }
  const auto [status, output] =
      webmon::test::run_command({WEBMON_CLI_BIN, "migrate", "--config", config.string()}, 60s,
                                {"WEBMON_MIGRATIONS_DIR=" + (dir.path() / "sql").string()});
  EXPECT_EQ(status, 1) << output;
  EXPECT_NE(output.find("001_init.sql was changed after it was applied"), std::string::npos) << output;
}

// A database that a newer webmon migrated (operations.md, "Schema upgrades"): the migration this
// binary does not know is named in a warning, and `webmon migrate` still succeeds.
TEST(CliMigrate, AMigrationThisBinaryDoesNotKnowIsAWarningNotAnError) {
  webmon::test::TestDatabase db;
  TempDir dir;
  const auto config = dir.write("config.yml", "postgres:\n  uri: " + db.uri() + "\n");
  const auto [first, out] = webmon::test::run_command({WEBMON_CLI_BIN, "migrate", "--config", config.string()});
  ASSERT_EQ(first, 0) << out;
  // What a later webmon records when it applies its next file.
  db.exec("INSERT INTO schema_migrations (version, name, checksum) VALUES (999, '999_from_a_newer_webmon.sql', "
          "'" + webmon::writer::sha256_hex("SELECT 1;") + "')");
  const auto [status, output] = webmon::test::run_command({WEBMON_CLI_BIN, "migrate", "--config", config.string()});
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("webmon: warning: the database has migrations this webmon does not know (a newer version "
                        "applied them): 999_from_a_newer_webmon.sql\n"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("schema up to date (" + std::to_string(webmon::writer::embedded_migrations().size()) +
                        " migrations applied)"),
            std::string::npos)
      << output;
  EXPECT_EQ(db.scalar("SELECT count(*) FROM schema_migrations"),
            std::to_string(webmon::writer::embedded_migrations().size() + 1))
      << "the newer one's record is left as it is";
}

// The CLI's log lines are warnings and worse unless asked for (README: Command line; its answer is
// its output): the info line that names WEBMON_MIGRATIONS_DIR is there with --log-level info or
// WEBMON_LOG_LEVEL=info, and not by default. `env -u` keeps a WEBMON_LOG_LEVEL of the caller out.
TEST(CliMigrate, LogsOnlyWarningsUnlessAskedForMore) {
  webmon::test::TestDatabase db;
  TempDir dir;
  const auto config = dir.write("config.yml", "postgres:\n  uri: " + db.uri() + "\n");
  const auto [first, out] = webmon::test::run_command({WEBMON_CLI_BIN, "migrate", "--config", config.string()});
  ASSERT_EQ(first, 0) << out;
  for (const auto& m : webmon::writer::embedded_migrations()) dir.write("sql/" + m.name, m.sql);
  const auto sql_dir = (dir.path() / "sql").string();
  const std::string info_line = "migrations from " + sql_dir + " (WEBMON_MIGRATIONS_DIR)";
  // `env -u WEBMON_LOG_LEVEL [NAME=value] webmon migrate --config FILE [flags]`
  const auto migrate = [&](const std::vector<std::string>& env, const std::vector<std::string>& flags) {
    std::vector<std::string> argv{"env", "-u", "WEBMON_LOG_LEVEL"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {WEBMON_CLI_BIN, "migrate", "--config", config.string()});
    argv.insert(argv.end(), flags.begin(), flags.end());
    return webmon::test::run_command(argv, 60s, {"WEBMON_MIGRATIONS_DIR=" + sql_dir});
  };
  const std::string up_to_date =
      "schema up to date (" + std::to_string(webmon::writer::embedded_migrations().size()) + " migrations applied)";
  {
    const auto [status, output] = migrate({}, {});
    EXPECT_EQ(status, 0) << output;
    EXPECT_NE(output.find(up_to_date), std::string::npos) << output;
    EXPECT_EQ(output.find(info_line), std::string::npos) << "an info line at the default level:\n" << output;
  }
  {
    const auto [status, output] = migrate({}, {"--log-level", "info"});
    EXPECT_EQ(status, 0) << output;
    EXPECT_NE(output.find(info_line), std::string::npos) << output;
  }
  {
    const auto [status, output] = migrate({"WEBMON_LOG_LEVEL=info"}, {});
    EXPECT_EQ(status, 0) << output;
    EXPECT_NE(output.find(info_line), std::string::npos) << output;
  }
}

}  // namespace
