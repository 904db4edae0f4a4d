// `webmon migrate` as an operator runs it, as processes against a fresh database on the stack's
// real PostgreSQL: several at once (an upgrade started on two hosts) apply each file exactly once
// under the advisory lock, and a file edited after it was applied is refused.
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

}  // namespace
