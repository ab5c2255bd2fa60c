// Tests for the SMTP client state machine (smtp_client.hpp), fed the
// server's bytes whole and one byte at a time: the command groups it writes
// (with and without PIPELINING), extension negotiation and refusals (SIZE,
// 8BITMIME, SMTPUTF8), DSN parameters, HELO fallback, STARTTLS with bytes
// injected after the 220, AUTH PLAIN and LOGIN, hostile replies, lost
// connections, RSET after a broken transaction; and the relay/TLS-policy
// parsers of remote.hpp.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "auth/test_util.hpp"
#include "mtad/remote.hpp"
#include "mtad/smtp_client.hpp"

using namespace yubin;
using namespace yubin::mtad;
using S = SmtpClient::State;

namespace {

struct Driver {
  explicit Driver(SmtpClientSettings s, bool byteWise) : client(std::move(s)), bytes(byteWise) {}
  // Feeds `in`, returns what the client wrote in answer.
  std::string feed(std::string_view in) {
    if (bytes) {
      for (char c : in) client.feed(std::string_view(&c, 1));
    } else {
      client.feed(in);
    }
    return client.takeOutput();
  }
  SmtpClient client;
  bool bytes;
};

SmtpClientSettings plainSettings() {
  SmtpClientSettings s;
  s.helo = "mx.test";
  s.startTls = false;
  return s;
}

SmtpMessage message(size_t rcpts = 2) {
  SmtpMessage m;
  m.sender = "alice@example.org";
  for (size_t i = 0; i < rcpts; ++i)
    m.recipients.push_back({"r" + std::to_string(i) + "@example.net", 0, "", ""});
  m.size = 100;
  return m;
}

const char* kEhloFull =
    "250-mx.example.net hello\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 1000\r\n"
    "250-8BITMIME\r\n"
    "250-SMTPUTF8\r\n"
    "250-DSN\r\n"
    "250 ENHANCEDSTATUSCODES\r\n";

// Greets the client and answers EHLO with `ehlo`; returns what the client
// wrote after the EHLO reply.
std::string greet(Driver& d, const std::string& ehlo = kEhloFull) {
  REQUIRE(d.feed("220 mx.example.net ESMTP\r\n") == "EHLO mx.test\r\n");
  return d.feed(ehlo);
}

}  // namespace

