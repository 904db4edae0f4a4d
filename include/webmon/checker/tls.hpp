// TLS client contexts for probes: one per distinct (tls_verify, ca_file), built when a config is
// loaded and then only read, so a probe never re-reads a CA file or the system certificate store.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <functional>
#include <utility>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "webmon/common/config.hpp"

struct x509_st;  // OpenSSL's X509

namespace webmon::checker {

// A CA file OpenSSL refuses, or a context OpenSSL cannot make; thrown at load, never by a probe.
struct TlsSetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class TlsContextCache {
 public:
  // One context for each distinct (tls_verify, ca_file) among the targets. Throws TlsSetupError.
  static TlsContextCache for_targets(const std::vector<TargetConfig>& targets);

  // Adds the context (tls_verify, ca_file) unless it is there. With tls_verify the chain is
  // checked against ca_file, or the system CAs when it is empty; without, ca_file is ignored.
  // Throws TlsSetupError with OpenSSL's reason.
  void add(bool tls_verify, const std::string& ca_file);
  void add(const TargetConfig& target) { add(target.tls_verify, target.ca_file); }

  // The context for a target, or null when add() was never called for its (tls_verify, ca_file).
  // SSL_CTX is safe to share between threads once it is no longer modified; ssl::stream merely
  // wants a non-const reference.
  boost::asio::ssl::context* find(bool tls_verify, const std::string& ca_file) const noexcept;
  boost::asio::ssl::context* find(const TargetConfig& target) const noexcept {
    return find(target.tls_verify, target.ca_file);
  }
  std::size_t size() const noexcept { return verified_.size() + (unverified_ ? 1 : 0); }

 private:
  std::map<std::string, std::unique_ptr<boost::asio::ssl::context>, std::less<>> verified_;  // by ca_file
  std::unique_ptr<boost::asio::ssl::context> unverified_;
};

// A certificate's notAfter as UTC seconds; nullopt when OpenSSL cannot read it.
std::optional<std::chrono::sys_seconds> certificate_not_after(const x509_st* cert) noexcept;

}  // namespace webmon::checker
