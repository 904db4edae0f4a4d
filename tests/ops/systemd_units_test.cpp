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

// "5s", "1min 30s", "90": systemd's time span, in seconds (only the units these files use).
double seconds(const std::string& span) {
  const std::regex part(R"(\s*([0-9]+)\s*(min|s)?)");
  double total = 0;
  auto begin = std::sregex_iterator(span.begin(), span.end(), part);
  std::size_t matched = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    total += std::stod((*it)[1].str()) * ((*it)[2].str() == "min" ? 60 : 1);
    matched += static_cast<std::size_t>(it->length());
  }
  return matched == span.size() && !span.empty() ? total : -1;
}

// operations.md, "The systemd units": a crash is restarted after 5 s, the secrets come from
// webmon.env if it exists (the "-"), and TimeoutStopSec leaves room for the graceful stop with the
// default config, so that systemd never SIGKILLs a daemon that is still stopping as promised:
//   the checker: the longest probe deadline (targets' timeout_seconds, 10 s by default) + 2 s to
//     let in-flight probes end, then at most 10 s to flush Kafka (src/checker/checker.cpp shutdown);
//   the writer: the PostgreSQL job in flight and the batch already built, each bounded by
//     postgres.statement_timeout_ms (20 s by default) + 5 s (src/writer/ingest.cpp).
TEST(SystemdUnits, RestartAfterFiveSecondsReadTheSecretsFileAndLeaveRoomForTheGracefulStop) {
  const double graceful_stop[] = {10 + 2 + 10, 2 * (20 + 5)};
  for (std::size_t i = 0; i < std::size(kUnits); ++i) {
    const auto& u = kUnits[i];
    SCOPED_TRACE(u.name);
    const auto kv = service_section(read_file(unit_source(u)));
    EXPECT_EQ(value(kv, "RestartSec"), "5s");
    EXPECT_EQ(value(kv, "EnvironmentFile"), "-/etc/webmon/webmon.env");
    const double stop = seconds(value(kv, "TimeoutStopSec"));
    ASSERT_GT(stop, 0) << "TimeoutStopSec=" << value(kv, "TimeoutStopSec");
    EXPECT_GT(stop, graceful_stop[i]) << "TimeoutStopSec=" << value(kv, "TimeoutStopSec");
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
