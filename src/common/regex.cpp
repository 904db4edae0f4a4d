#include "webmon/common/regex.hpp"

#include <array>
#include <atomic>
#include <mutex>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <spdlog/spdlog.h>

namespace webmon {
namespace {

// A hostile or simply unlucky body must not pin a probe thread: a search that needs more than this
// many backtracking steps, or more memory than this, ends and counts as "no match". Legitimate
// patterns over a 1 MiB body stay far below (measured in tests/common/regex_test.cpp).
constexpr std::uint32_t kMatchLimit = 5'000'000;
constexpr std::uint32_t kDepthLimit = 100'000;
constexpr std::uint32_t kHeapLimitKiB = 64 * 1024;
constexpr std::size_t kJitStackStart = 32 * 1024;
constexpr std::size_t kJitStackMax = 1024 * 1024;

std::string error_message(int code) {
  std::array<PCRE2_UCHAR, 256> buf{};
  const int n = pcre2_get_error_message(code, buf.data(), buf.size());
  if (n < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buf.data()), static_cast<std::size_t>(n));
}

// Match data, limits and the JIT stack are per thread, so that searches never share mutable
// state: the compiled code itself is read-only and shared by every thread.
struct ThreadMatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);  // only "did it match" is needed
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);

  ThreadMatchState() {
    pcre2_set_match_limit(context, kMatchLimit);
    pcre2_set_depth_limit(context, kDepthLimit);
    pcre2_set_heap_limit(context, kHeapLimitKiB);
    if (jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  ThreadMatchState(const ThreadMatchState&) = delete;
  ThreadMatchState& operator=(const ThreadMatchState&) = delete;
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  return state;
}

std::atomic<std::uint64_t> g_limit_hits{0};

}  // namespace

std::variant<std::shared_ptr<const Regex>, Regex::CompileError> Regex::compile(std::string_view pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // UTF so that `.` and character classes see characters as the earlier tool's Python `re` did;
  // MATCH_INVALID_UTF so that a body that is not valid UTF-8 is still searched, never an error.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr);
  if (!code) return CompileError{error_message(error_code), static_cast<std::size_t>(error_offset)};

  // JIT needs memory that is writable and then executable; systemd's MemoryDenyWriteExecute=yes
  // and some container profiles forbid that. The interpreter gives the same answers, slower.
  const int jit_rc = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  const bool jit = jit_rc == 0;
  if (!jit) {
    static std::once_flag warned;
    std::call_once(warned, [jit_rc] {
      spdlog::warn("PCRE2 JIT unavailable ({}); regular expressions use the interpreter", error_message(jit_rc));
    });
  }
  return std::shared_ptr<const Regex>(new Regex(code, jit, std::string(pattern)));
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool Regex::search(std::string_view subject) const {
  auto& state = thread_state();
  if (!state.data || !state.context) return false;  // allocation failed: treat as no match
  const int rc = pcre2_match(static_cast<const pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                             subject.size(), 0, 0, state.data, state.context);
  if (rc >= 0) return true;
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  // A limit (or another match-time error): the body is treated as not matching. Logged sparingly,
  // since one bad pattern on one target would otherwise log on every probe.
  const auto hits = g_limit_hits.fetch_add(1, std::memory_order_relaxed);
  if (hits < 10 || hits % 1000 == 0) {
    spdlog::warn("regexp '{}' gave up on a {}-byte body ({}); counted as no match", pattern_, subject.size(),
                 error_message(rc));
  }
  return false;
}

}  // namespace webmon
