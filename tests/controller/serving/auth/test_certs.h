// Certificates for the authentication tests, made with the OpenSSL API at test time:
// CAs, intermediates and leaves with chosen names, validity and key usage.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace eventbuffer::controller::testing {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* c) const { X509_free(c); }
};

struct CertOptions {
  std::string common_name;
  std::vector<std::string> organizations;
  bool is_ca = false;
  long not_before_seconds = -3600;     // relative to now
  long not_after_seconds = 24 * 3600;  // relative to now
  // "clientAuth", "serverAuth", or "" for no extended key usage extension.
  std::string extended_key_usage = "clientAuth";

  // Builders: CertOptions::Named("carol").Orgs({"team"}).Valid(-7200, -60).
  static CertOptions Named(std::string cn) {
    CertOptions o;
    o.common_name = std::move(cn);
    return o;
  }
  CertOptions Orgs(std::vector<std::string> orgs) const {
    CertOptions o = *this;
    o.organizations = std::move(orgs);
    return o;
  }
  CertOptions Ca() const {
    CertOptions o = *this;
    o.is_ca = true;
    o.extended_key_usage = "";
    return o;
  }
  CertOptions Valid(long not_before, long not_after) const {
    CertOptions o = *this;
    o.not_before_seconds = not_before;
    o.not_after_seconds = not_after;
    return o;
  }
  CertOptions Usage(std::string eku) const {
    CertOptions o = *this;
    o.extended_key_usage = std::move(eku);
    return o;
  }
};

// A key and its certificate, which can sign further certificates.
class TestCert {
 public:
  // A self-signed CA.
  static TestCert SelfSignedCa(const std::string& common_name) {
    CertOptions options;
    options.common_name = common_name;
    options.is_ca = true;
    options.extended_key_usage = "";
    return Make(options, nullptr);
  }

  // A certificate signed by this one.
  TestCert Issue(const CertOptions& options) const { return Make(options, this); }

  std::string Pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert_.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
  }

  std::string Der() const {
    unsigned char* data = nullptr;
    const int n = i2d_X509(cert_.get(), &data);
    std::string out(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    OPENSSL_free(data);
    return out;
  }

 private:
  static TestCert Make(const CertOptions& options, const TestCert* issuer) {
    static long serial = 1;
    TestCert out;
    out.key_.reset(EVP_EC_gen("P-256"));
    if (!out.key_) throw std::runtime_error("EVP_EC_gen failed");
    out.cert_.reset(X509_new());
    X509* cert = out.cert_.get();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), options.not_before_seconds);
    X509_gmtime_adj(X509_getm_notAfter(cert), options.not_after_seconds);
    X509_set_pubkey(cert, out.key_.get());
    X509_NAME* name = X509_get_subject_name(cert);
    for (const std::string& o : options.organizations) {
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
    }
    if (!options.common_name.empty()) {
      X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(options.common_name.c_str()), -1, -1, 0);
    }
    X509* issuer_cert = issuer != nullptr ? issuer->cert_.get() : cert;
    EVP_PKEY* issuer_key = issuer != nullptr ? issuer->key_.get() : out.key_.get();
    X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));

    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer_cert, cert, nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      if (ext == nullptr) throw std::runtime_error("bad extension " + value);
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    };
    add(NID_subject_key_identifier, "hash");
    if (options.is_ca) {
      add(NID_basic_constraints, "critical,CA:TRUE");
      add(NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
    } else {
      add(NID_basic_constraints, "critical,CA:FALSE");
      add(NID_key_usage, "critical,digitalSignature,keyEncipherment");
    }
    if (!options.extended_key_usage.empty()) {
      add(NID_ext_key_usage, options.extended_key_usage);
    }
    if (X509_sign(cert, issuer_key, EVP_sha256()) == 0) throw std::runtime_error("sign failed");
    return out;
  }

  std::unique_ptr<EVP_PKEY, PkeyFree> key_;
  std::unique_ptr<X509, X509Free> cert_;
};

}  // namespace eventbuffer::controller::testing
