// The systemd units as systemd itself reads them: `systemd-analyze verify` accepts them without a
// single warning, `systemd-analyze security --offline=true` rates each at an exposure of 2.0 or
// lower, and they carry the service contract (notify, reload by SIGHUP, watchdog, restart).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

namespace fs = std::filesystem;

struct Unit {
  const char* name;
  const char* binary;  // the build tree's binary, for ExecStart during verify
  const char* installed;
};

const Unit kUnits[] = {
    {"webmon-checker.service", WEBMON_CHECKER_BIN, "/usr/bin/webmon-checker"},
    {"webmon-writer.service", WEBMON_WRITER_BIN, "/usr/bin/webmon-writer"},
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every `Key=value` of the [Service] section (repeated keys keep every value).
std::multimap<std::string, std::string> service_section(const std::string& text) {
  std::multimap<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  std::string section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      section = line;
      continue;
    }
    const auto eq = line.find('=');
    if (section == "[Service]" && eq != std::string::npos) out.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  return out;
}

std::string value(const std::multimap<std::string, std::string>& kv, const std::string& key) {
  const auto it = kv.find(key);
  return it == kv.end() ? std::string("<missing>") : it->second;
}

fs::path unit_source(const Unit& u) { return fs::path(WEBMON_SOURCE_DIR) / "systemd" / u.name; }

TEST(SystemdUnits, CarryTheServiceContract) {
  for (const auto& u : kUnits) {
    SCOPED_TRACE(u.name);
    const auto kv = service_section(read_file(unit_source(u)));
    EXPECT_EQ(value(kv, "Type"), "notify");
    EXPECT_EQ(value(kv, "ExecStart"), std::string(u.installed) + " --config /etc/webmon/config.yml");
    EXPECT_EQ(value(kv, "ExecReload"), "/bin/kill -HUP $MAINPID");
    EXPECT_EQ(value(kv, "Restart"), "on-failure");
    EXPECT_NE(value(kv, "WatchdogSec"), "<missing>");
    EXPECT_EQ(value(kv, "DynamicUser"), "yes");
    EXPECT_EQ(value(kv, "ProtectSystem"), "strict");
    EXPECT_EQ(value(kv, "ProtectHome"), "yes");
    EXPECT_EQ(value(kv, "PrivateTmp"), "yes");
    EXPECT_EQ(value(kv, "NoNewPrivileges"), "yes");
    EXPECT_EQ(value(kv, "CapabilityBoundingSet"), "");
    EXPECT_EQ(value(kv, "SystemCallFilter"), "@system-service");
  }
}

TEST(SystemdUnits, CheckerAllowsJitWriterDoesNot) {
  // PCRE2's JIT needs writable+executable memory: the checker is deliberately without
  // MemoryDenyWriteExecute (docs/operations.md), the writer, which has no JIT, forbids it.
  const auto checker = service_section(read_file(unit_source(kUnits[0])));
  const auto writer = service_section(read_file(unit_source(kUnits[1])));
  EXPECT_EQ(checker.count("MemoryDenyWriteExecute"), 0u);
  EXPECT_EQ(value(writer, "MemoryDenyWriteExecute"), "yes");
}

TEST(SystemdUnits, VerifyWithoutWarnings) {
  webmon::test::TempDir dir;
  for (const auto& u : kUnits) {
    SCOPED_TRACE(u.name);
    ASSERT_TRUE(fs::exists(u.binary)) << u.binary << " must be built before this test";
    // verify checks that ExecStart's binary exists: point it at the build tree's.
    std::string text = read_file(unit_source(u));
    const std::string from = u.installed;
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos);
    text.replace(at, from.size(), fs::absolute(u.binary).string());
    const fs::path copy = dir.write(u.name, text);

    const auto [status, output] = webmon::test::run_command({"systemd-analyze", "verify", copy.string()});
    EXPECT_EQ(status, 0) << output;
    EXPECT_EQ(output, "") << "systemd-analyze verify warned";
  }
}

TEST(SystemdUnits, SecurityExposureAtMostTwo) {
  const std::regex overall(R"(Overall exposure level for [^:]+: ([0-9]+\.[0-9]+))");
  for (const auto& u : kUnits) {
    SCOPED_TRACE(u.name);
    const auto [status, output] = webmon::test::run_command(
        {"systemd-analyze", "security", "--offline=true", "--no-pager", unit_source(u).string()});
    EXPECT_EQ(status, 0) << output;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(output, m, overall)) << output;
    const double exposure = std::stod(m[1].str());
    EXPECT_LE(exposure, 2.0) << output;
  }
}

}  // namespace
