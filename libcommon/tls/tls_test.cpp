// Unit tests for tls: self-signed certificates, context errors, the reloadable
// server context, and TLS over event's bufferevents on loopback: implicit TLS
// echo, STARTTLS (with plaintext injection discarded), TLS 1.2, name checks,
// session descriptions and the RFC 9266 channel binding.
#include "tls/tls.hpp"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <optional>

#include "base/fs.hpp"
#include "event/event.hpp"
#include "event/event_testing.hpp"

using namespace yubin;
using namespace yubin::event::testing;

namespace {

// A scratch folder with a certificate for "localhost" in it.
struct CertDir {
  std::string dir;
  std::string cert, key;
  CertDir() {
    char tmpl[] = "/tmp/yubin-tls-test.XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    dir = tmpl;
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    auto st = tls::writeSelfSigned(cert, key, "localhost", 2);
    REQUIRE(st.ok());
  }
  ~CertDir() { (void)std::system(("rm -rf '" + dir + "'").c_str()); }
};

CPtr<X509, X509_free> parseCert(const std::string& pem) {
  CPtr<BIO, BIO_free> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return CPtr<X509, X509_free>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// One TLS conversation on loopback: a server side accepted by a Listener and
// a client side, both through event's bufferevents.
struct Pair {
  yubin::event::EventBase base;
  std::optional<Watchdog> dog;
  std::unique_ptr<yubin::event::Listener> listener;
  Conn server, client;
  uint16_t port = 0;
  std::function<void(UniqueFd)> onAccept;

  Pair() {
    auto b = yubin::event::newEventBase();
    REQUIRE(b.ok());
    base = std::move(*b);
    dog.emplace(base.get());
    auto l = yubin::event::Listener::create(
        base.get(), listenLoopback(&port),
        [this](UniqueFd fd, const yubin::event::Peer&) { onAccept(std::move(fd)); });
    REQUIRE(l.ok());
    listener = std::move(*l);
  }
  void run() {
    event_base_dispatch(base.get());
    REQUIRE_FALSE(dog->fired());
  }
  void stop() { event_base_loopbreak(base.get()); }
};

tls::SslCtxPtr clientCtx(const CertDir& certs, bool verify = true) {
  auto ctx = tls::newClientContext({verify, certs.cert});
  REQUIRE(ctx.ok());
  return std::move(*ctx);
}

}  // namespace

TEST_CASE("makeSelfSigned: a P-256 certificate naming the host") {
  auto host = GENERATE(as<std::string>{}, "mail.example.org", "localhost", "127.0.0.1");
  auto pair = tls::makeSelfSigned(host, 30);
  REQUIRE(pair.ok());
  CHECK(pair->certPem.rfind("-----BEGIN CERTIFICATE-----\n", 0) == 0);
  CHECK(pair->keyPem.rfind("-----BEGIN PRIVATE KEY-----\n", 0) == 0);
  auto cert = parseCert(pair->certPem);
  REQUIRE(cert);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn);
  CHECK(std::string(cn) == host);
  bool isIp = host == "127.0.0.1";
  int match = isIp ? X509_check_ip_asc(cert.get(), host.c_str(), 0)
                   : X509_check_host(cert.get(), host.c_str(), host.size(), 0, nullptr);
  CHECK(match == 1);
  CHECK(X509_check_host(cert.get(), "other.example", 0, 0, nullptr) == 0);
  CHECK(X509_cmp_current_time(X509_get0_notAfter(cert.get())) > 0);
  CHECK(X509_cmp_current_time(X509_get0_notBefore(cert.get())) < 0);
  CHECK(EVP_PKEY_get_id(X509_get0_pubkey(cert.get())) == EVP_PKEY_EC);
}

TEST_CASE("makeSelfSigned rejects bad input") {
  CHECK_FALSE(tls::makeSelfSigned("").ok());
  CHECK_FALSE(tls::makeSelfSigned("a,DNS:evil.example").ok());
  CHECK_FALSE(tls::makeSelfSigned("host\r\n").ok());
  CHECK_FALSE(tls::makeSelfSigned("localhost", 0).ok());
}

