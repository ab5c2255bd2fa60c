// libFuzzer target for the SMTP / LMTP engine: random bytes fed in random
// pieces, in SMTP and LMTP mode, with random settings, commits and TLS
// hand-overs, through a fake Io and Policy that check the engine's promises
// (replies well-formed, message events in order, nothing after close).
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/session.hpp"

using namespace yubin::smtp;

namespace {

struct FuzzIo final : Io, Policy {
  Session* session = nullptr;
  bool open = false;  // between messageBegin and messageEnd/Abort
  bool committing = false;
  bool tls = false;
  bool closed = false;
  size_t messageBytes = 0;

  void send(std::string_view b) override {
    if (closed) std::abort();
    // Every reply line is "ddd" then ' ' or '-', ends in CRLF, holds no
    // other CR or LF.
    size_t i = 0;
    while (i < b.size()) {
      size_t e = b.find("\r\n", i);
      if (e == std::string_view::npos || e - i < 4) std::abort();
      std::string_view line = b.substr(i, e - i);
      if (line[3] != ' ' && line[3] != '-') std::abort();
      if (line.find('\r') != std::string_view::npos || line.find('\n') != std::string_view::npos)
        std::abort();
      i = e + 2;
    }
  }
  void startTls() override { tls = true; }
  void close() override {
    if (open) std::abort();
    closed = true;
  }
  void messageBegin(const Envelope& env) override {
    if (open || committing || env.recipients.empty()) std::abort();
    open = true;
    messageBytes = 0;
  }
  void messageData(std::string_view b) override {
    if (!open) std::abort();
    messageBytes += b.size();
  }
  void messageEnd() override {
    if (!open) std::abort();
    open = false;
    committing = true;
  }
  void messageAbort() override {
    if (!open) std::abort();
    open = false;
  }
  std::optional<Reply> checkSender(const Envelope&, const yubin::mail::Address& a) override {
    if (a.local == "bad") return reply(ReplyId::SenderRejected);
    return std::nullopt;
  }
  std::optional<Reply> checkRecipient(const Envelope&, const yubin::mail::Address& a) override {
    if (a.local == "bad") return reply(ReplyId::UserUnknown);
    if (yubin::mail::looksLikeRelayTrick(a)) return reply(ReplyId::RoutingRejected);
    return std::nullopt;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  Settings s;
  s.mode = (flags & 3) == 1 ? Mode::Lmtp : (flags & 3) == 2 ? Mode::Submission : Mode::Smtp;
  s.hostname = "mx.fuzz";
  s.maxMessageSize = (flags & 4) ? 64 : 1 << 20;
  s.maxRecipients = (flags & 8) ? 2 : 100;
  s.maxCommandLine = (flags & 16) ? 512 : 2048;
  s.normalizeBareLf = flags & 32;
  s.tlsAvailable = flags & 64;
  s.binaryMime = flags & 128;
  s.maxErrors = 20;
  const uint8_t pieceSeed = data[1];
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);

  FuzzIo io;
  Session session(s, io, io);
  io.session = &session;
  session.greet();
  size_t i = 0, step = 0;
  while (i < in.size() && !session.closed()) {
    size_t n = 1 + (pieceSeed * 31 + step * 7) % 97;
    n = std::min(n, in.size() - i);
    session.feed(in.substr(i, n));
    i += n;
    ++step;
    if (session.buffered() > 1 << 20) std::abort();
    if (io.committing && session.state() == Session::State::Committing) {
      io.committing = false;
      if (s.mode == Mode::Lmtp) {
        std::vector<Reply> rs(session.envelope().recipients.size(), reply(ReplyId::Delivered));
        session.messageDone(rs);
      } else {
        session.messageDone(reply(ReplyId::Queued, "F1"));
      }
    }
    if (io.tls && session.state() == Session::State::StartingTls) {
      io.tls = false;
      session.tlsStarted();
    }
  }
  if (!session.closed()) session.timeout();
  if (!io.closed || io.open) std::abort();
  return 0;
}
