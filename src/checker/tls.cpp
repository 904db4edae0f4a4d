#include "webmon/checker/tls.hpp"

#include <ctime>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace webmon::checker {
namespace {

namespace ssl = boost::asio::ssl;

std::unique_ptr<ssl::context> make_context(bool tls_verify, const std::string& ca_file) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3,
                   ec);
  if (ec) throw TlsSetupError("TLS context options: " + ec.message());
  // Probes keep at most one connection open for a short while; giving buffers back between
  // reads keeps tens of thousands of idle-waiting TLS connections cheap.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (!tls_verify) {
    ctx->set_verify_mode(ssl::verify_none, ec);
    if (ec) throw TlsSetupError("TLS verify mode: " + ec.message());
    return ctx;
  }
  ctx->set_verify_mode(ssl::verify_peer, ec);
  if (ec) throw TlsSetupError("TLS verify mode: " + ec.message());
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) throw TlsSetupError("system CA certificates: " + ec.message());
  } else {
    ctx->load_verify_file(ca_file, ec);
    if (ec) throw TlsSetupError("ca_file " + ca_file + ": " + ec.message());
  }
  return ctx;
}

}  // namespace

TlsContextCache TlsContextCache::for_targets(const std::vector<TargetConfig>& targets) {
  TlsContextCache cache;
  for (const auto& t : targets) cache.add(t);
  return cache;
}

void TlsContextCache::add(bool tls_verify, const std::string& ca_file) {
  if (!tls_verify) {
    if (!unverified_) unverified_ = make_context(false, {});
    return;
  }
  if (verified_.contains(ca_file)) return;
  verified_.emplace(ca_file, make_context(true, ca_file));
}

ssl::context* TlsContextCache::find(bool tls_verify, const std::string& ca_file) const noexcept {
  if (!tls_verify) return unverified_.get();
  const auto it = verified_.find(ca_file);
  return it == verified_.end() ? nullptr : it->second.get();
}

std::optional<std::chrono::sys_seconds> certificate_not_after(const x509_st* cert) noexcept {
  if (cert == nullptr) return std::nullopt;
  const ASN1_TIME* t = X509_get0_notAfter(cert);
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  using namespace std::chrono;
  const year_month_day ymd{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                           day{static_cast<unsigned>(tm.tm_mday)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days{ymd} + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec};
}

}  // namespace webmon::checker
