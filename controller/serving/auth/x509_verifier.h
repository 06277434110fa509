// ClientCertVerifier: checks a client's certificate chain against one CA bundle, the way
// Kubernetes checks --client-ca-file and --requestheader-client-ca-file: the chain (leaf
// first, DER, as the client sent it; the certificates after the leaf are untrusted
// intermediates) must lead to a certificate of the bundle, be valid now, and allow client
// authentication (extended key usage clientAuth, when the certificates name any EKU).
// As Go's verifier does, any certificate in the bundle is a trust anchor, a self-signed
// root or not (X509_V_FLAG_PARTIAL_CHAIN).
//
// Thread safety: Verify may be called from any thread at once (the store is only read).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <openssl/types.h>

namespace eventbuffer::controller {

// The names of a verified leaf certificate.
struct CertIdentity {
  std::string common_name;                 // the subject's CN (the last one, as Go's)
  std::vector<std::string> organizations;  // the subject's O values, in order
};

class ClientCertVerifier {
 public:
  // Longest chain a client may present (leaf and intermediates).
  static constexpr std::size_t kMaxChainLength = 10;

  // A verifier trusting the certificates of `pem`. Null, with *error set, when `pem`
  // holds no parsable certificate.
  static std::unique_ptr<ClientCertVerifier> FromPem(const std::string& pem, std::string* error);
  ~ClientCertVerifier();
  ClientCertVerifier(const ClientCertVerifier&) = delete;
  ClientCertVerifier& operator=(const ClientCertVerifier&) = delete;

  // True when `chain_der` verifies; then *identity holds the leaf's names. False with
  // *error saying why (no certificate, unparsable, OpenSSL's verify error) otherwise.
  bool Verify(const std::vector<std::string>& chain_der, CertIdentity* identity,
              std::string* error) const;

  // Implementation details follow.
 private:
  explicit ClientCertVerifier(X509_STORE* store) : store_(store) {}
  X509_STORE* store_;
};

}  // namespace eventbuffer::controller
