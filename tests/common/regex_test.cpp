#include "webmon/common/regex.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "webmon/common/logging.hpp"

namespace webmon {
namespace {

std::shared_ptr<const Regex> compile_ok(std::string_view pattern) {
  auto r = Regex::compile(pattern);
  if (auto* e = std::get_if<Regex::CompileError>(&r)) {
    ADD_FAILURE() << pattern << ": " << e->message << " at " << e->offset;
    return nullptr;
  }
  return std::get<std::shared_ptr<const Regex>>(r);
}

TEST(Regex, MatchesAnywhereInTheBody) {
  const auto re = compile_ok("Welcome, [a-z]+!");
  ASSERT_TRUE(re);
  EXPECT_EQ(re->pattern(), "Welcome, [a-z]+!");
  EXPECT_TRUE(re->search("<html><body>Welcome, alice!</body></html>"));
  EXPECT_FALSE(re->search("<html><body>Welcome, Alice!</body></html>"));
  EXPECT_FALSE(re->search(""));
}

TEST(Regex, SearchIsUnanchoredButAnchorsStillWork) {
  const auto re = compile_ok("^ok$");
  ASSERT_TRUE(re);
  EXPECT_TRUE(re->search("ok"));
  EXPECT_FALSE(re->search("not ok"));
  const auto mid = compile_ok("ok");
  EXPECT_TRUE(mid->search("this is ok, really"));
}

TEST(Regex, BodiesWithNulAndInvalidUtf8AreSearched) {
  const auto re = compile_ok("needle");
  ASSERT_TRUE(re);
  const std::string body = std::string("\xff\xfe\0garbage\xc3", 11) + "needle";
  EXPECT_TRUE(re->search(body));
  EXPECT_FALSE(re->search(std::string("\xff\xfe\0", 3)));
}

TEST(Regex, Utf8CharactersAreCharacters) {
  const auto re = compile_ok("caf.!");
  ASSERT_TRUE(re);
  EXPECT_TRUE(re->search("un caf\xc3\xa9!"));  // é is one character, as in Python's re
}

TEST(Regex, BadPatternGivesPcre2MessageAndOffset) {
  auto r = Regex::compile("abc(def");
  ASSERT_TRUE(std::holds_alternative<Regex::CompileError>(r));
  const auto& e = std::get<Regex::CompileError>(r);
  EXPECT_EQ(e.message, "missing closing parenthesis");
  EXPECT_EQ(e.offset, 7u);

  auto r2 = Regex::compile("a**");
  ASSERT_TRUE(std::holds_alternative<Regex::CompileError>(r2));
  EXPECT_EQ(std::get<Regex::CompileError>(r2).message, "quantifier does not follow a repeatable item");
  EXPECT_EQ(std::get<Regex::CompileError>(r2).offset, 2u);
}

TEST(Regex, CatastrophicBacktrackingEndsAsNoMatch) {
  // (a+)+$ against "aaaa...b" needs 2^n steps without a limit: the limit must end it.
  const auto re = compile_ok("(a+)+$");
  ASSERT_TRUE(re);
  const std::string hostile = std::string(5000, 'a') + "b";
  EXPECT_FALSE(re->search(hostile));
  const auto nested = compile_ok("(x+x+)+y");
  EXPECT_FALSE(nested->search(std::string(1 << 20, 'x')));
}

TEST(Regex, LegitimateSearchOverOneMebibyteIsNotCutByTheLimit) {
  const auto re = compile_ok("<title>[^<]*Status: OK[^<]*</title>");
  ASSERT_TRUE(re);
  std::string body;
  while (body.size() < (1u << 20)) body += "<div class=\"row\"><span>item</span><title>x</title></div>\n";
  EXPECT_FALSE(re->search(body));
  body += "<title>Service Status: OK</title>";
  EXPECT_TRUE(re->search(body));
}

// The stream's answer is search()'s over the whole body, however the body is cut into pieces.
bool streamed(const Regex& re, std::string_view body, std::size_t piece) {
  Regex::Stream st(re);
  for (std::size_t at = 0; at < body.size(); at += piece) st.feed(body.substr(at, piece));
  return st.finish();
}

TEST(RegexStream, SameAnswerAsTheWholeBodyWhereverThePiecesEnd) {
  const std::vector<std::string> patterns = {
      "hello\\s+webmon", "^<html", "(?m)^id=\\d+;$", "(?<=foo)bar", "\\bword\\b", "caf\xc3\xa9",
      "a.*b", "x{3}y", "</html>\\s*$", "[0-9]{4}-[0-9]{2}", "(?i)status: ok", "\\Aok", "end\\z"};
  const std::string filler(3000, '.');
  const std::vector<std::string> bodies = {
      "",
      "<html>" + filler + "hello   webmon" + filler,
      filler + "<html> not at the start",
      filler + "\nid=42;\n" + filler,
      filler + "id=42;x",
      filler + "foobar" + filler,
      filler + "foo" + filler + "bar",
      filler + " word " + filler,
      filler + "swordfish",
      filler + "un caf\xc3\xa9" + filler,
      "a" + filler + "b",
      "a" + filler,
      filler + "xxxxy",
      filler + "xxy",
      "<html>" + filler + "</html>\n\n",
      "<html></html>" + filler,
      filler + "2026-12",
      filler + "STATUS: OK",
      "ok" + filler,
      filler + "ok",
      filler + "the end",
      filler + "end of it",
      std::string("\xff\xfe", 2) + filler + "hello webmon",
  };
  for (const auto& pattern : patterns) {
    const auto re = compile_ok(pattern);
    ASSERT_TRUE(re);
    for (const auto& body : bodies) {
      const bool whole = re->search(body);
      for (const std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                                      std::size_t{64}, std::size_t{1000}, std::size_t{65536}}) {
        EXPECT_EQ(streamed(*re, body, piece), whole)
            << "pattern " << pattern << ", body of " << body.size() << " bytes, pieces of " << piece;
      }
    }
  }
}

TEST(RegexStream, HoldsOnlyWhatAMatchMayStillNeed) {
  const auto re = compile_ok("<title>[^<]*Status: OK[^<]*</title>");
  ASSERT_TRUE(re);
  Regex::Stream st(*re);
  const std::string piece = [] {
    std::string p;
    while (p.size() < 64 * 1024) p += "<div class=\"row\"><span>item</span><title>x</title></div>\n";
    return p;
  }();
  std::size_t most = 0;
  for (int i = 0; i < 320; ++i) {  // 20 MiB
    st.feed(piece);
    most = std::max(most, st.held());
  }
  st.feed("<title>Service Status: OK</title>");
  EXPECT_TRUE(st.finish());
  EXPECT_LE(most, 4 * piece.size()) << "a 20 MiB body must not be held whole";
  // A partial match that never ends is held (up to the probe's cap), and still answers no.
  const auto open = compile_ok("<a[^>]*>");
  Regex::Stream st2(*open);
  st2.feed("<a ");
  for (int i = 0; i < 16; ++i) st2.feed(std::string(64 * 1024, 'x'));
  EXPECT_GE(st2.held(), 16u * 64 * 1024);
  EXPECT_FALSE(st2.finish());
}

// configuration.md, `regexp`: a search that PCRE2's match limit ends counts as no match and is
// logged, also when only the body's last search hits the limit (at the end of a streamed body the
// search runs without partial matching, so a body that kept a partial match to its end is searched
// afresh there).
TEST(RegexStream, AMatchLimitHitOnlyAtTheEndOfTheBodyIsLoggedAndIsNoMatch) {
  std::ostringstream log;
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("regex_test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  // [yz], not y: PCRE2 gives up at once on a subject without a required literal, limit or not.
  const auto re = compile_ok("(x+x+)+[yz]");
  ASSERT_TRUE(re);
  Regex::Stream st(*re);
  st.feed(std::string(48, 'x'));
  const std::string before_end = log.str();
  EXPECT_FALSE(st.finish());
  spdlog::set_default_logger(previous);
  EXPECT_EQ(before_end, "") << "the partial searches hit the limit: this case no longer tests the last search";
  EXPECT_NE(log.str().find("regexp '(x+x+)+[yz]' gave up on a 48-byte body ("), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("counted as no match"), std::string::npos) << log.str();
}

TEST(Regex, SharedAcrossThreads) {
  const auto re = compile_ok("id=([0-9]+);");
  ASSERT_TRUE(re);
  std::vector<std::thread> threads;
  std::vector<int> hits(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&re, &hits, t] {
      for (int i = 0; i < 2000; ++i) {
        if (re->search(i % 2 ? "x id=" + std::to_string(i) + "; y" : "x id=; y")) ++hits[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int h : hits) EXPECT_EQ(h, 1000);
}

// What systemd's MemoryDenyWriteExecute=yes installs (src/shared/seccomp-util.c): mmap() with
// PROT_WRITE|PROT_EXEC, and mprotect()/pkey_mprotect() adding PROT_EXEC, fail with EPERM.
bool deny_write_execute() {
#if defined(__x86_64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
#error "deny_write_execute(): add this architecture's AUDIT_ARCH"
#endif
  constexpr std::uint32_t kArg2 = offsetof(seccomp_data, args) + 2 * sizeof(std::uint64_t);  // low half
  const auto stmt = [](unsigned code, std::uint32_t k) { return sock_filter{static_cast<std::uint16_t>(code), 0, 0, k}; };
  const auto jump = [](unsigned code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
    return sock_filter{static_cast<std::uint16_t>(code), jt, jf, k};
  };
  sock_filter code[] = {
      /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, kArch, 0, 10),
      /* 2 */ stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
      /* 4 */ stmt(BPF_LD | BPF_W | BPF_ABS, kArg2),
      /* 5 */ stmt(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
      /* 6 */ jump(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 6, 5),
      /* 7 */ jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 1, 0),
      /* 8 */ jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_pkey_mprotect, 0, 3),
      /* 9 */ stmt(BPF_LD | BPF_W | BPF_ABS, kArg2),
      /* 10 */ stmt(BPF_ALU | BPF_AND | BPF_K, PROT_EXEC),
      /* 11 */ jump(BPF_JMP | BPF_JEQ | BPF_K, PROT_EXEC, 1, 0),
      /* 12 */ stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      /* 13 */ stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  return prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

// MemoryDenyWriteExecute, made as systemd makes it: a seccomp filter that refuses mmap() of
// writable+executable memory and mprotect() to executable (systemd's own rule, which also works
// on Debian 12's kernel, where the newer prctl PR_SET_MDWE does not exist), in a fresh process
// (this test binary run again with only the child test below; a fork would inherit JIT memory
// already mapped): JIT is refused, the interpreter gives the same answers, and the log says so
// exactly once however many patterns are compiled.
TEST(Regex, FallsBackToInterpreterWhenJitIsRefusedAndWarnsOnce) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    setenv("WEBMON_REGEX_MDWE_CHILD", "1", 1);
    execl("/proc/self/exe", "regex_test", "--gtest_filter=RegexMdweChild.*", "--gtest_color=no",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << out;
  ASSERT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
  std::size_t warnings = 0;
  for (auto pos = out.find("PCRE2 JIT unavailable"); pos != std::string::npos;
       pos = out.find("PCRE2 JIT unavailable", pos + 1)) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1u) << out;
}

// Runs only as the child of the test above.
TEST(RegexMdweChild, CompilesWithoutJit) {
  if (!std::getenv("WEBMON_REGEX_MDWE_CHILD")) GTEST_SKIP() << "run by FallsBackToInterpreterWhenJitIsRefusedAndWarnsOnce";
  init_logging(spdlog::level::info, LogFormat::text);
  ASSERT_TRUE(deny_write_execute()) << "seccomp: " << std::strerror(errno);
  for (const char* p : {"a+b", "c[0-9]d", "(x|y)z"}) {
    const auto re = compile_ok(p);
    ASSERT_TRUE(re);
    EXPECT_FALSE(re->jit()) << p;
  }
  const auto re = compile_ok("c[0-9]d");
  EXPECT_TRUE(re->search("abc7de"));
  EXPECT_FALSE(re->search("abcde"));
  EXPECT_FALSE(compile_ok("(a+)+$")->search(std::string(5000, 'a') + "b"));  // limits hold without JIT too
}

TEST(Regex, UsesJitWhereAllowed) {
  const auto re = compile_ok("x");
  ASSERT_TRUE(re);
  EXPECT_TRUE(re->jit()) << "this build of PCRE2 has no JIT, or the test process may not map W+X memory";
}

}  // namespace
}  // namespace webmon
