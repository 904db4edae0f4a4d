// Runs a piece of a test in a forked child inside new network and mount namespaces: only `lo`
// (up), and the test's own /etc/hosts and /etc/resolv.conf, so that name resolution and probes can
// be tried for real without a packet leaving the machine. Needs root (CAP_SYS_ADMIN).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include <gtest/gtest.h>

namespace webmon::test {

struct Isolated {
  bool skipped = false;  // no namespace could be made here; `text` says why
  std::string text;      // what the child returned, or why it was skipped
};

// Runs `fn` in the child; `hosts` and `resolv_conf` (when not empty) are bind-mounted over
// /etc/hosts and /etc/resolv.conf there only. An exception in `fn` is rethrown here as
// std::runtime_error; a child that reports nothing within `limit` is killed.
Isolated run_isolated(const std::function<std::string()>& fn, const std::filesystem::path& hosts,
                      const std::filesystem::path& resolv_conf,
                      std::chrono::seconds limit = std::chrono::seconds(120));

// Under CI=true (CI runs as root, where namespaces work) a test that cannot isolate itself fails;
// elsewhere it is skipped with the reason.
bool must_not_skip();

}  // namespace webmon::test

// In a test body: skip (loudly) or, under CI=true, fail when `out` could not be isolated.
#define WEBMON_REQUIRE_ISOLATED(out)                                                              \
  do {                                                                                           \
    if ((out).skipped) {                                                                         \
      if (::webmon::test::must_not_skip()) FAIL() << "no private network namespace under CI: " << (out).text; \
      GTEST_SKIP() << "SKIPPED, no private network namespace here (run as root): " << (out).text; \
    }                                                                                            \
  } while (0)
