// A PCRE2 pattern compiled once at config load, JIT-compiled when the process may map
// writable+executable memory, searched unanchored in the bytes a probe read.
#pragma once

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
  // A compiled Regex, or PCRE2's error.
  static std::variant<std::shared_ptr<const Regex>, CompileError> compile(std::string_view pattern);

  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Unanchored search. Thread-safe: each thread uses its own match data.
  bool search(std::string_view subject) const;
  bool jit() const noexcept { return jit_; }
  const std::string& pattern() const noexcept { return pattern_; }

 private:
  Regex(void* code, bool jit, std::string pattern) : code_(code), jit_(jit), pattern_(std::move(pattern)) {}
  void* code_;  // pcre2_code_8*
  bool jit_;
  std::string pattern_;
};

}  // namespace webmon