TEST_CASE("pipelined transaction: one group, replies paired in order", "[smtp_client]") {
  bool byteWise = GENERATE(false, true);
  Driver d(plainSettings(), byteWise);
  greet(d);
  REQUIRE(d.client.state() == S::Ready);
  CHECK(d.client.extensions().pipelining);
  CHECK(d.client.extensions().dsn);
  CHECK(d.client.extensions().size == 1000u);

  SmtpMessage m = message();
  m.body = queue::Body::EightBitMime;
  m.ret = queue::Ret::Headers;
  m.envid = "Q+1=x";
  m.recipients[0].notify = queue::kNotifySuccess | queue::kNotifyFailure;
  m.recipients[0].orcptType = "rfc822";
  m.recipients[0].orcpt = "orig@example.org";
  m.recipients[1].notify = queue::kNotifyNever;
  d.client.send(m);
  CHECK(d.client.takeOutput() ==
        "MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=Q+2B1+3Dx\r\n"
        "RCPT TO:<r0@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@example.org\r\n"
        "RCPT TO:<r1@example.net> NOTIFY=NEVER\r\n"
        "DATA\r\n");
  CHECK(d.client.state() == S::Envelope);
  CHECK(d.client.timeout() == std::chrono::minutes(5));
  CHECK(d.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n") == "");
  CHECK(d.client.timeout() == std::chrono::minutes(2));  // waiting for the 354
  CHECK(d.feed("354 go ahead\r\n") == "");
  REQUIRE(d.client.state() == S::Content);
  CHECK(d.client.timeout() == std::chrono::minutes(3));
  d.client.contentSent();
  CHECK(d.client.state() == S::Final);
  CHECK(d.client.timeout() == std::chrono::minutes(10));
  d.feed("250 2.0.0 queued as X\r\n");
  auto r = d.client.takeResult();
  REQUIRE(r);
  REQUIRE(r->replies.size() == 2);
  CHECK(r->replies[0].summary() == "250 2.0.0 queued as X");
  CHECK(r->replies[1].summary() == "550 5.1.1 no such user");
  CHECK(r->dsnPassed);
  CHECK_FALSE(r->retryable);
  CHECK(d.client.state() == S::Ready);
  CHECK(d.client.transactions() == 1);

  // The next message on the same connection: no RSET after a clean end.
  d.client.send(message(1));
  CHECK(d.client.takeOutput().rfind("MAIL FROM:<alice@example.org> SIZE=100\r\n", 0) == 0);
}

TEST_CASE("without PIPELINING one command at a time", "[smtp_client]") {
  bool byteWise = GENERATE(false, true);
  Driver d(plainSettings(), byteWise);
  greet(d, "250-mx.example.net\r\n250 8BITMIME\r\n");
  REQUIRE(d.client.state() == S::Ready);
  d.client.send(message(2));
  CHECK(d.client.takeOutput() == "MAIL FROM:<alice@example.org>\r\n");
  CHECK(d.feed("250 ok\r\n") == "RCPT TO:<r0@example.net>\r\n");
  CHECK(d.feed("451 4.7.1 later\r\n") == "RCPT TO:<r1@example.net>\r\n");
  CHECK(d.feed("250 ok\r\n") == "DATA\r\n");
  CHECK(d.feed("354 go\r\n") == "");
  d.client.contentSent();
  d.feed("250 done\r\n");
  auto r = d.client.takeResult();
  REQUIRE(r);
  CHECK(r->replies[0].summary() == "451 4.7.1 later");
  CHECK(r->replies[1].summary() == "250 done");
  CHECK_FALSE(r->dsnPassed);  // no DSN offered: NOTIFY did not travel
}

TEST_CASE("every recipient refused: no DATA content, RSET before the next", "[smtp_client]") {
  bool pipelining = GENERATE(false, true);
  Driver d(plainSettings(), false);
  greet(d, pipelining ? "250-mx\r\n250 PIPELINING\r\n" : "250 mx\r\n");
  d.client.send(message(1));
  d.client.takeOutput();
  if (pipelining) {
    d.feed("250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n");
  } else {
    CHECK(d.feed("250 ok\r\n") == "RCPT TO:<r0@example.net>\r\n");
    CHECK(d.feed("550 5.1.1 unknown\r\n") == "");
  }
  auto r = d.client.takeResult();
  REQUIRE(r);
  CHECK(r->replies[0].summary() == "550 5.1.1 unknown");
  REQUIRE(d.client.state() == S::Ready);
  d.client.send(message(1));
  std::string out = d.client.takeOutput();
  CHECK(out.rfind("RSET\r\n", 0) == 0);
  if (!pipelining) {
    CHECK(out == "RSET\r\n");
    CHECK(d.feed("250 ok\r\n") == "MAIL FROM:<alice@example.org>\r\n");
  }
}

TEST_CASE("a 354 with no accepted recipient gets just the dot", "[smtp_client]") {
  Driver d(plainSettings(), false);
  greet(d, "250-mx\r\n250 PIPELINING\r\n");
  d.client.send(message(1));
  d.client.takeOutput();
  CHECK(d.feed("250 ok\r\n550 no\r\n354 go\r\n") == ".\r\n");
  CHECK(d.client.state() == S::Final);
  d.feed("554 no valid recipients\r\n");
  auto r = d.client.takeResult();
  REQUIRE(r);
  CHECK(r->replies[0].summary() == "550 no");
}

TEST_CASE("MAIL refused: every recipient gets that reply", "[smtp_client]") {
  Driver d(plainSettings(), false);
  greet(d, "250-mx\r\n250 PIPELINING\r\n");
  d.client.send(message(2));
  d.client.takeOutput();
  d.feed("550 5.7.1 sender rejected\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
         "503 5.5.1 need MAIL\r\n");
  auto r = d.client.takeResult();
  REQUIRE(r);
  CHECK(r->replies[0].summary() == "550 5.7.1 sender rejected");
  CHECK(r->replies[1].summary() == "550 5.7.1 sender rejected");
}

TEST_CASE("EHLO refused: HELO, and no extension is used", "[smtp_client]") {
  bool byteWise = GENERATE(false, true);
  Driver d(plainSettings(), byteWise);
  REQUIRE(d.feed("220 old server\r\n") == "EHLO mx.test\r\n");
  CHECK(d.feed("502 5.5.2 what\r\n") == "HELO mx.test\r\n");
  d.feed("250 hello\r\n");
  REQUIRE(d.client.state() == S::Ready);
  CHECK_FALSE(d.client.extensions().esmtp);
  SmtpMessage m = message(1);
  m.recipients[0].notify = queue::kNotifySuccess;
  d.client.send(m);
  CHECK(d.client.takeOutput() == "MAIL FROM:<alice@example.org>\r\n");
}

TEST_CASE("messages the server cannot take are refused before any command", "[smtp_client]") {
  struct Case {
    const char* ehlo;
    queue::Body body;
    bool utf8;
    uint64_t size;
    const char* want;
  };
  auto c = GENERATE(
      Case{"250-mx\r\n250 SIZE 50\r\n", queue::Body::Unspecified, false, 51, "552 5.3.4"},
      Case{"250 mx\r\n", queue::Body::EightBitMime, false, 10, "554 5.6.3"},
      Case{"250-mx\r\n250 8BITMIME\r\n", queue::Body::BinaryMime, false, 10, "554 5.6.3"},
      Case{"250-mx\r\n250 8BITMIME\r\n", queue::Body::Unspecified, true, 10, "553 5.6.7"});
  Driver d(plainSettings(), false);
  greet(d, c.ehlo);
  REQUIRE(d.client.state() == S::Ready);
  SmtpMessage m = message(2);
  m.body = c.body;
  m.smtputf8 = c.utf8;
  m.size = c.size;
  d.client.send(m);
  CHECK(d.client.takeOutput().empty());
  auto r = d.client.takeResult();
  REQUIRE(r);
  for (const auto& rep : r->replies) CHECK(rep.summary().rfind(c.want, 0) == 0);
  CHECK(d.client.state() == S::Ready);

  // SIZE 0 means no fixed limit; the matching extensions let the message go.
  Driver ok(plainSettings(), false);
  greet(ok, "250-mx\r\n250-SIZE 0\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
  SmtpMessage big = message(1);
  big.size = 1u << 30;
  big.body = queue::Body::EightBitMime;
  big.smtputf8 = true;
  ok.client.send(big);
  CHECK(ok.client.takeOutput() ==
        "MAIL FROM:<alice@example.org> SIZE=1073741824 BODY=8BITMIME SMTPUTF8\r\n");
}

TEST_CASE("greeting or EHLO failures end the connection before any transaction",
          "[smtp_client]") {
  SECTION("421 greeting") {
    Driver d(plainSettings(), false);
    CHECK(d.feed("421 4.3.2 busy\r\n") == "QUIT\r\n");
    CHECK(d.client.state() == S::Closed);
    REQUIRE(d.client.setupFailure());
    CHECK(d.client.setupFailure()->reply.summary() == "421 4.3.2 busy");
  }
  SECTION("554 greeting becomes a temporary failure") {
    Driver d(plainSettings(), false);
    d.feed("554 5.7.1 go away\r\n");
    REQUIRE(d.client.setupFailure());
    CHECK(d.client.setupFailure()->reply.code == 451);
    CHECK(d.client.setupFailure()->reply.summary().find("554 5.7.1 go away") != std::string::npos);
  }
  SECTION("4xx to EHLO") {
    Driver d(plainSettings(), false);
    d.feed("220 hi\r\n");
    d.feed("421 4.7.0 try later\r\n");
    REQUIRE(d.client.setupFailure());
    CHECK(d.client.setupFailure()->reply.code == 421);
  }
}

TEST_CASE("STARTTLS: bytes after the 220 are dropped, EHLO again after the handshake",
          "[smtp_client]") {
  bool byteWise = GENERATE(false, true);
  SmtpClientSettings s = plainSettings();
  s.startTls = true;
  Driver d(s, byteWise);
  CHECK(greet(d, "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n") == "STARTTLS\r\n");
  REQUIRE(d.client.state() == S::StartTls);
  // An attacker appends a fake EHLO reply (advertising AUTH to lure
  // credentials) and a fake 250 in the same segment as the 220.
  std::string injected = "250-mx\r\n250 AUTH PLAIN\r\n250 2.0.0 fake\r\n";
  CHECK(d.feed("220 2.0.0 ready\r\n" + injected) == "");
  CHECK(d.client.state() == S::TlsHandshake);
  CHECK(d.client.discardedAfterStartTls() == injected.size());
  d.client.tlsStarted();
  CHECK(d.client.takeOutput() == "EHLO mx.test\r\n");
  CHECK(d.client.state() == S::Ehlo);  // the injected reply was not taken as the EHLO reply
  CHECK(d.client.tls());
  d.feed("250-mx\r\n250 PIPELINING\r\n");
  CHECK(d.client.state() == S::Ready);
  CHECK_FALSE(d.client.extensions().authPlain);
}

TEST_CASE("TLS policy: STARTTLS required but not offered, or refused", "[smtp_client]") {
  SmtpClientSettings s = plainSettings();
  s.startTls = true;
  s.requireTls = true;
  SECTION("not offered") {
    Driver d(s, false);
    greet(d, "250-mx\r\n250 PIPELINING\r\n");
    CHECK(d.client.state() == S::Closed);
    REQUIRE(d.client.setupFailure());
    CHECK(d.client.setupFailure()->tls);
    CHECK(d.client.setupFailure()->reply.enhanced == "4.7.4");
  }
  SECTION("refused") {
    Driver d(s, false);
    greet(d, "250-mx\r\n250 STARTTLS\r\n");
    d.feed("454 4.7.0 TLS not available\r\n");
    REQUIRE(d.client.setupFailure());
    CHECK(d.client.setupFailure()->tls);
  }
  SECTION("refused under may: go on in clear") {
    s.requireTls = false;
    Driver d(s, false);
    greet(d, "250-mx\r\n250 STARTTLS\r\n");
    d.feed("454 4.7.0 TLS not available\r\n");
    CHECK(d.client.state() == S::Ready);
    CHECK_FALSE(d.client.tls());
  }
}

TEST_CASE("AUTH PLAIN and LOGIN, only over TLS", "[smtp_client]") {
  SmtpClientSettings s = plainSettings();
  s.implicitTls = true;
  s.auth = SmtpCredentials{"alice", "secret"};
  SECTION("PLAIN") {
    bool byteWise = GENERATE(false, true);
    Driver d(s, byteWise);
    REQUIRE(d.feed("220 relay\r\n") == "EHLO mx.test\r\n");
    CHECK(d.feed("250-relay\r\n250 AUTH LOGIN PLAIN\r\n") ==
          "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    d.feed("235 2.7.0 ok\r\n");
    CHECK(d.client.state() == S::Ready);
    CHECK(d.client.authenticated());
  }
  SECTION("LOGIN") {
    Driver d(s, false);
    d.feed("220 relay\r\n");
    CHECK(d.feed("250-relay\r\n250 AUTH=LOGIN\r\n") == "AUTH LOGIN\r\n");
    CHECK(d.feed("334 VXNlcm5hbWU6\r\n") == "YWxpY2U=\r\n");
    CHECK(d.feed("334 UGFzc3dvcmQ6\r\n") == "c2VjcmV0\r\n");
    d.feed("235 ok\r\n");
    CHECK(d.client.state() == S::Ready);
  }
  SECTION("refused") {
    Driver d(s, false);
    d.feed("220 relay\r\n");
    d.feed("250-relay\r\n250 AUTH PLAIN\r\n");
    d.feed("535 5.7.8 bad credentials\r\n");
    REQUIRE(d.client.setupFailure());
    CHECK(d.client.setupFailure()->reply.code == 451);  // the admin fixes it; mail waits
    CHECK(d.client.setupFailure()->reply.summary().find("535 5.7.8") != std::string::npos);
  }
  SECTION("never in clear") {
    s.implicitTls = false;
    Driver d(s, false);
    d.feed("220 relay\r\n");
    std::string out = d.feed("250-relay\r\n250 AUTH PLAIN\r\n");
    CHECK(out.find("AUTH") == std::string::npos);
    REQUIRE(d.client.setupFailure());
    CHECK(d.client.setupFailure()->reply.enhanced == "4.7.0");
  }
}

TEST_CASE("hostile replies fail the attempt, never confuse it", "[smtp_client]") {
  struct Case {
    const char* name;
    std::string bytes;
  };
  auto c = GENERATE(
      Case{"mixed codes", "250-ok\r\n550 5.1.1 no\r\n"},
      Case{"continuation with another code", "250-ok\r\n251-x\r\n250 y\r\n"},
      Case{"bare LF", "250 ok\n"},
      Case{"bad code", "2a0 ok\r\n"},
      Case{"code out of range", "650 ok\r\n"},
      Case{"NUL", std::string("250 o\0k\r\n", 9)},
      Case{"overlong line", "250 " + std::string(3000, 'x') + "\r\n"},
      Case{"too many lines", [] {
             std::string s;
             for (int i = 0; i < 200; ++i) s += "250-line\r\n";
             return s + "250 end\r\n";
           }()},
      Case{"bare CR", "250 ok\rx\r\n"});
  bool byteWise = GENERATE(false, true);
  INFO(c.name);
  SECTION("during the envelope") {
    Driver d(plainSettings(), byteWise);
    greet(d, "250-mx\r\n250 PIPELINING\r\n");
    d.client.send(message(2));
    d.client.takeOutput();
    d.feed(c.bytes);
    CHECK(d.client.state() == S::Closed);
    auto r = d.client.takeResult();
    REQUIRE(r);
    for (const auto& rep : r->replies) {
      CHECK(rep.code == 451);
      CHECK(rep.enhanced == "4.5.0");
    }
  }
  SECTION("as the EHLO reply") {
    Driver d(plainSettings(), byteWise);
    d.feed("220 hi\r\n");
    d.feed(c.bytes);
    CHECK(d.client.state() == S::Closed);
    REQUIRE(d.client.setupFailure());
    CHECK(d.client.setupFailure()->reply.code == 451);
  }
}

TEST_CASE("a multi-line reply with a valid grammar and odd text is one reply", "[smtp_client]") {
  // Text that looks like more replies must stay text (CVE-2020-8794).
  Driver d(plainSettings(), true);
  greet(d, "250-mx\r\n250-PIPELINING\r\n250 SIZE 2000 250 STARTTLS\r\n");
  CHECK(d.client.state() == S::Ready);
  CHECK_FALSE(d.client.extensions().startTls);
  CHECK(d.client.extensions().size == 2000u);
  d.client.send(message(1));
  d.client.takeOutput();
  d.feed("250-2.1.0 ok\r\n250-354 go on\r\n250 2.1.0 really\r\n250 ok\r\n554 no DATA\r\n");
  auto r = d.client.takeResult();
  REQUIRE(r);
  CHECK(r->replies[0].summary() == "554 no DATA");
}

TEST_CASE("a reply nobody asked for closes an idle connection", "[smtp_client]") {
  Driver d(plainSettings(), false);
  greet(d, "250 mx\r\n");
  d.feed("421 4.4.2 idle timeout\r\n");
  CHECK(d.client.state() == S::Closed);
  CHECK_FALSE(d.client.takeResult());
}

TEST_CASE("connection lost: recipients without a reply get the reason", "[smtp_client]") {
  Driver d(plainSettings(), false);
  greet(d, "250-mx\r\n250 PIPELINING\r\n");
  d.client.send(message(2));
  d.client.takeOutput();
  d.feed("250 ok\r\n550 5.1.1 no\r\n");
  d.client.connectionLost(smtp::localReply(421, "4.4.2", "connection lost"));
  auto r = d.client.takeResult();
  REQUIRE(r);
  CHECK(r->replies[0].summary() == "550 5.1.1 no");
  CHECK(r->replies[1].summary() == "421 4.4.2 connection lost");
  CHECK_FALSE(r->retryable);

  // A reused connection that dies before any reply of the new transaction.
  Driver e(plainSettings(), false);
  greet(e, "250-mx\r\n250 PIPELINING\r\n");
  e.client.send(message(1));
  e.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  e.client.contentSent();
  e.feed("250 done\r\n");
  REQUIRE(e.client.takeResult());
  e.client.send(message(1));
  e.client.connectionLost(smtp::localReply(421, "4.4.2", "closed"));
  auto again = e.client.takeResult();
  REQUIRE(again);
  CHECK(again->retryable);
}

TEST_CASE("a reply during the content fails the transaction", "[smtp_client]") {
  Driver d(plainSettings(), false);
  greet(d, "250-mx\r\n250 PIPELINING\r\n");
  d.client.send(message(1));
  d.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  REQUIRE(d.client.state() == S::Content);
  d.feed("552 5.3.4 too big\r\n");
  auto r = d.client.takeResult();
  REQUIRE(r);
  CHECK(r->replies[0].code == 451);
  CHECK(d.client.state() == S::Closed);
}

TEST_CASE("RCPT parameters", "[smtp_client]") {
  SmtpExtensions dsn;
  dsn.dsn = true;
  SmtpExtensions none;
  SmtpRecipient r{"b@example.net", queue::kNotifyDelay | queue::kNotifyFailure, "utf-8",
                  "b\xc3\xa9@example.net"};
  CHECK(rcptCommand(r, none) == "RCPT TO:<b@example.net>");
  // A utf-8 ORCPT with non-ASCII would need RFC 6533's encoding: left out.
  CHECK(rcptCommand(r, dsn) == "RCPT TO:<b@example.net> NOTIFY=FAILURE,DELAY");
  r.orcptType = "rfc822";
  r.orcpt = "a+b=c@example.net";
  CHECK(rcptCommand(r, dsn) ==
        "RCPT TO:<b@example.net> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a+2Bb+3Dc@example.net");
}

TEST_CASE("relay host and TLS policy parsing", "[remote]") {
  struct Case {
    const char* in;
    bool ok;
    const char* host;
    uint16_t port;
    bool mx;
  };
  auto c = GENERATE(Case{"smtp.example.net", true, "smtp.example.net", 25, true},
                    Case{"Smtp.Example.NET:587", true, "smtp.example.net", 587, true},
                    Case{"[smtp.example.net]:587", true, "smtp.example.net", 587, false},
                    Case{"[smtp.example.net]", true, "smtp.example.net", 25, false},
                    Case{"192.0.2.1:2525", true, "192.0.2.1", 2525, false},
                    Case{"[2001:db8::1]:25", true, "2001:db8::1", 25, false},
                    Case{"2001:db8::1", false, "", 0, false},
                    Case{"host:0", false, "", 0, false},
                    Case{"host:70000", false, "", 0, false},
                    Case{"host:", false, "", 0, false},
                    Case{"[host", false, "", 0, false},
                    Case{"[host]x", false, "", 0, false},
                    Case{":25", false, "", 0, false});
  INFO(c.in);
  auto r = parseRelayHost(c.in, 25);
  REQUIRE(bool(r) == c.ok);
  if (c.ok) {
    CHECK(r->host == c.host);
    CHECK(r->port == c.port);
    CHECK(r->mxLookup == c.mx);
  }
  auto p = parseTlsPolicies({"Example.COM=verify", "example.net.=none"});
  REQUIRE(p);
  CHECK(p->at("example.com") == TlsPolicy::Verify);
  CHECK(p->at("example.net") == TlsPolicy::None);
  CHECK_FALSE(parseTlsPolicies({"example.com"}));
  CHECK_FALSE(parseTlsPolicies({"example.com=maybe"}));
}

TEST_CASE("relay credentials file: one line, mode 0600", "[remote]") {
  auth::testing::TempDir dir;
  std::string path = dir.file("auth");
  auth::testing::writeText(path, "# relay\n\nalice s3cret with spaces\r\n");
  ::chmod(path.c_str(), 0600);
  auto c = readAuthFile(path);
  REQUIRE(c);
  CHECK(c->user == "alice");
  CHECK(c->password == "s3cret with spaces");
  ::chmod(path.c_str(), 0640);
  auto open = readAuthFile(path);
  REQUIRE_FALSE(open);
  CHECK(open.error().message.find("group or others") != std::string::npos);
  ::chmod(path.c_str(), 0600);
  auth::testing::writeText(path, "justuser\n");
  ::chmod(path.c_str(), 0600);
  CHECK_FALSE(readAuthFile(path));
  CHECK_FALSE(readAuthFile(dir.file("missing")));
}

TEST_CASE("random server bytes never break the client's invariants", "[smtp_client]") {
  // Reply-shaped noise: right and wrong codes, continuations, line ends cut
  // anywhere. Whatever comes, a result has one reply per recipient, and the
  // client either waits, is ready, or is closed with a reason.
  std::mt19937 rng(12345);
  static const char* const kPieces[] = {
      "220 hi\r\n", "250 ok\r\n", "250-", "250-PIPELINING\r\n", "250-STARTTLS\r\n", "354 go\r\n",
      "550 5.1.1 no\r\n", "451 later\r\n", "421 bye\r\n", "334 VXNlcm5hbWU6\r\n", "235 ok\r\n",
      "\r\n", "\n", "2", "5", "0", " ", "-", "x", "\r"};
  for (int round = 0; round < 3000; ++round) {
    SmtpClientSettings s = plainSettings();
    s.startTls = rng() % 2 == 0;
    if (rng() % 4 == 0) {
      s.implicitTls = true;
      s.auth = SmtpCredentials{"u", "p"};
    }
    SmtpClient c(s);
    size_t sent = 0;
    for (int step = 0; step < 40 && c.state() != S::Closed; ++step) {
      std::string chunk;
      for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k)
        chunk += kPieces[rng() % (sizeof kPieces / sizeof kPieces[0])];
      c.feed(chunk);
      c.takeOutput();
      if (c.state() == S::TlsHandshake) c.tlsStarted();
      if (c.state() == S::Content) c.contentSent();
      if (c.state() == S::Ready && rng() % 2 == 0) {
        sent = 1 + rng() % 3;
        c.send(message(sent));
      }
      if (auto r = c.takeResult()) {
        REQUIRE(r->replies.size() == sent);
        for (const auto& rep : r->replies) REQUIRE(rep.code >= 200);
      }
    }
    if (c.state() == S::Closed && c.transactions() == 0 && c.setupFailure())
      REQUIRE(c.setupFailure()->reply.code / 100 == 4);
  }
}
