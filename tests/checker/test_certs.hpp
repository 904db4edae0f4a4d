// Certificates made at test time with OpenSSL's API: a CA and the leaves it signs (valid, expired,
// for other names), so that no key or certificate is ever committed.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

namespace webmon::checker::test {

struct Pem {
  std::string cert;
  std::string key;
};

struct LeafSpec {
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries
  std::chrono::sys_seconds not_before;
  std::chrono::sys_seconds not_after;
};

// A leaf valid from a day ago for 30 days (notAfter whole seconds), for `dns` and `ips`.
LeafSpec valid_leaf(std::vector<std::string> dns, std::vector<std::string> ips);

class TestCa {
 public:
  explicit TestCa(const std::string& common_name);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& cert_pem() const { return pem_.cert; }
  Pem issue(const LeafSpec& spec) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Pem pem_;
};

// A server context presenting `leaf` (TLS 1.2 and 1.3).
std::shared_ptr<boost::asio::ssl::context> server_context(const Pem& leaf);

}  // namespace webmon::checker::test
