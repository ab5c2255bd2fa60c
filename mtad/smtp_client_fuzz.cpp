// libFuzzer target for mtad's SMTP client state machine (smtp_client.hpp):
// a hostile server's bytes fed in pieces to an SmtpClient, the harness
// playing the glue (TLS hand-over after the 220 to STARTTLS, the content
// written after the 354, up to three messages, then QUIT or a lost
// connection). The reply grammar itself is smtp/client_reply_fuzz.cpp's.
//
// Input: byte 0 = settings (STARTTLS, required TLS, implicit TLS, AUTH,
// message shape), byte 1 = how the bytes are cut into pieces; the rest is
// what the server sends.
//
// Checked, besides memory safety: the client writes whole CRLF lines; it
// never sends AUTH or credentials in clear, nor MAIL when TLS is required
// and missing; every finished transaction has exactly one reply per
// recipient, each a real reply code; a setup failure is a 4xx or 5xx.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/log.hpp"
#include "mtad/smtp_client.hpp"

using namespace yubin;
using namespace yubin::mtad;

namespace {

void checkOutput(std::string_view out, bool tls, bool requireTls) {
  if (out.empty()) return;
  if (out.size() < 2 || out.substr(out.size() - 2) != "\r\n") std::abort();
  size_t i = 0;
  while (i < out.size()) {
    size_t e = out.find("\r\n", i);
    if (e == std::string_view::npos) std::abort();
    std::string_view line = out.substr(i, e - i);
    if (line.find('\r') != std::string_view::npos || line.find('\n') != std::string_view::npos)
      std::abort();
    if (!tls && line.substr(0, 5) == "AUTH ") std::abort();
    if (!tls && line.find("c2VjcmV0") != std::string_view::npos) std::abort();  // "secret"
    if (!tls && requireTls && line.substr(0, 10) == "MAIL FROM:") std::abort();
    i = e + 2;
  }
}

void checkResult(const TransactionResult& r, size_t recipients) {
  if (r.replies.size() != recipients) std::abort();
  for (const auto& rep : r.replies)
    if (rep.code < 200 || rep.code > 599) std::abort();
}

SmtpMessage message(uint8_t shape, int n) {
  SmtpMessage m;
  m.sender = (shape & 1) ? "" : "sender@example.org";
  int rcpts = 1 + (shape >> 1 & 3) + n;
  for (int i = 0; i < rcpts; ++i) {
    SmtpRecipient r;
    r.address = "rcpt" + std::to_string(i) + "@example.net";
    if (shape & 8) {
      r.notify = queue::kNotifySuccess | queue::kNotifyFailure;
      r.orcptType = "rfc822";
      r.orcpt = "orig" + std::to_string(i) + "@example.net";
    }
    m.recipients.push_back(std::move(r));
  }
  m.body = (shape & 16) ? queue::Body::EightBitMime : queue::Body::SevenBit;
  m.smtputf8 = shape & 32;
  m.ret = (shape & 64) ? queue::Ret::Headers : queue::Ret::Unspecified;
  m.envid = (shape & 64) ? "env+id" : "";
  m.size = (shape & 128) ? 50'000'000 : 1234;
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The client warns about every protocol error: only errors, please.
  static const bool quiet = (logInit("fuzz", LogTarget::Stderr, LogLevel::Error), true);
  (void)quiet;
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  const uint8_t pieceSeed = data[1];
  const uint8_t shape = data[2];
  std::string_view in(reinterpret_cast<const char*>(data + 3), size - 3);

  SmtpClientSettings s;
  s.helo = "mx.fuzz";
  s.startTls = flags & 1;
  s.requireTls = flags & 2;
  s.implicitTls = flags & 4;
  if (flags & 8) s.auth = SmtpCredentials{"user", "secret"};
  if (flags & 16) s.limits.maxLine = 64;
  if (flags & 32) s.limits.maxLines = 4;
  SmtpClient c(s);
  if (s.implicitTls) c.tlsStarted();

  size_t pos = 0, step = 0, recipients = 0;
  int sent = 0;
  bool inTransaction = false;
  while (pos < in.size() && c.state() != SmtpClient::State::Closed) {
    size_t n = 1 + (pieceSeed * 31 + step * 7) % 83;
    n = std::min(n, in.size() - pos);
    c.feed(in.substr(pos, n));
    pos += n;
    ++step;
    for (int guard = 0; guard < 8; ++guard) {
      checkOutput(c.takeOutput(), c.tls(), s.requireTls);
      if (auto r = c.takeResult()) {
        if (!inTransaction) std::abort();
        checkResult(*r, recipients);
        inTransaction = false;
      }
      auto st = c.state();
      if (st == SmtpClient::State::TlsHandshake) {
        if ((flags & 64) == 0) {
          c.tlsStarted();
        } else {
          c.connectionLost(smtp::ClientReply{421, "4.7.0", {"handshake failed"}}, true);
        }
      } else if (st == SmtpClient::State::Content) {
        c.contentSent();
      } else if (st == SmtpClient::State::Ready) {
        if (s.requireTls && !c.tls()) std::abort();
        if (sent < 3 && !inTransaction) {
          SmtpMessage m = message(shape, sent);
          recipients = m.recipients.size();
          inTransaction = true;
          ++sent;
          c.send(m);
        } else if (!inTransaction) {
          c.quit();
        } else {
          break;
        }
      } else {
        break;
      }
    }
  }
  if (c.state() != SmtpClient::State::Closed)
    c.connectionLost(smtp::ClientReply{421, "4.4.2", {"connection lost"}});
  checkOutput(c.takeOutput(), c.tls(), s.requireTls);
  if (auto r = c.takeResult()) {
    if (!inTransaction) std::abort();
    checkResult(*r, recipients);
    inTransaction = false;
  }
  if (inTransaction) std::abort();  // a transaction ended without a result
  // A setup failure is a refusal: 4xx or 5xx.
  if (const auto& f = c.setupFailure(); f && (f->reply.code < 400 || f->reply.code > 599))
    std::abort();
  return 0;
}
