// TLS contexts with OpenSSL 3: the server context every listener shares
// (from [global] tls_cert / tls_key, reloadable on SIGHUP), client contexts
// for outgoing SMTP, session descriptions for Received: headers, the
// tls-exporter channel binding (RFC 9266) for SCRAM-*-PLUS, and a self-signed
// certificate generator for development and tests.
// Policy: TLS 1.2 minimum (RFC 8996, RFC 9325), forward-secret AEAD ciphers
// only for TLS 1.2, no compression, no renegotiation.
// Trust: reads the private key (root-only in production, so the first load
// happens before the privilege drop); handshakes with untrusted peers.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::tls {

using SslCtxPtr = CPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = CPtr<SSL, SSL_free>;

// Drains OpenSSL's error queue into one line ("error:...; error:...").
// Returns `fallback` when the queue was empty.
std::string takeErrors(const std::string& fallback = "unknown OpenSSL error");

// A server context from a PEM certificate chain and its private key. Checks
// that the key matches the certificate. Errors name the file at fault.
Result<SslCtxPtr> newServerContext(const std::string& certFile, const std::string& keyFile);

struct ClientSettings {
  bool verify = true;  // check the chain and (with prepareClient) the name
  std::string caFile;  // PEM bundle; empty: the system store
};
Result<SslCtxPtr> newClientContext(const ClientSettings& settings);

// Makes a client SSL for one connection: sets SNI to `host` (when it is a
// name, not an IP literal) and, when the context verifies, requires the
// certificate to match `host` (RFC 6125 rules, no partial wildcards).
Result<SslPtr> prepareClient(SSL_CTX* ctx, const std::string& host);

// After the handshake of a client connection: "" when the peer's certificate
// verified (chain and name), else why not ("certificate has expired").
std::string verifyFailure(const SSL* ssl);

// The server context, replaceable on SIGHUP. Sessions already running keep
// the context they were made with (OpenSSL reference-counts it); new sessions
// get the new one. A failed reload keeps the old context and logs why.
class ServerContext {
 public:
  static Result<std::unique_ptr<ServerContext>> load(const std::string& certFile,
                                                     const std::string& keyFile);
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // Re-reads the files given to load() (or new paths). On failure logs
  // "tls reload failed, keeping the old certificate" and returns the error.
  Status reload();
  Status reload(const std::string& certFile, const std::string& keyFile);

  SSL_CTX* get() const { return ctx_.get(); }
  // A fresh SSL for one accepted connection.
  Result<SslPtr> newSsl() const;

 private:
  ServerContext(SslCtxPtr ctx, std::string cert, std::string key)
      : ctx_(std::move(ctx)), certFile_(std::move(cert)), keyFile_(std::move(key)) {}
  SslCtxPtr ctx_;
  std::string certFile_;
  std::string keyFile_;
};

// "TLSv1.3 TLS_AES_256_GCM_SHA384 256/256" (protocol, cipher, used/cipher
// bits), for Received: headers and logs. "" before the handshake.
std::string describeSession(const SSL* ssl);

// RFC 9266 tls-exporter channel binding: 32 bytes exported with the label
// "EXPORTER-Channel-Binding" and an empty context. Only offered on TLS 1.3:
// on TLS 1.2 the value is only safe with extended master secret, and RFC
// 5705's "empty" vs "absent" context is read differently by implementations,
// so SCRAM-*-PLUS must not be advertised there.
Result<std::string> channelBindingExporter(SSL* ssl);

// A self-signed certificate (EC P-256, SHA-256, CN and subjectAltName =
// hostname, valid from now for `days`), PEM-encoded.
struct SelfSigned {
  std::string certPem;
  std::string keyPem;
};
Result<SelfSigned> makeSelfSigned(const std::string& hostname, int days = 365);
// Writes both with atomicWrite: the certificate 0644, the key 0600.
Status writeSelfSigned(const std::string& certFile, const std::string& keyFile,
                       const std::string& hostname, int days = 365);

}  // namespace yubin::tls
