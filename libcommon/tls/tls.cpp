// TLS contexts, session descriptions, channel binding and self-signed
// certificates; see tls.hpp.
#include "tls/tls.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "base/fs.hpp"
#include "base/log.hpp"

namespace yubin::tls {
namespace {

// TLS 1.2 suites: ephemeral key exchange and AEAD only. TLS 1.3 suites are
// all acceptable and keep OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!PSK:!SRP:!DSS";

using BioPtr = CPtr<BIO, BIO_free>;
using X509Ptr = CPtr<X509, X509_free>;
using PkeyPtr = CPtr<EVP_PKEY, EVP_PKEY_free>;
using BnPtr = CPtr<BIGNUM, BN_free>;
using ExtPtr = CPtr<X509_EXTENSION, X509_EXTENSION_free>;

Status applyPolicy(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return Error{"cannot set TLS 1.2 minimum: " + takeErrors()};
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1)
    return Error{"cannot set the cipher list: " + takeErrors()};
  // Many idle IMAP connections: give the read/write buffers back when idle.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return {};
}

// OpenSSL's messages for unreadable files are cryptic; open the file first
// to report "Permission denied" in plain words.
Status checkReadable(const std::string& what, const std::string& path) {
  if (path.empty()) return Error{what + " is not set"};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError(what + " " + path);
  ::close(fd);
  return {};
}

bool isIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string bioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Status addExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return Error{"cannot add certificate extension " + value + ": " + takeErrors()};
  return {};
}

}  // namespace

std::string takeErrors(const std::string& fallback) {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? fallback : out;
}

Result<SslCtxPtr> newServerContext(const std::string& certFile, const std::string& keyFile) {
  ERR_clear_error();
  if (auto st = checkReadable("tls_cert", certFile); !st) return st.error();
  if (auto st = checkReadable("tls_key", keyFile); !st) return st.error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Error{"SSL_CTX_new: " + takeErrors()};
  if (auto st = applyPolicy(ctx.get()); !st) return st.error();
  SSL_CTX_set_dh_auto(ctx.get(), 1);
  static const unsigned char kSidContext[] = "yubin";
  SSL_CTX_set_session_id_context(ctx.get(), kSidContext, sizeof kSidContext - 1);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), certFile.c_str()) != 1)
    return Error{"tls_cert " + certFile + ": " + takeErrors()};
  // Read the key ourselves so a key for another certificate gets its own
  // message instead of OpenSSL's "key values mismatch".
  BioPtr keyBio(BIO_new_file(keyFile.c_str(), "r"));
  PkeyPtr key(keyBio ? PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return Error{"tls_key " + keyFile + ": no PEM private key: " + takeErrors()};
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx.get()), key.get()) != 1) {
    ERR_clear_error();
    return Error{"tls_key " + keyFile + " does not match tls_cert " + certFile};
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1)
    return Error{"tls_key " + keyFile + ": " + takeErrors()};
  return ctx;
}

Result<SslCtxPtr> newClientContext(const ClientSettings& settings) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return Error{"SSL_CTX_new: " + takeErrors()};
  if (auto st = applyPolicy(ctx.get()); !st) return st.error();
  int ok = settings.caFile.empty()
               ? SSL_CTX_set_default_verify_paths(ctx.get())
               : SSL_CTX_load_verify_locations(ctx.get(), settings.caFile.c_str(), nullptr);
  if (ok != 1) {
    std::string what = settings.caFile.empty() ? "the system CA store" : settings.caFile;
    return Error{"cannot load " + what + ": " + takeErrors()};
  }
  // Without verification the chain is still checked, so verifyFailure() can
  // say what is wrong; the handshake just does not fail on it.
  SSL_CTX_set_verify(ctx.get(), settings.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return ctx;
}

Result<SslPtr> prepareClient(SSL_CTX* ctx, const std::string& hostIn) {
  ERR_clear_error();
  std::string host = hostIn;
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty()) return Error{"TLS client: empty host name"};
  SslPtr ssl(SSL_new(ctx));
  if (!ssl) return Error{"SSL_new: " + takeErrors()};
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (isIpLiteral(host)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1)
      return Error{"TLS client: bad IP " + host + ": " + takeErrors()};
  } else {
    // SNI is for names only (RFC 6066 section 3).
    if (SSL_set_tlsext_host_name(ssl.get(), host.c_str()) != 1)
      return Error{"TLS client: bad SNI name " + host + ": " + takeErrors()};
    SSL_set_hostflags(ssl.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl.get(), host.c_str()) != 1)
      return Error{"TLS client: bad host name " + host + ": " + takeErrors()};
  }
  return ssl;
}

