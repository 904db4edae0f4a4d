// A PCRE2 pattern compiled once at config load, JIT-compiled when the process may map
// writable+executable memory, searched unanchored in the bytes a probe read.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

namespace webmon {

class Regex {
 public:
  struct CompileError {
    std::string message;  // PCRE2's own message
    std::size_t offset;   // in the pattern
  };
  // A compiled Regex, or PCRE2's error. `jit` false: the interpreter only (the writer and the CLI
  // check a pattern but never search with it, so they need no JIT code).
  static std::variant<std::shared_ptr<const Regex>, CompileError> compile(std::string_view pattern, bool jit = true);

  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Unanchored search. Thread-safe: each thread uses its own match data.
  bool search(std::string_view subject) const;

  // A search over a body that arrives in pieces, with the same answer as search() of the whole
  // body, holding only the bytes a match may still need (PCRE2 partial matching,
  // PCRE2_PARTIAL_HARD): a match may start in what is kept, never before it. Used on one thread.
  class Stream {
   public:
    explicit Stream(const Regex& re) : re_(&re) {}
    // The next bytes of the body. Once it matched, later pieces are ignored.
    void feed(std::string_view piece);
    // The same without a copy: room for `n` more bytes after what it holds, to read into; then
    // commit() says how many arrived. The room is valid until the next call.
    char* prepare(std::size_t n);
    void commit(std::size_t n);
    // What it would hold with room for `n` more bytes.
    std::size_t needs(std::size_t n) const noexcept { return std::max(buf_.capacity(), buf_.size() + n); }
    // The body ended (or was cut at the cap): the answer.
    bool finish();
    // Bytes held now (the kept tail of the body, not yet decided).
    std::size_t held() const noexcept { return buf_.capacity(); }

   private:
    void search_held(bool partial);
    const Regex* re_;
    std::string buf_;           // the kept bytes, then the new piece
    std::size_t start_ = 0;     // where in buf_ the next search starts (before it: lookbehind)
    std::size_t settled_ = 0;   // bytes at the end of buf_ held back: an incomplete UTF-8 character
    std::size_t prepared_ = 0;  // bytes of buf_ that prepare() added and commit() has not taken
    bool at_body_start_ = true; // buf_[0] is the body's first byte (for ^)
    bool matched_ = false;
    bool gave_up_ = false;      // a match limit was hit: no match, as search() says
  };
  bool jit() const noexcept { return jit_; }
  const std::string& pattern() const noexcept { return pattern_; }

 private:
  Regex(void* code, bool jit, std::string pattern, std::size_t lookbehind)
      : code_(code), jit_(jit), lookbehind_(lookbehind), pattern_(std::move(pattern)) {}
  void* code_;  // pcre2_code_8*
  bool jit_;
  std::size_t lookbehind_;  // PCRE2_INFO_MAXLOOKBEHIND, in bytes (4 per character in UTF-8)
  std::string pattern_;
};

}  // namespace webmon
