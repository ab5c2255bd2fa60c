// libFuzzer target for mrad's IMAP not-authenticated state
// (login_session.hpp): the bytes an unauthenticated client sends, fed in
// pieces to a LoginSession, with the harness answering every Event as the
// login process's glue does (STARTTLS hand-over, the password check, the
// failed-login resume, the glue's own refusals).
//
// Input: byte 0 = flags (TLS available / active, plaintext allowed, the
// SASL mechanisms offered, whether the check refuses everything, whether
// the glue refuses the next check as the throttle would), byte 1 = how the
// input is cut into pieces; the rest is the client's bytes.
//
// Checked, besides memory safety: output is whole CRLF lines; nothing is
// sent after Close; LoggedIn comes only after a successful password check
// (or the scripted challenge exchange) and names the checked user and a
// tag; no LOGIN or AUTHENTICATE gets that far without TLS unless plaintext
// is allowed; after STARTTLS the bytes fed before the handshake are gone.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mrad/imap/login_session.hpp"

using namespace yubin::mrad::imap;

namespace {

constexpr std::string_view kUser = "bob@example.org";
constexpr std::string_view kPassword = "secret";

// "PLAIN" takes "authzid\0user\0pass" and asks for a password check;
// "X-CHAL" sends one challenge and succeeds on "answer" without a check.
class FuzzSasl final : public SaslExchange {
 public:
  explicit FuzzSasl(bool chal) : chal_(chal) {}
  SaslStep begin(std::optional<std::string_view> ir) override {
    if (!ir) return step(SaslStep::Kind::Challenge);
    return respond(*ir);
  }
  SaslStep respond(std::string_view r) override {
    if (++steps_ > 3) return step(SaslStep::Kind::Failure);
    if (chal_) {
      if (r != "answer") return step(SaslStep::Kind::Failure);
      SaslStep s = step(SaslStep::Kind::Success);
      s.authenticated = "chal@example.org";
      return s;
    }
    size_t a = r.find('\0');
    size_t b = a == std::string_view::npos ? a : r.find('\0', a + 1);
    if (b == std::string_view::npos || b + 1 == r.size()) return step(SaslStep::Kind::Failure);
    SaslStep s = step(SaslStep::Kind::CheckPassword);
    s.user = std::string(r.substr(a + 1, b - a - 1));
    s.password = std::string(r.substr(b + 1));
    checking_ = true;
    return s;
  }
  SaslStep passwordChecked(bool ok) override {
    if (!checking_) std::abort();  // a check the exchange never asked for
    checking_ = false;
    if (!ok) return step(SaslStep::Kind::Failure);
    SaslStep s = step(SaslStep::Kind::Success);
    s.authenticated = std::string(kUser);
    return s;
  }

 private:
  static SaslStep step(SaslStep::Kind k) {
    SaslStep s;
    s.kind = k;
    if (k == SaslStep::Kind::Challenge) s.challenge = "challenge";
    if (k == SaslStep::Kind::Failure) s.reason = "no";
    return s;
  }
  bool chal_;
  bool checking_ = false;
  int steps_ = 0;
};

// Output is whole lines: every LF follows a CR, and it ends with CRLF.
void checkLines(std::string_view out) {
  if (out.empty()) return;
  if (out.size() < 2 || out.substr(out.size() - 2) != "\r\n") std::abort();
  for (size_t i = out.find('\n'); i != std::string_view::npos; i = out.find('\n', i + 1))
    if (i == 0 || out[i - 1] != '\r') std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const uint8_t seed = data[1];
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  LoginSettings s;
  s.tlsAvailable = flags & 1;
  s.tlsActive = flags & 2;
  s.plaintextAllowed = flags & 4;
  if (flags & 8) s.mechanisms.push_back("PLAIN");
  if (flags & 16) s.mechanisms.push_back("X-CHAL");
  const bool refuseAll = flags & 32;
  const bool throttle = flags & 64;
  s.maxBadCommands = 1 + (flags >> 7) * 9;
  bool tls = s.tlsActive;
  LoginSession session(s, [](std::string_view mech) -> std::unique_ptr<SaslExchange> {
    if (mech == "PLAIN") return std::make_unique<FuzzSasl>(false);
    if (mech == "X-CHAL") return std::make_unique<FuzzSasl>(true);
    return nullptr;
  });
  session.start();
  std::string out = session.takeOutput();
  checkLines(out);

  bool checkedOk = false;
  bool closed = false;
  size_t pos = 0, step = 0;
  while (pos < in.size() && !closed) {
    size_t n = std::min<size_t>(1 + (seed * 31 + step * 7) % 61, in.size() - pos);
    session.feed(in.substr(pos, n));
    pos += n;
    ++step;
    // The glue's answers, until the session wants more input.
    for (int turns = 0; turns < 64 && !closed; ++turns) {
      out = session.takeOutput();
      checkLines(out);
      auto ev = session.event();
      if (ev == LoginSession::Event::None) break;
      switch (ev) {
        case LoginSession::Event::None:
          break;
        case LoginSession::Event::StartTls:
          if (tls || !s.tlsAvailable) std::abort();  // STARTTLS offered twice or without TLS
          tls = true;
          // What the client sent before the handshake is discarded: the
          // bytes of this piece after STARTTLS never run as commands.
          session.tlsStarted();
          break;
        case LoginSession::Event::CheckPassword: {
          if (!tls && !s.plaintextAllowed) std::abort();  // a password in the clear
          if (throttle && (step & 1)) {
            session.refuse("AUTHENTICATIONFAILED", "Too many failed logins");
            break;
          }
          bool ok = !refuseAll && session.user() == kUser && session.password() == kPassword;
          checkedOk = checkedOk || ok;
          session.passwordChecked(ok, ok ? std::string(kUser) : std::string());
          break;
        }
        case LoginSession::Event::AuthFailed:
          session.resume();
          break;
        case LoginSession::Event::LoggedIn: {
          if (!tls && !s.plaintextAllowed) std::abort();
          const std::string& who = session.authenticated();
          if (who == kUser) {
            if (!checkedOk) std::abort();  // logged in without a successful check
          } else if (who != "chal@example.org") {
            std::abort();
          }
          if (session.loginTag().empty()) std::abort();
          std::string pending = session.takePendingInput();
          if (pending.size() > in.size()) std::abort();
          closed = true;
          break;
        }
        case LoginSession::Event::Close:
          closed = true;
          break;
      }
    }
  }
  if (closed) {
    // Nothing more is said once the session is over.
    session.takeOutput();
    if (session.event() == LoginSession::Event::Close) {
      session.feed("a NOOP\r\nb LOGIN x y\r\n");
      if (session.hasOutput()) std::abort();
    }
  }
  return 0;
}