std::string verifyFailure(const SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (!peer) return "no peer certificate";
  long rc = SSL_get_verify_result(ssl);
  if (rc == X509_V_OK) return "";
  return X509_verify_cert_error_string(rc);
}

Result<std::unique_ptr<ServerContext>> ServerContext::load(const std::string& certFile,
                                                           const std::string& keyFile) {
  auto ctx = newServerContext(certFile, keyFile);
  if (!ctx) return ctx.error();
  return std::unique_ptr<ServerContext>(new ServerContext(std::move(*ctx), certFile, keyFile));
}

Status ServerContext::reload() { return reload(certFile_, keyFile_); }

Status ServerContext::reload(const std::string& certFile, const std::string& keyFile) {
  auto ctx = newServerContext(certFile, keyFile);
  if (!ctx) {
    YLOG_ERROR("tls reload failed, keeping the old certificate error=\"%s\"",
               ctx.error().message.c_str());
    return ctx.error();
  }
  ctx_ = std::move(*ctx);
  certFile_ = certFile;
  keyFile_ = keyFile;
  YLOG_INFO("tls certificate loaded cert=%s", certFile_.c_str());
  return {};
}

Result<SslPtr> ServerContext::newSsl() const {
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return Error{"SSL_new: " + takeErrors()};
  return ssl;
}

std::string describeSession(const SSL* ssl) {
  const SSL_CIPHER* c = ssl ? SSL_get_current_cipher(ssl) : nullptr;
  if (!c) return "";
  int algBits = 0;
  int bits = SSL_CIPHER_get_bits(c, &algBits);
  return std::string(SSL_get_version(ssl)) + " " + SSL_CIPHER_get_name(c) + " " +
         std::to_string(bits) + "/" + std::to_string(algBits);
}

Result<std::string> channelBindingExporter(SSL* ssl) {
  if (!ssl || !SSL_is_init_finished(ssl)) return Error{"tls-exporter: handshake not finished"};
  if (SSL_version(ssl) < TLS1_3_VERSION) return Error{"tls-exporter: needs TLS 1.3"};
  static const char kLabel[] = "EXPORTER-Channel-Binding";
  unsigned char out[32];
  // TLS 1.3 (RFC 8446 section 7.5) makes no difference between an absent
  // and an empty context; pass an empty one as RFC 9266 says.
  if (SSL_export_keying_material(ssl, out, sizeof out, kLabel, sizeof kLabel - 1,
                                 reinterpret_cast<const unsigned char*>(""), 0, 1) != 1)
    return Error{"tls-exporter: " + takeErrors()};
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

Result<SelfSigned> makeSelfSigned(const std::string& hostname, int days) {
  ERR_clear_error();
  if (hostname.empty() || hostname.find_first_of(",\r\n") != std::string::npos)
    return Error{"self-signed certificate: bad host name '" + hostname + "'"};
  if (days <= 0) return Error{"self-signed certificate: days must be positive"};
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Error{"EC key generation: " + takeErrors()};
  X509Ptr cert(X509_new());
  if (!cert) return Error{"X509_new: " + takeErrors()};
  X509_set_version(cert.get(), X509_VERSION_3);
  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
    return Error{"certificate serial: " + takeErrors()};
  // A minute of slack for clocks that disagree a little.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(hostname.c_str()), -1, -1,
                                 0) != 1)
    return Error{"certificate subject: " + takeErrors()};
  X509_set_issuer_name(cert.get(), name);
  std::string san = (isIpLiteral(hostname) ? "IP:" : "DNS:") + hostname;
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, san},
                            std::pair{NID_basic_constraints, std::string("critical,CA:FALSE")},
                            std::pair{NID_ext_key_usage, std::string("serverAuth")}}) {
    if (auto st = addExtension(cert.get(), nid, value); !st) return st.error();
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
    return Error{"certificate signing: " + takeErrors()};
  BioPtr certBio(BIO_new(BIO_s_mem()));
  BioPtr keyBio(BIO_new(BIO_s_mem()));
  if (!certBio || !keyBio || PEM_write_bio_X509(certBio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(keyBio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return Error{"PEM encoding: " + takeErrors()};
  return SelfSigned{bioText(certBio.get()), bioText(keyBio.get())};
}

Status writeSelfSigned(const std::string& certFile, const std::string& keyFile,
                       const std::string& hostname, int days) {
  auto pair = makeSelfSigned(hostname, days);
  if (!pair) return pair.error();
  if (auto st = atomicWrite(keyFile, pair->keyPem, 0600); !st) return st;
  return atomicWrite(certFile, pair->certPem, 0644);
}

}  // namespace yubin::tls
