#include "test_certs.hpp"

#include <atomic>
#include <stdexcept>

#include <boost/asio/buffer.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace webmon::checker::test {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using TimePtr = std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what);
}

KeyPtr new_key() {
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  check(key != nullptr, "EC key generation");
  return key;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_ctrl(bio, BIO_CTRL_INFO, 0, static_cast<void*>(&data));
  return std::string(data, static_cast<std::size_t>(n));
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()), BIO_free);
  check(bio && PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
  return bio_text(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()), BIO_free);
  check(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  return bio_text(bio.get());
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(added == 1, "X509_add_ext");
}

void set_time(X509* cert, std::chrono::sys_seconds t, bool not_after) {
  TimePtr asn1(ASN1_TIME_set(nullptr, static_cast<time_t>(t.time_since_epoch().count())), ASN1_TIME_free);
  check(asn1 != nullptr, "ASN1_TIME_set");
  check((not_after ? X509_set1_notAfter(cert, asn1.get()) : X509_set1_notBefore(cert, asn1.get())) == 1, "set time");
}

long next_serial() {
  static std::atomic<long> serial{1000};
  return ++serial;
}

// An unsigned certificate for `key` named `cn`, issued by `issuer` (itself when null).
CertPtr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, std::chrono::sys_seconds not_before,
                  std::chrono::sys_seconds not_after) {
  CertPtr cert(X509_new(), X509_free);
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), 2) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), next_serial()) == 1, "serial");
  set_time(cert.get(), not_before, false);
  set_time(cert.get(), not_after, true);
  check(X509_set_pubkey(cert.get(), key) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                                   -1, 0) == 1,
        "subject");
  check(X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name) == 1, "issuer");
  return cert;
}

void sign(X509* cert, EVP_PKEY* key) { check(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign"); }

}  // namespace

struct TestCa::Impl {
  KeyPtr key{nullptr, EVP_PKEY_free};
  CertPtr cert{nullptr, X509_free};
};

LeafSpec valid_leaf(std::vector<std::string> dns, std::vector<std::string> ips) {
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  return LeafSpec{std::move(dns), std::move(ips), now - std::chrono::hours(24), now + std::chrono::days(30)};
}

TestCa::TestCa(const std::string& common_name) : impl_(std::make_unique<Impl>()) {
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  impl_->key = new_key();
  impl_->cert = make_cert(common_name, impl_->key.get(), nullptr, now - std::chrono::days(2),
                          now + std::chrono::days(365));
  X509* c = impl_->cert.get();
  add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(c, c, NID_subject_key_identifier, "hash");
  add_ext(c, c, NID_authority_key_identifier, "keyid:always");
  sign(c, impl_->key.get());
  pem_.cert = test::cert_pem(c);
  pem_.key = key_pem(impl_->key.get());
}

TestCa::~TestCa() = default;

Pem TestCa::issue(const LeafSpec& spec) const {
  KeyPtr key = new_key();
  const std::string cn = spec.dns_names.empty() ? std::string("webmon test leaf") : spec.dns_names.front();
  CertPtr cert = make_cert(cn, key.get(), impl_->cert.get(), spec.not_before, spec.not_after);
  X509* c = cert.get();
  add_ext(c, impl_->cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(c, impl_->cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_ext(c, impl_->cert.get(), NID_ext_key_usage, "serverAuth");
  add_ext(c, impl_->cert.get(), NID_subject_key_identifier, "hash");
  add_ext(c, impl_->cert.get(), NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const auto& d : spec.dns_names) san += (san.empty() ? "" : ",") + ("DNS:" + d);
  for (const auto& ip : spec.ip_addresses) san += (san.empty() ? "" : ",") + ("IP:" + ip);
  if (!san.empty()) add_ext(c, impl_->cert.get(), NID_subject_alt_name, san);
  sign(c, impl_->key.get());
  return Pem{test::cert_pem(c), key_pem(key.get())};
}

std::shared_ptr<boost::asio::ssl::context> server_context(const Pem& leaf) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3);
  ctx->use_certificate_chain(boost::asio::buffer(leaf.cert));
  ctx->use_private_key(boost::asio::buffer(leaf.key), ssl::context::pem);
  return ctx;
}

}  // namespace webmon::checker::test
