#include "controller/serving/auth/x509_verifier.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "controller/kube/api_client.h"

namespace eventbuffer::controller {

namespace {

struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

struct StackDeleter {
  void operator()(STACK_OF(X509) * stack) const { sk_X509_pop_free(stack, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), StackDeleter>;

struct CtxDeleter {
  void operator()(X509_STORE_CTX* ctx) const { X509_STORE_CTX_free(ctx); }
};

X509Ptr ParseDer(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (cert == nullptr) return nullptr;
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    X509_free(cert);  // trailing bytes: not one certificate
    return nullptr;
  }
  return X509Ptr(cert);
}

// The UTF-8 text of the `index`th entry of `name`; false when it is not valid text (or
// holds a NUL byte, which could hide a suffix from a reader of logs).
bool EntryText(X509_NAME* name, int index, std::string* out) {
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return false;
  out->assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out->find('\0') == std::string::npos;
}

}  // namespace

std::unique_ptr<ClientCertVerifier> ClientCertVerifier::FromPem(const std::string& pem,
                                                                std::string* error) {
  X509_STORE* store = X509StoreFromPem(pem);
  if (store == nullptr) {
    *error = "no parsable PEM certificate";
    return nullptr;
  }
  return std::unique_ptr<ClientCertVerifier>(new ClientCertVerifier(store));
}

ClientCertVerifier::~ClientCertVerifier() { X509_STORE_free(store_); }

bool ClientCertVerifier::Verify(const std::vector<std::string>& chain_der, CertIdentity* identity,
                                std::string* error) const {
  if (chain_der.empty()) {
    *error = "no client certificate";
    return false;
  }
  if (chain_der.size() > kMaxChainLength) {
    *error = "client certificate chain too long";
    return false;
  }
  X509Ptr leaf = ParseDer(chain_der[0]);
  if (!leaf) {
    ERR_clear_error();
    *error = "client certificate does not parse";
    return false;
  }
  X509StackPtr untrusted(sk_X509_new_null());
  if (!untrusted) {
    *error = "out of memory";
    return false;
  }
  for (std::size_t i = 1; i < chain_der.size(); ++i) {
    X509Ptr cert = ParseDer(chain_der[i]);
    if (!cert) {
      ERR_clear_error();
      *error = "intermediate certificate does not parse";
      return false;
    }
    if (sk_X509_push(untrusted.get(), cert.get()) == 0) {
      *error = "out of memory";
      return false;
    }
    cert.release();  // owned by the stack now
  }

  std::unique_ptr<X509_STORE_CTX, CtxDeleter> ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store_, leaf.get(), untrusted.get()) != 1) {
    ERR_clear_error();
    *error = "cannot set up certificate verification";
    return false;
  }
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx.get()), X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx.get()) != 1) {
    *error = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return false;
  }

  CertIdentity found;
  X509_NAME* subject = X509_get_subject_name(leaf.get());
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(subject, i)));
    if (nid != NID_commonName && nid != NID_organizationName) continue;
    std::string text;
    if (!EntryText(subject, i, &text)) {
      *error = "certificate subject is not valid text";
      return false;
    }
    if (nid == NID_commonName) {
      found.common_name = std::move(text);
    } else {
      found.organizations.push_back(std::move(text));
    }
  }
  *identity = std::move(found);
  return true;
}

}  // namespace eventbuffer::controller
