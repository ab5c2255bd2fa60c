// libFuzzer target for mrad's POP3 state machines (login_session.hpp,
// mail_session.hpp, pop3.hpp): client bytes fed in pieces to a
// LoginSession, then, once it logs in, the rest to a MailSession over a
// store::MemoryFolder, the harness answering every Event the way the glue
// does (TLS hand-over, password check, failed-login resume, transfers
// pumped with produce()). A second mode round-trips the WireEncoder: the
// message bytes encoded in pieces (whole, or TOP n) and decoded again must
// give back the message with its line ends made CRLF.
//
// Input: byte 0 = flags (settings, folder faults, mode), byte 1 = how the
// input is cut into pieces, byte 2 = the transfer budget; the rest is the
// client's bytes (or, in the encoder mode, the message).
//
// Checked, besides memory safety: output is whole CRLF lines with no bare
// LF; nothing is sent after the session closes; the input buffer stays
// bounded; the AUTHORIZATION state never reaches the mail half without a
// successful check; QUIT removes exactly the messages it reports.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mrad/pop3/login_session.hpp"
#include "mrad/pop3/mail_session.hpp"
#include "mrad/pop3/pop3.hpp"
#include "store/folder.hpp"

using namespace yubin;
using namespace yubin::mrad::pop3;

namespace {

// A scripted SASL exchange: "PLAIN" takes "authzid\0user\0pass" (checked by
// the harness's password check); "X-CHAL" sends one challenge and ends with
// server-final data.
class FuzzSasl final : public SaslExchange {
 public:
  explicit FuzzSasl(bool chal) : chal_(chal) {}
  SaslStep begin(std::optional<std::string_view> ir) override {
    if (!ir) return challenge(chal_ ? "challenge" : "");
    return respond(*ir);
  }
  SaslStep respond(std::string_view r) override {
    if (++steps_ > 3) return failure();
    if (chal_) {
      if (r != "answer") return failure();
      SaslStep s;
      s.kind = SaslStep::Kind::Success;
      s.authenticated = "chal@example.org";
      s.serverFinal = "v=final";
      return s;
    }
    size_t a = r.find('\0');
    size_t b = a == std::string_view::npos ? a : r.find('\0', a + 1);
    // Like sasl::Exchange's PLAIN: an empty password is refused here.
    if (b == std::string_view::npos || b + 1 == r.size()) return failure();
    SaslStep s;
    s.kind = SaslStep::Kind::CheckPassword;
    s.user = std::string(r.substr(a + 1, b - a - 1));
    s.password = std::string(r.substr(b + 1));
    checking_ = true;
    return s;
  }
  SaslStep passwordChecked(bool ok) override {
    if (!checking_) std::abort();  // the session asked for a check it did not start
    checking_ = false;
    if (!ok) return failure();
    SaslStep s;
    s.kind = SaslStep::Kind::Success;
    s.authenticated = "plain@example.org";
    return s;
  }

 private:
  static SaslStep challenge(std::string c) {
    SaslStep s;
    s.kind = SaslStep::Kind::Challenge;
    s.challenge = std::move(c);
    return s;
  }
  static SaslStep failure() {
    SaslStep s;
    s.kind = SaslStep::Kind::Failure;
    s.reason = "no";
    return s;
  }
  bool chal_;
  bool checking_ = false;
  int steps_ = 0;
};

std::vector<store::MemoryFolder::Item> messages(bool empty) {
  if (empty) return {};
  return {
      {"uid-1", "Subject: one\n\nline 1\n.dot line\n..two dots\n"},
      {"uid-2", "Subject: two\r\nX: y\r\n\r\nbody a\r\nbody b\r\nbody c\r\n"},
      {"uid-3", "Subject: three\n\nFrom the start\nno final newline"},
      {"uid-4", ".\r\n.\n\r\n\r\r\n.."},
      {"uid-5", ""},
  };
}

// Output is whole lines: every LF follows a CR, and it ends with CRLF.
void checkLines(std::string_view out) {
  if (out.empty()) return;
  if (out.size() < 2 || out.substr(out.size() - 2) != "\r\n") std::abort();
  for (size_t i = out.find('\n'); i != std::string_view::npos; i = out.find('\n', i + 1))
    if (i == 0 || out[i - 1] != '\r') std::abort();
}

// The pieces the client's bytes arrive in.
struct Pieces {
  std::string_view in;
  uint8_t seed;
  size_t pos = 0, step = 0;
  bool done() const { return pos >= in.size(); }
  std::string_view next() {
    size_t n = 1 + (seed * 31 + step * 7) % 61;
    n = std::min(n, in.size() - pos);
    std::string_view p = in.substr(pos, n);
    pos += n;
    ++step;
    return p;
  }
};

// Normalised form of a message as RETR must send it (before dot-stuffing):
// each LF not preceded by CR becomes CRLF; a last line without LF gets CRLF.
std::string crlfLines(std::string_view m) {
  std::string out;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) out += '\r';
    out += m[i];
  }
  if (!m.empty() && m.back() != '\n') out += "\r\n";
  return out;
}

