// Unit: the migrations compiled into the binary, and reading a directory of them.
#include <gtest/gtest.h>

#include "support/stack.hpp"
#include "webmon/writer/migrations.hpp"

namespace webmon::writer {
namespace {

TEST(Migrations, EmbeddedAreTheSqlDirectory) {
  const auto& embedded = embedded_migrations();
  ASSERT_FALSE(embedded.empty());
  EXPECT_EQ(embedded.front().name, "001_init.sql");
  EXPECT_EQ(embedded.front().version, 1);
  const auto from_dir = load_migrations(std::filesystem::path(WEBMON_SOURCE_DIR) / "sql");
  ASSERT_EQ(from_dir.size(), embedded.size());
  for (std::size_t i = 0; i < embedded.size(); ++i) {
    EXPECT_EQ(from_dir[i].name, embedded[i].name);
    EXPECT_EQ(from_dir[i].checksum, embedded[i].checksum);
  }
}

TEST(Migrations, Sha256) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Migrations, DirectoryIsSortedByVersionAndChecked) {
  test::TempDir dir;
  dir.write("010_later.sql", "SELECT 10;");
  dir.write("002_second.sql", "SELECT 2;");
  dir.write("README.txt", "not a migration");
  const auto migs = load_migrations(dir.path());
  ASSERT_EQ(migs.size(), 2u);
  EXPECT_EQ(migs[0].version, 2);
  EXPECT_EQ(migs[1].name, "010_later.sql");

  dir.write("002_again.sql", "SELECT 2;");
  EXPECT_THROW(load_migrations(dir.path()), MigrationError);

  test::TempDir bad;
  bad.write("init.sql", "SELECT 1;");
  EXPECT_THROW(load_migrations(bad.path()), MigrationError);
  EXPECT_THROW(load_migrations(bad.path() / "missing"), MigrationError);
}

}  // namespace
}  // namespace webmon::writer
