#include "webmon/common/regex.hpp"

#include <array>
#include <atomic>
#include <mutex>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <spdlog/spdlog.h>

#include "webmon/common/log_limit.hpp"

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

LogLimit g_gave_up_log;  // the first 10 bodies a pattern gave up on, then every 1000th

}  // namespace

std::variant<std::shared_ptr<const Regex>, Regex::CompileError> Regex::compile(std::string_view pattern, bool want_jit) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // UTF so that `.` and character classes see characters as the earlier tool's Python `re` did;
  // MATCH_INVALID_UTF so that a body that is not valid UTF-8 is still searched, never an error.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr);
  if (!code) return CompileError{error_message(error_code), static_cast<std::size_t>(error_offset)};

  // JIT needs memory that is writable and then executable; systemd's MemoryDenyWriteExecute=yes
  // and some container profiles forbid that. The interpreter gives the same answers, slower.
  const int jit_rc = want_jit ? pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) : 0;
  const bool jit = want_jit && jit_rc == 0;
  if (want_jit && !jit) {
    static std::once_flag warned;
    std::call_once(warned, [jit_rc] {
      spdlog::warn("PCRE2 JIT unavailable ({}); regular expressions use the interpreter", error_message(jit_rc));
    });
  }
  std::uint32_t lookbehind = 0;
  pcre2_pattern_info(code, PCRE2_INFO_MAXLOOKBEHIND, &lookbehind);
  // In characters; a UTF-8 character is up to 4 bytes. One more for \b and \B at a piece's start.
  return std::shared_ptr<const Regex>(new Regex(code, jit, std::string(pattern), (lookbehind + 1) * 4));
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

// A limit (or another match-time error): the body is treated as not matching. Logged sparingly,
// since one bad pattern on one target would otherwise log on every probe.
void note_gave_up(const std::string& pattern, std::size_t bytes, int rc) {
  if (g_gave_up_log.count()) {
    spdlog::warn("regexp '{}' gave up on a {}-byte body ({}); counted as no match", pattern, bytes, error_message(rc));
  }
}

bool Regex::search(std::string_view subject) const {
  auto& state = thread_state();
  if (!state.data || !state.context) return false;  // allocation failed: treat as no match
  const int rc = pcre2_match(static_cast<const pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                             subject.size(), 0, 0, state.data, state.context);
  if (rc >= 0) return true;
  if (rc != PCRE2_ERROR_NOMATCH) note_gave_up(pattern_, subject.size(), rc);
  return false;
}

namespace {

// How many bytes at the end of `s` are the start of a UTF-8 character that has not ended yet.
std::size_t incomplete_utf8_tail(std::string_view s) {
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return len > back ? back : 0;
  }
  return 0;
}

}  // namespace

void Regex::Stream::feed(std::string_view piece) {
  if (piece.empty()) return;
  std::copy(piece.begin(), piece.end(), prepare(piece.size()));
  commit(piece.size());
}

char* Regex::Stream::prepare(std::size_t n) {
  if (matched_ || gave_up_) {  // decided: the bytes go nowhere that is kept
    buf_.resize(n);
    prepared_ = n;
    return buf_.data();
  }
  prepared_ = n;
  buf_.resize(buf_.size() + n);
  return buf_.data() + buf_.size() - n;
}

void Regex::Stream::commit(std::size_t n) {
  buf_.resize(buf_.size() - (prepared_ - std::min(n, prepared_)));
  prepared_ = 0;
  if (matched_ || gave_up_) {
    buf_.clear();
    return;
  }
  if (n == 0) return;
  settled_ = incomplete_utf8_tail(buf_);
  search_held(true);
}

bool Regex::Stream::finish() {
  if (!matched_ && !gave_up_) {
    settled_ = 0;
    search_held(false);
  }
  std::string().swap(buf_);
  return matched_;
}

// Searches buf_ from start_ (up to the held-back tail), then drops what no match can still need:
// everything before a partial match's start, or before the end, less the lookbehind.
void Regex::Stream::search_held(bool partial) {
  auto& state = thread_state();
  if (!state.data || !state.context) {
    gave_up_ = true;
    return;
  }
  const std::size_t len = buf_.size() - settled_;
  if (start_ > len) return;
  std::uint32_t options = partial ? PCRE2_PARTIAL_HARD : 0;
  if (!at_body_start_) options |= PCRE2_NOTBOL;
  const int rc = pcre2_match(static_cast<const pcre2_code*>(re_->code_), reinterpret_cast<PCRE2_SPTR>(buf_.data()),
                             len, start_, options, state.data, state.context);
  if (rc >= 0) {
    matched_ = true;
    std::string().swap(buf_);
    return;
  }
  if (!partial) {  // the end: no match, and said so when a limit ended the search
    if (rc != PCRE2_ERROR_NOMATCH) {
      note_gave_up(re_->pattern_, buf_.size(), rc);
      gave_up_ = true;
    }
    return;
  }
  std::size_t from = len;  // where a match may still start
  if (rc == PCRE2_ERROR_PARTIAL) {
    from = static_cast<std::size_t>(pcre2_get_ovector_pointer(state.data)[0]);
  } else if (rc != PCRE2_ERROR_NOMATCH) {
    note_gave_up(re_->pattern_, buf_.size(), rc);
    gave_up_ = true;
    std::string().swap(buf_);
    return;
  }
  const std::size_t keep_from = from > re_->lookbehind_ ? from - re_->lookbehind_ : 0;
  if (keep_from > 0) {
    buf_.erase(0, keep_from);
    at_body_start_ = false;
    // Give back memory a long partial match no longer needs.
    if (buf_.capacity() > 4 * (buf_.size() + 64 * 1024)) buf_.shrink_to_fit();
  }
  start_ = from - keep_from;
}

}  // namespace webmon