void encoderRoundTrip(std::string_view msg, uint8_t pieceSeed, uint8_t top) {
  std::optional<uint64_t> lines;
  if (top & 0x80) lines = top & 0x0f;
  WireEncoder enc(lines);
  std::string wire;
  Pieces p{msg, pieceSeed};
  while (!p.done())
    if (!enc.encode(p.next(), wire)) break;
  enc.finish(wire);
  checkLines(wire);
  // Undo the dot-stuffing, line by line, up to the terminating dot.
  std::string got;
  size_t i = 0;
  bool terminated = false;
  while (i < wire.size()) {
    size_t e = wire.find("\r\n", i);
    if (e == std::string::npos) std::abort();
    std::string_view line(wire.data() + i, e - i);
    i = e + 2;
    if (line == ".") {
      terminated = true;
      break;
    }
    if (!line.empty() && line[0] == '.') {
      if (line.size() < 2 || line[1] != '.') std::abort();  // a lone dot-line would end it early
      line.remove_prefix(1);
    }
    got.append(line);
    got += "\r\n";
  }
  if (!terminated || i != wire.size()) std::abort();
  std::string want = crlfLines(msg);
  if (lines) {
    // The header, the empty line, then *lines lines of the body.
    size_t pos = 0;
    bool body = false;
    uint64_t left = *lines;
    while (pos < want.size()) {
      if (body && left == 0) break;
      size_t e = want.find("\r\n", pos);
      if (e == std::string::npos) break;
      if (body) {
        --left;
      } else if (e == pos) {
        body = true;
      }
      pos = e + 2;
    }
    want.resize(pos);
  }
  if (got != want) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  const uint8_t pieceSeed = data[1];
  const uint8_t budgetSeed = data[2];
  std::string_view in(reinterpret_cast<const char*>(data + 3), size - 3);
  if (flags == 0xff) {
    encoderRoundTrip(in, pieceSeed, budgetSeed);
    return 0;
  }

  Limits limits;
  if (flags & 8) limits.maxLine = 64;
  LoginSettings ls;
  ls.tlsAvailable = flags & 1;
  ls.tlsActive = flags & 2;
  ls.plaintextAllowed = flags & 4;
  ls.mechanisms = {"PLAIN", "X-CHAL"};
  ls.limits = limits;
  const bool checkerSaysYes = flags & 16;

  LoginSession login(ls, [](std::string_view mech) -> std::unique_ptr<SaslExchange> {
    if (mech == "PLAIN" || mech == "plain") return std::make_unique<FuzzSasl>(false);
    if (mech == "X-CHAL" || mech == "x-chal") return std::make_unique<FuzzSasl>(true);
    return nullptr;
  });
  login.start();
  Pieces p{in, pieceSeed};
  bool checkedOk = false;
  bool loggedIn = false;
  bool tls = ls.tlsActive;
  std::string out;
  while (!p.done()) {
    login.feed(p.next());
    for (int guard = 0; guard < 1000; ++guard) {
      auto ev = login.event();
      if (ev == LoginSession::Event::StartTls) {
        if (tls || !ls.tlsAvailable) std::abort();
        tls = true;
        login.tlsStarted();
        login.setMechanisms(ls.mechanisms);
      } else if (ev == LoginSession::Event::CheckPassword) {
        checkedOk = checkerSaysYes || login.password() == "secret";
        if (login.password().empty()) std::abort();
        login.passwordChecked(checkedOk, "user@example.org");
      } else if (ev == LoginSession::Event::AuthFailed) {
        login.resume();
      } else {
        break;
      }
    }
    std::string o = login.takeOutput();
    checkLines(o);
    out += o;
    auto ev = login.event();
    if (ev == LoginSession::Event::LoggedIn) {
      loggedIn = true;
      break;
    }
    if (ev == LoginSession::Event::Close) break;
    if (login.badCommands() > limits.maxBadCommands) std::abort();
  }
  if (!loggedIn) return 0;
  // Only a successful check, or the SASL mechanism that needs none, logs in.
  if (!checkedOk && login.authenticated() != "chal@example.org") std::abort();
  if (login.authenticated().empty()) std::abort();
  if (!tls && !ls.plaintextAllowed) std::abort();

  store::MemoryFolder folder(messages(flags & 32));
  folder.failOpen = flags & 64;
  folder.failExpunge = flags & 128;
  folder.readChunk = 1 + budgetSeed % 13;
  const size_t before = folder.messages().size();
  MailSettings ms;
  ms.limits = limits;
  ms.user = login.authenticated();
  ms.logId = "fuzz";
  MailSession mail(folder, ms);
  mail.start(login.takePendingInput());
  const size_t budget = 1 + budgetSeed * 3;
  auto pump = [&] {
    for (int guard = 0; mail.transferring() && guard < 100000; ++guard) mail.produce(budget);
    if (mail.transferring()) std::abort();
    std::string o = mail.takeOutput();
    checkLines(o);
  };
  pump();
  while (!p.done() && !mail.closing()) {
    mail.feed(p.next());
    pump();
  }
  if (mail.closing()) {
    mail.feed("NOOP\r\nSTAT\r\n");
    if (mail.hasOutput()) std::abort();  // nothing after the session ended
  }
  if (mail.updated() && !folder.failExpunge) {
    if (folder.remaining().size() != before - mail.stats().deleted) std::abort();
  }
  if (!mail.updated() && folder.remaining().size() != before) std::abort();
  return 0;
}
