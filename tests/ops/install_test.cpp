// `cmake --install` into a temporary prefix: the binaries, the units (naming that prefix's
// binaries, and still accepted by systemd-analyze verify), the migrations and the example config.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Install, PutsEverythingInTheUsualPlaces) {
  const char* cmake = std::getenv("CMAKE_COMMAND");
  const char* build = std::getenv("WEBMON_BINARY_DIR");
  ASSERT_TRUE(cmake && build);
  webmon::test::TempDir dir;
  const fs::path prefix = dir.path() / "prefix";

  const auto [status, output] = webmon::test::run_command({cmake, "--install", build, "--prefix", prefix.string()});
  ASSERT_EQ(status, 0) << output;

  for (const char* bin : {"webmon-checker", "webmon-writer", "webmon"}) {
    const fs::path p = prefix / "bin" / bin;
    EXPECT_TRUE(fs::exists(p)) << p;
    EXPECT_NE(fs::status(p).permissions() & fs::perms::owner_exec, fs::perms::none) << p;
  }

  const fs::path src(WEBMON_SOURCE_DIR);
  for (const auto& entry : fs::directory_iterator(src / "sql")) {
    if (entry.path().extension() != ".sql") continue;
    const fs::path installed = prefix / "share/webmon/sql" / entry.path().filename();
    ASSERT_TRUE(fs::exists(installed)) << installed;
    EXPECT_EQ(read_file(installed), read_file(entry.path()));
  }
  if (fs::exists(src / "config/config.example.yml")) {
    EXPECT_TRUE(fs::exists(prefix / "share/webmon/config.example.yml"));
  }

  for (const char* unit : {"webmon-checker.service", "webmon-writer.service"}) {
    SCOPED_TRACE(unit);
    const fs::path p = prefix / "lib/systemd/system" / unit;
    ASSERT_TRUE(fs::exists(p));
    const std::string text = read_file(p);
    const std::string binary = std::string(unit).substr(0, std::string(unit).find('.'));
    EXPECT_NE(text.find("ExecStart=" + (prefix / "bin" / binary).string() + " --config /etc/webmon/config.yml"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("/usr/bin/webmon"), std::string::npos);
    const auto [vstatus, voutput] = webmon::test::run_command({"systemd-analyze", "verify", p.string()});
    EXPECT_EQ(vstatus, 0) << voutput;
    EXPECT_EQ(voutput, "");
  }
}

}  // namespace