TEST_CASE("writeSelfSigned keeps the key private") {
  CertDir d;
  struct stat st;
  REQUIRE(stat(d.key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(stat(d.cert.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
}

TEST_CASE("newServerContext names the file at fault") {
  CertDir a, b;
  auto ok = tls::newServerContext(a.cert, a.key);
  REQUIRE(ok.ok());
  CHECK(SSL_CTX_get_min_proto_version(ok->get()) == TLS1_2_VERSION);
  CHECK((SSL_CTX_get_options(ok->get()) & SSL_OP_NO_COMPRESSION) != 0);
  CHECK((SSL_CTX_get_options(ok->get()) & SSL_OP_NO_RENEGOTIATION) != 0);

  auto missing = tls::newServerContext(a.dir + "/nope.pem", a.key);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message == "tls_cert " + a.dir + "/nope.pem: No such file or directory");

  auto unset = tls::newServerContext("", a.key);
  REQUIRE_FALSE(unset.ok());
  CHECK(unset.error().message == "tls_cert is not set");

  auto mismatch = tls::newServerContext(a.cert, b.key);
  REQUIRE_FALSE(mismatch.ok());
  CHECK(mismatch.error().message == "tls_key " + b.key + " does not match tls_cert " + a.cert);

  // A key file that is not PEM at all.
  REQUIRE(atomicWrite(a.dir + "/garbage.pem", "not a key\n").ok());
  auto garbage = tls::newServerContext(a.cert, a.dir + "/garbage.pem");
  REQUIRE_FALSE(garbage.ok());
  CHECK(garbage.error().message.rfind("tls_key " + a.dir + "/garbage.pem: ", 0) == 0);
}

TEST_CASE("ServerContext: a failed reload keeps the old context") {
  CertDir a;
  auto holder = tls::ServerContext::load(a.cert, a.key);
  REQUIRE(holder.ok());
  SSL_CTX* before = (*holder)->get();
  // Break the key: the reload fails and the old context stays.
  REQUIRE(atomicWrite(a.key, "broken\n").ok());
  CHECK_FALSE((*holder)->reload().ok());
  CHECK((*holder)->get() == before);
  // A session made before a successful reload keeps its own context.
  auto ssl = (*holder)->newSsl();
  REQUIRE(ssl.ok());
  REQUIRE(tls::writeSelfSigned(a.cert, a.key, "localhost").ok());
  REQUIRE((*holder)->reload().ok());
  CHECK((*holder)->get() != nullptr);
  CHECK(SSL_get_SSL_CTX(ssl->get()) != (*holder)->get());
}

TEST_CASE("newClientContext fails on a missing CA file") {
  auto ctx = tls::newClientContext({true, "/nonexistent/ca.pem"});
  REQUIRE_FALSE(ctx.ok());
  CHECK(ctx.error().message.rfind("cannot load /nonexistent/ca.pem: ", 0) == 0);
  CHECK(tls::newClientContext({}).ok());  // the system store
}

TEST_CASE("implicit TLS: loopback echo, session text and channel binding") {
  CertDir certs;
  auto server = tls::ServerContext::load(certs.cert, certs.key);
  REQUIRE(server.ok());
  auto cctx = clientCtx(certs);
  Pair p;
  bool serverConnected = false;
  p.onAccept = [&](UniqueFd fd) {
    auto ssl = (*server)->newSsl();
    REQUIRE(ssl.ok());
    auto bev = yubin::event::newTlsBufferevent(p.base.get(), std::move(fd), std::move(*ssl),
                                        yubin::event::TlsRole::Server);
    REQUIRE(bev.ok());
    p.server.attach(std::move(*bev));
    p.server.onRead = [](Conn& c) {
      c.write(c.received);
      c.received.clear();
    };
    p.server.onEvent = [&](Conn&, short what) {
      if (what & BEV_EVENT_CONNECTED) serverConnected = true;
    };
  };
  auto ssl = tls::prepareClient(cctx.get(), "localhost");
  REQUIRE(ssl.ok());
  auto cbev = yubin::event::newTlsBufferevent(p.base.get(), connectLoopback(p.port), std::move(*ssl),
                                       yubin::event::TlsRole::Client);
  REQUIRE(cbev.ok());
  p.client.attach(std::move(*cbev));
  const std::string message = "a1 LOGIN\r\n" + std::string(70000, 'y') + "\r\n";
  p.client.onRead = [&](Conn& c) {
    if (c.received.size() >= message.size()) p.stop();
  };
  p.client.onEvent = [&](Conn&, short what) {
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) p.stop();
  };
  p.client.write(message);  // queued until the handshake is done
  p.run();
  CHECK(p.client.received == message);
  CHECK((p.client.events & BEV_EVENT_CONNECTED) != 0);
  CHECK(serverConnected);

  SSL* cssl = yubin::event::sslOf(p.client.bev.get());
  SSL* sssl = yubin::event::sslOf(p.server.bev.get());
  REQUIRE(cssl);
  REQUIRE(sssl);
  CHECK(tls::verifyFailure(cssl).empty());
  std::string desc = tls::describeSession(sssl);
  CHECK(desc.rfind("TLSv1.3 TLS_", 0) == 0);
  CHECK(desc == tls::describeSession(cssl));
  CHECK((desc.ends_with(" 256/256") || desc.ends_with(" 128/128")));
  auto cb1 = tls::channelBindingExporter(cssl);
  auto cb2 = tls::channelBindingExporter(sssl);
  REQUIRE(cb1.ok());
  REQUIRE(cb2.ok());
  CHECK(cb1->size() == 32);
  CHECK(*cb1 == *cb2);
  CHECK(yubin::event::sslOf(nullptr) == nullptr);
}

TEST_CASE("STARTTLS: clear reply, then TLS filter; pipelined plaintext is discarded") {
  CertDir certs;
  auto server = tls::ServerContext::load(certs.cert, certs.key);
  REQUIRE(server.ok());
  auto cctx = clientCtx(certs);
  Pair p;
  size_t discarded = 999;
  const std::string hello = "STARTTLS\r\n";
  const std::string injected = "RSET\r\nMAIL FROM:<evil@example>\r\n";
  p.onAccept = [&](UniqueFd fd) {
    auto bev = yubin::event::newSocketBufferevent(p.base.get(), std::move(fd));
    REQUIRE(bev.ok());
    p.server.peekOnly = true;
    p.server.attach(std::move(*bev));
    p.server.onRead = [&](Conn& c) {
      evbuffer* in = bufferevent_get_input(c.bev.get());
      if (evbuffer_get_length(in) < hello.size() + injected.size()) return;
      evbuffer_drain(in, hello.size());
      c.write("220 2.0.0 go ahead\r\n");
      auto ssl = (*server)->newSsl();
      REQUIRE(ssl.ok());
      auto up =
          yubin::event::startTls(std::move(c.bev), std::move(*ssl), yubin::event::TlsRole::Server, &discarded);
      REQUIRE(up.ok());
      c.peekOnly = false;
      c.attach(std::move(*up));
      c.onRead = [](Conn& s) {
        s.write("echo:" + s.received);
        s.received.clear();
      };
    };
  };
  auto cbev = yubin::event::newSocketBufferevent(p.base.get(), connectLoopback(p.port));
  REQUIRE(cbev.ok());
  p.client.attach(std::move(*cbev));
  bool upgraded = false;
  p.client.onRead = [&](Conn& c) {
    if (!upgraded) {
      if (c.received != "220 2.0.0 go ahead\r\n") return;
      upgraded = true;
      c.received.clear();
      auto ssl = tls::prepareClient(cctx.get(), "localhost");
      REQUIRE(ssl.ok());
      auto up = yubin::event::startTls(std::move(c.bev), std::move(*ssl), yubin::event::TlsRole::Client);
      REQUIRE(up.ok());
      c.attach(std::move(*up));
      c.write("EHLO client.example\r\n");
      return;
    }
    if (c.received.find("\r\n") != std::string::npos) p.stop();
  };
  p.client.onEvent = [&](Conn&, short what) {
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) p.stop();
  };
  p.client.write(hello + injected);  // one segment: the server sees both at once
  p.run();
  CHECK(upgraded);
  CHECK(discarded == injected.size());
  CHECK(p.client.received == "echo:EHLO client.example\r\n");
  REQUIRE(yubin::event::sslOf(p.server.bev.get()));
  CHECK(tls::describeSession(yubin::event::sslOf(p.server.bev.get())).rfind("TLSv1.3 ", 0) == 0);
}

TEST_CASE("TLS 1.2: described, but no tls-exporter channel binding") {
  CertDir certs;
  auto server = tls::ServerContext::load(certs.cert, certs.key);
  REQUIRE(server.ok());
  auto cctx = clientCtx(certs);
  SSL_CTX_set_max_proto_version(cctx.get(), TLS1_2_VERSION);
  Pair p;
  p.onAccept = [&](UniqueFd fd) {
    auto ssl = (*server)->newSsl();
    REQUIRE(ssl.ok());
    auto bev = yubin::event::newTlsBufferevent(p.base.get(), std::move(fd), std::move(*ssl),
                                        yubin::event::TlsRole::Server);
    REQUIRE(bev.ok());
    p.server.attach(std::move(*bev));
  };
  auto ssl = tls::prepareClient(cctx.get(), "localhost");
  REQUIRE(ssl.ok());
  auto cbev = yubin::event::newTlsBufferevent(p.base.get(), connectLoopback(p.port), std::move(*ssl),
                                       yubin::event::TlsRole::Client);
  REQUIRE(cbev.ok());
  p.client.attach(std::move(*cbev));
  p.client.onEvent = [&](Conn&, short) { p.stop(); };
  p.run();
  REQUIRE((p.client.events & BEV_EVENT_CONNECTED) != 0);
  SSL* cssl = yubin::event::sslOf(p.client.bev.get());
  // P-256 key: ECDHE-ECDSA with an AEAD, as the policy demands.
  std::string desc = tls::describeSession(cssl);
  CHECK(desc.rfind("TLSv1.2 ECDHE-ECDSA-", 0) == 0);
  CHECK((desc.find("-GCM-") != std::string::npos || desc.find("CHACHA20") != std::string::npos));
  auto cb = tls::channelBindingExporter(cssl);
  REQUIRE_FALSE(cb.ok());
  CHECK(cb.error().message == "tls-exporter: needs TLS 1.3");
}

TEST_CASE("client name check: verify fails the handshake, no-verify reports it") {
  CertDir certs;
  auto server = tls::ServerContext::load(certs.cert, certs.key);
  REQUIRE(server.ok());
  bool verify = GENERATE(true, false);
  auto cctx = clientCtx(certs, verify);
  Pair p;
  p.onAccept = [&](UniqueFd fd) {
    auto ssl = (*server)->newSsl();
    REQUIRE(ssl.ok());
    auto bev = yubin::event::newTlsBufferevent(p.base.get(), std::move(fd), std::move(*ssl),
                                        yubin::event::TlsRole::Server);
    REQUIRE(bev.ok());
    p.server.attach(std::move(*bev));
  };
  auto ssl = tls::prepareClient(cctx.get(), "mx.other.example.");
  REQUIRE(ssl.ok());
  auto cbev = yubin::event::newTlsBufferevent(p.base.get(), connectLoopback(p.port), std::move(*ssl),
                                       yubin::event::TlsRole::Client);
  REQUIRE(cbev.ok());
  p.client.attach(std::move(*cbev));
  std::string error;
  p.client.onEvent = [&](Conn& c, short what) {
    if (what & BEV_EVENT_ERROR) error = yubin::event::bufferevError(c.bev.get());
    p.stop();
  };
  p.run();
  if (verify) {
    CHECK((p.client.events & BEV_EVENT_ERROR) != 0);
    CHECK(error.find("certificate verify failed") != std::string::npos);
  } else {
    REQUIRE((p.client.events & BEV_EVENT_CONNECTED) != 0);
    CHECK(tls::verifyFailure(yubin::event::sslOf(p.client.bev.get())) == "hostname mismatch");
  }
}

TEST_CASE("prepareClient: IP literals get no SNI; empty names are refused") {
  auto ctx = tls::newClientContext({});
  REQUIRE(ctx.ok());
  auto ip = tls::prepareClient(ctx->get(), "192.0.2.1");
  REQUIRE(ip.ok());
  CHECK(SSL_get_servername(ip->get(), TLSEXT_NAMETYPE_host_name) == nullptr);
  auto name = tls::prepareClient(ctx->get(), "mx.example.org.");
  REQUIRE(name.ok());
  CHECK(std::string(SSL_get_servername(name->get(), TLSEXT_NAMETYPE_host_name)) ==
        "mx.example.org");
  CHECK_FALSE(tls::prepareClient(ctx->get(), "").ok());
  CHECK_FALSE(tls::prepareClient(ctx->get(), ".").ok());
}

TEST_CASE("describeSession before a handshake is empty") {
  auto ctx = tls::newClientContext({});
  REQUIRE(ctx.ok());
  auto ssl = tls::prepareClient(ctx->get(), "localhost");
  REQUIRE(ssl.ok());
  CHECK(tls::describeSession(ssl->get()).empty());
  CHECK(tls::describeSession(nullptr).empty());
  CHECK_FALSE(tls::channelBindingExporter(ssl->get()).ok());
  CHECK(tls::verifyFailure(ssl->get()) == "no peer certificate");
}
