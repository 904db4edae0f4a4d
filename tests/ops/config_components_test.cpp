// What each binary checks of a config, as a user sees it (exit codes and messages of the real
// binaries): the checker's own target settings (a target's ca_file, its regexp's JIT) are the
// checker's business; `webmon migrate` and the writer do not trip over them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kConfig =
    "kafka:\n  bootstrap_servers: 127.0.0.1:1\n"
    "postgres:\n  uri: \"postgresql://webmon@127.0.0.1:1/webmon\"\n  connect_timeout_seconds: 1\n"
    "targets:\n"
    "  - name: internal\n"
    "    target: https://intranet.example/\n"
    "    check_interval_seconds: 30\n"
    "    regexp: \"status: (ok|degraded)\"\n"
    "    ca_file: /etc/ssl/private-ca-that-is-only-on-the-checker-host.pem\n";

TEST(ConfigComponents, MissingTargetCaFileStopsOnlyTheChecker) {
  webmon::test::TempDir dir;
  const auto config = dir.write("config.yml", kConfig).string();

  const auto [checker_rc, checker_out] = webmon::test::run_command({WEBMON_CHECKER_BIN, "--config", config, "--check-config"});
  EXPECT_EQ(checker_rc, 2) << checker_out;
  EXPECT_THAT(checker_out, HasSubstr(":11:14: targets[0].ca_file: file not found"));

  const auto [writer_rc, writer_out] = webmon::test::run_command({WEBMON_WRITER_BIN, "--config", config, "--check-config"});
  EXPECT_EQ(writer_rc, 0) << writer_out;
  EXPECT_THAT(writer_out, HasSubstr(": OK (1 targets)"));

  // migrate gets as far as PostgreSQL (unreachable here): exit 1, not 2 for an invalid config.
  const auto [cli_rc, cli_out] = webmon::test::run_command({WEBMON_CLI_BIN, "--config", config, "migrate"});
  EXPECT_EQ(cli_rc, 1) << cli_out;
  EXPECT_THAT(cli_out, HasSubstr("cannot connect to PostgreSQL"));
  EXPECT_THAT(cli_out, Not(HasSubstr("ca_file")));
}

TEST(ConfigComponents, ABadRegexpIsStillRefusedByEveryBinary) {
  webmon::test::TempDir dir;
  std::string yaml = kConfig;
  yaml.replace(yaml.find("(ok|degraded)"), 13, "(ok|degraded");
  yaml.erase(yaml.find("    ca_file"));
  const auto config = dir.write("config.yml", yaml).string();
  for (const char* bin : {WEBMON_CHECKER_BIN, WEBMON_WRITER_BIN}) {
    const auto [rc, out] = webmon::test::run_command({bin, "--config", config, "--check-config"});
    EXPECT_EQ(rc, 2) << bin << "\n" << out;
    EXPECT_THAT(out, HasSubstr("targets[0].regexp: PCRE2 refuses")) << bin;
  }
}

TEST(ConfigComponents, ConfigSchemaCommand) {
  const auto [md_rc, md] = webmon::test::run_command({WEBMON_CLI_BIN, "config-schema"});
  EXPECT_EQ(md_rc, 0) << md;
  EXPECT_THAT(md, HasSubstr("| `kafka.topic` |"));
  EXPECT_THAT(md, HasSubstr("also written `metrics_topic`"));
  const auto [json_rc, json] = webmon::test::run_command({WEBMON_CLI_BIN, "config-schema", "--format", "json"});
  EXPECT_EQ(json_rc, 0) << json;
  EXPECT_THAT(json, HasSubstr("\"$schema\""));
  const auto [bad_rc, bad] = webmon::test::run_command({WEBMON_CLI_BIN, "config-schema", "--format", "table"});
  EXPECT_EQ(bad_rc, 2) << bad;
  EXPECT_THAT(bad, HasSubstr("--format must be markdown or json"));
}

}  // namespace
