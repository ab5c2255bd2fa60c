// Tests for the IMAP not-authenticated state (login_session.hpp): greeting
// and CAPABILITY by TLS state, LOGINDISABLED, STARTTLS discarding pipelined
// input, LOGIN and AUTHENTICATE (SASL-IR, challenges, "*", server-final),
// the hand-over data (tag, pending input), commands of other states, and
// hostile input. Every dialog is fed whole and one byte at a time.
#include "mrad/imap/login_session.hpp"

#include <catch2/catch.hpp>

#include "base/strings.hpp"

namespace yubin::mrad::imap {
namespace {

using Event = LoginSession::Event;

// A scripted SASL exchange: PLAIN-like (one response "user\0pass" checked
// by password), or "CHAL" with one challenge and a server-final message.
class ScriptedSasl : public SaslExchange {
 public:
  explicit ScriptedSasl(std::string mech) : mech_(std::move(mech)) {}
  SaslStep begin(std::optional<std::string_view> ir) override {
    if (!ir) return challenge("");
    return respond(*ir);
  }
  SaslStep respond(std::string_view r) override {
    if (mech_ == "CHAL") {
      if (!saidHello_) {
        saidHello_ = true;
        if (r != "hello") return challenge("say hello");
        return challenge("ok?");
      }
      if (r == "proof") {
        SaslStep s;
        s.kind = SaslStep::Kind::Success;
        s.authenticated = "carol@example.org";
        s.serverFinal = "v=final";
        return s;
      }
      SaslStep f;
      f.kind = SaslStep::Kind::Failure;
      f.user = "carol";
      return f;
    }
    size_t z = r.find('\0');
    SaslStep s;
    s.kind = SaslStep::Kind::CheckPassword;
    s.user = std::string(r.substr(0, z));
    s.password = z == std::string_view::npos ? "" : std::string(r.substr(z + 1));
    user_ = s.user;
    return s;
  }
  SaslStep passwordChecked(bool ok) override {
    SaslStep s;
    s.kind = ok ? SaslStep::Kind::Success : SaslStep::Kind::Failure;
    s.user = user_;
    if (ok) s.authenticated = user_ + "@example.org";
    return s;
  }

 private:
  SaslStep challenge(std::string c) {
    SaslStep s;
    s.kind = SaslStep::Kind::Challenge;
    s.challenge = std::move(c);
    return s;
  }
  std::string mech_;
  std::string user_;
  bool saidHello_ = false;
};

LoginSettings tlsSettings() {
  LoginSettings s;
  s.tlsActive = true;
  s.mechanisms = {"PLAIN", "CHAL"};
  return s;
}

LoginSettings plainSettings() {
  LoginSettings s;
  s.tlsAvailable = true;
  s.mechanisms = {"PLAIN", "CHAL"};
  return s;
}

SaslFactory scripted() {
  return [](std::string_view mech) -> std::unique_ptr<SaslExchange> {
    std::string m = toLower(mech);
    if (m == "plain") return std::make_unique<ScriptedSasl>("PLAIN");
    if (m == "chal") return std::make_unique<ScriptedSasl>("CHAL");
    return nullptr;
  };
}

// Feeds a dialog whole or byte by byte; stops feeding single bytes at the
// first event (what is left would wait in a real connection's buffer).
std::string feed(LoginSession& s, std::string_view input, bool bytewise) {
  std::string out = s.takeOutput();
  if (!bytewise) {
    s.feed(input);
    return out + s.takeOutput();
  }
  size_t i = 0;
  while (i < input.size() && s.event() == Event::None) {
    s.feed(input.substr(i++, 1));
    out += s.takeOutput();
  }
  if (i < input.size()) s.feed(input.substr(i));
  return out + s.takeOutput();
}

const std::string kBase = "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE LITERAL+";

}  // namespace

TEST_CASE("imap login: greeting and CAPABILITY follow the TLS state") {
  bool bytewise = GENERATE(false, true);
  SECTION("plaintext, STARTTLS available: LOGINDISABLED, no AUTH=") {
    LoginSession s(plainSettings(), scripted());
    s.start();
    std::string out = feed(s, "a1 CAPABILITY\r\n", bytewise);
    CHECK(out == "* OK [CAPABILITY " + kBase + " STARTTLS LOGINDISABLED] Yubin IMAP server ready\r\n"
                 "* CAPABILITY " + kBase + " STARTTLS LOGINDISABLED\r\na1 OK CAPABILITY completed\r\n");
  }
  SECTION("TLS active: mechanisms, no STARTTLS") {
    LoginSession s(tlsSettings(), scripted());
    s.start();
    std::string out = feed(s, "a1 capability\r\n", bytewise);
    CHECK(out == "* OK [CAPABILITY " + kBase + " AUTH=PLAIN AUTH=CHAL] Yubin IMAP server ready\r\n"
                 "* CAPABILITY " + kBase + " AUTH=PLAIN AUTH=CHAL\r\na1 OK CAPABILITY completed\r\n");
  }
  SECTION("trusted loopback without TLS: login allowed, STARTTLS still offered") {
    LoginSettings ls = plainSettings();
    ls.plaintextAllowed = true;
    LoginSession s(ls, scripted());
    std::string out = feed(s, "x CAPABILITY\r\n", bytewise);
    CHECK(out == "* CAPABILITY " + kBase + " STARTTLS AUTH=PLAIN AUTH=CHAL\r\nx OK CAPABILITY completed\r\n");
  }
  SECTION("no certificate: neither STARTTLS nor login") {
    LoginSession s(LoginSettings{}, scripted());
    std::string out = feed(s, "x CAPABILITY\r\ny STARTTLS\r\n", bytewise);
    CHECK(out == "* CAPABILITY " + kBase + " LOGINDISABLED\r\nx OK CAPABILITY completed\r\n"
                 "y BAD STARTTLS is not available\r\n");
  }
}

TEST_CASE("imap login: NOOP, ID, LOGOUT") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  std::string out = feed(s,
                         "n1 NOOP\r\ni1 ID (\"name\" \"imaplib\")\r\ni2 ID NIL\r\nz LOGOUT\r\n"
                         "after NOOP\r\n",
                         bytewise);
  CHECK(out == "n1 OK NOOP completed\r\n* ID (\"name\" \"Yubin\")\r\ni1 OK ID completed\r\n"
               "* ID (\"name\" \"Yubin\")\r\ni2 OK ID completed\r\n"
               "* BYE Logging out\r\nz OK LOGOUT completed\r\n");
  CHECK(s.event() == Event::Close);
  s.feed("more NOOP\r\n");
  CHECK(s.takeOutput().empty());
}

TEST_CASE("imap login: LOGIN and AUTHENTICATE refused without TLS on an untrusted listener") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(plainSettings(), scripted());
  std::string out = feed(s, "a LOGIN bob secret\r\nb AUTHENTICATE PLAIN\r\nc NOOP\r\n", bytewise);
  CHECK(out == "a NO [PRIVACYREQUIRED] LOGIN is disabled without TLS (use STARTTLS)\r\n"
               "b NO [PRIVACYREQUIRED] Authentication is disabled without TLS (use STARTTLS)\r\n"
               "c OK NOOP completed\r\n");
  CHECK(s.event() == Event::None);
  CHECK(s.password().empty());
}

TEST_CASE("imap login: STARTTLS discards pipelined input, then login is allowed") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(plainSettings(), scripted());
  std::string out = feed(s, "t STARTTLS\r\nx LOGIN bob secret\r\n", bytewise);
  CHECK(out == "t OK Begin TLS negotiation now\r\n");
  REQUIRE(s.event() == Event::StartTls);
  s.feed("y LOGIN mallory x\r\n");  // between OK and the handshake: dropped
  s.tlsStarted();
  CHECK(s.takeOutput().empty());
  CHECK(s.event() == Event::None);
  out = feed(s, "c CAPABILITY\r\nd STARTTLS\r\n", bytewise);
  CHECK(out == "* CAPABILITY " + kBase + " AUTH=PLAIN AUTH=CHAL\r\nc OK CAPABILITY completed\r\n"
               "d BAD TLS is already active\r\n");
  out = feed(s, "e LOGIN bob secret\r\n", bytewise);
  CHECK(out.empty());
  REQUIRE(s.event() == Event::CheckPassword);
  CHECK(s.user() == "bob");
}

TEST_CASE("imap login: LOGIN failure, retry, success with pipelined commands") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  std::string out = feed(s, "a1 LOGIN bob wrong\r\n", bytewise);
  CHECK(out.empty());
  REQUIRE(s.event() == Event::CheckPassword);
  CHECK(s.user() == "bob");
  CHECK(s.password() == "wrong");
  s.passwordChecked(false);
  CHECK(s.password().empty());
  REQUIRE(s.event() == Event::AuthFailed);
  CHECK(s.failedUser() == "bob");
  CHECK(s.takeOutput() == "a1 NO [AUTHENTICATIONFAILED] Authentication failed\r\n");
  s.resume();
  // Quoted strings and a synchronising literal for the password.
  out = feed(s, "a2 LOGIN \"bob@example.org\" {6}\r\n", bytewise);
  CHECK(out == "+ Ready for literal\r\n");
  out = feed(s, "se\"cr\\\r\na3 SELECT INBOX\r\na4 FETCH 1:* (FLAGS)\r\n", bytewise);
  CHECK(out.empty());
  REQUIRE(s.event() == Event::CheckPassword);
  CHECK(s.user() == "bob@example.org");
  CHECK(s.password() == "se\"cr\\");
  s.passwordChecked(true, "bob@example.org");
  REQUIRE(s.event() == Event::LoggedIn);
  CHECK(s.takeOutput().empty());  // the mail process answers a2
  CHECK(s.authenticated() == "bob@example.org");
  CHECK(s.loginTag() == "a2");
  CHECK(s.method() == "login");
  CHECK(s.takePendingInput() == "a3 SELECT INBOX\r\na4 FETCH 1:* (FLAGS)\r\n");
}

TEST_CASE("imap login: input that arrives during the password check is handed over") {
  LoginSession s(tlsSettings(), scripted());
  s.feed("a LOGIN bob pw\r\nb SEL");
  REQUIRE(s.event() == Event::CheckPassword);
  s.feed("ECT INBOX\r\n");
  s.passwordChecked(true, "bob@example.org");
  REQUIRE(s.event() == Event::LoggedIn);
  CHECK(s.takePendingInput() == "b SELECT INBOX\r\n");
}

TEST_CASE("imap login: AUTHENTICATE with SASL-IR, password checked by the glue") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  std::string ir = base64Encode(std::string("bob\0secret", 10));
  std::string out = feed(s, "A01 AUTHENTICATE plain " + ir + "\r\nA02 LIST \"\" *\r\n", bytewise);
  CHECK(out.empty());
  REQUIRE(s.event() == Event::CheckPassword);
  CHECK(s.user() == "bob");
  CHECK(s.password() == "secret");
  s.passwordChecked(true);
  REQUIRE(s.event() == Event::LoggedIn);
  CHECK(s.authenticated() == "bob@example.org");
  CHECK(s.method() == "plain");
  CHECK(s.loginTag() == "A01");
  CHECK(s.takePendingInput() == "A02 LIST \"\" *\r\n");
}

TEST_CASE("imap login: AUTHENTICATE challenges, cancel, failure, server-final data") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  std::string out = feed(s, "a AUTHENTICATE PLAIN\r\n*\r\nb NOOP\r\n", bytewise);
  CHECK(out == "+ \r\na BAD Authentication cancelled\r\nb OK NOOP completed\r\n");
  // SASL-IR "=" is an empty initial response (not "hello": asked again).
  out = feed(s, "c AUTHENTICATE CHAL =\r\n" + base64Encode("wrong") + "\r\n", bytewise);
  CHECK(out == "+ " + base64Encode("say hello") +
                   "\r\nc NO [AUTHENTICATIONFAILED] Authentication failed\r\n");
  REQUIRE(s.event() == Event::AuthFailed);
  CHECK(s.failedUser() == "carol");
  s.resume();
  out = feed(s, "d AUTHENTICATE CHAL " + base64Encode("hello") + "\r\n" + base64Encode("proof") +
                    "\r\n\r\ne NOOP\r\n",
             bytewise);
  CHECK(out == "+ " + base64Encode("ok?") + "\r\n+ " + base64Encode("v=final") + "\r\n");
  REQUIRE(s.event() == Event::LoggedIn);
  CHECK(s.authenticated() == "carol@example.org");
  CHECK(s.loginTag() == "d");
  CHECK(s.method() == "chal");
  CHECK(s.takePendingInput() == "e NOOP\r\n");
}

TEST_CASE("imap login: bad SASL data, a non-empty answer to server-final, unknown mechanisms") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  std::string out = feed(s, "a AUTHENTICATE CHAL\r\nnot base64!\r\nb NOOP\r\n", bytewise);
  CHECK(out == "+ \r\na BAD Invalid base64 data, authentication cancelled\r\nb OK NOOP completed\r\n");
  out = feed(s, "c AUTHENTICATE PLAIN A===\r\nd AUTHENTICATE CRAM-MD5\r\ne AUTHENTICATE GSSAPI =\r\n",
             bytewise);
  CHECK(out == "c BAD bad initial response\r\n"
               "d NO Unsupported authentication mechanism\r\n"
               "e NO Unsupported authentication mechanism\r\n");
  out = feed(s, "f AUTHENTICATE CHAL " + base64Encode("hello") + "\r\n" + base64Encode("proof") +
                    "\r\n" + base64Encode("extra") + "\r\n",
             bytewise);
  CHECK(out == "+ " + base64Encode("ok?") + "\r\n+ " + base64Encode("v=final") +
                   "\r\nf NO [AUTHENTICATIONFAILED] Authentication failed\r\n");
  CHECK(s.event() == Event::AuthFailed);
}

TEST_CASE("imap login: an over-long SASL response line cancels the exchange") {
  LoginSettings ls = tlsSettings();
  ls.parser.maxLine = 100;
  LoginSession s(ls, scripted());
  std::string out = feed(s, "a AUTHENTICATE CHAL\r\n" + std::string(500, 'A') + "\r\nb NOOP\r\n", false);
  CHECK(out == "+ \r\na BAD Authentication response too long, cancelled\r\nb OK NOOP completed\r\n");
  CHECK(s.event() == Event::None);
}

TEST_CASE("imap login: ENABLE and commands of the other states are refused") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  struct Case {
    const char* line;
    const char* reply;
  };
  const Case cases[] = {
      {"e ENABLE IMAP4rev2", "e BAD ENABLE is only valid after login"},
      {"s SELECT INBOX", "s BAD SELECT is not valid before login"},
      {"x EXAMINE INBOX", "x BAD EXAMINE is not valid before login"},
      {"l LIST \"\" *", "l BAD LIST is not valid before login"},
      {"f UID FETCH 1:* FLAGS", "f BAD FETCH is not valid before login"},
      {"i IDLE", "i BAD IDLE is not valid before login"},
      {"c CLOSE", "c BAD CLOSE is not valid before login"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    std::string out = feed(s, std::string(c.line) + "\r\n", bytewise);
    CHECK(out == std::string(c.reply) + "\r\n");
  }
  CHECK(s.event() == Event::None);
}

TEST_CASE("imap login: hostile input gets BAD and the session goes on") {
  bool bytewise = GENERATE(false, true);
  LoginSettings ls = tlsSettings();
  ls.maxBadCommands = 100;
  LoginSession s(ls, scripted());
  std::string out = feed(s, "a1 FROB\r\n", bytewise);
  CHECK(out.rfind("a1 BAD ", 0) == 0);
  out = feed(s, std::string("a2 LOGIN \"b\0b\" x\r\n", 18), bytewise);
  CHECK(out.rfind("a2 BAD ", 0) == 0);
  out = feed(s, "a3 LOGIN {100000}\r\n", bytewise);
  CHECK(out.rfind("a3 BAD [TOOBIG] ", 0) == 0);
  out = feed(s, "\r\n", bytewise);
  CHECK(out.rfind("* BAD ", 0) == 0);
  out = feed(s, "a4 " + std::string(10000, 'x') + "\r\na5 NOOP\r\n", bytewise);
  CHECK(out.rfind("a4 BAD [TOOBIG] ", 0) == 0);
  CHECK(out.find("a5 OK NOOP completed\r\n") != std::string::npos);
  CHECK(s.event() == Event::None);
}

TEST_CASE("imap login: an APPEND before login is refused without buffering the message") {
  LoginSession s(tlsSettings(), scripted());
  std::string out = feed(s, "a APPEND INBOX {10000000}\r\nb NOOP\r\n", false);
  CHECK(out == "a NO [TOOBIG] message too large\r\nb OK NOOP completed\r\n");
  // A huge non-synchronising literal: only an abuser sends it; closed.
  LoginSession t(tlsSettings(), scripted());
  out = feed(t, "a APPEND INBOX {10000000+}\r\nxxxx", false);
  CHECK(out.find("a NO [TOOBIG] ") == 0);
  CHECK(out.find("* BYE ") != std::string::npos);
  CHECK(t.event() == Event::Close);
}

TEST_CASE("imap login: too many bad commands close the session") {
  LoginSettings ls = tlsSettings();
  ls.maxBadCommands = 3;
  LoginSession s(ls, scripted());
  std::string out = feed(s, "a FROB\r\nb FROB\r\nc FROB\r\nd NOOP\r\n", false);
  CHECK(out.find("c BAD ") != std::string::npos);
  CHECK(out.substr(out.size() - 50).find("* BYE Too many bad commands, closing connection\r\n") !=
        std::string::npos);
  CHECK(out.find("d OK") == std::string::npos);
  CHECK(s.event() == Event::Close);
}

TEST_CASE("imap login: the glue may refuse an attempt") {
  LoginSession s(tlsSettings(), scripted());
  feed(s, "a LOGIN bob x\r\n", false);
  REQUIRE(s.event() == Event::CheckPassword);
  s.refuse("UNAVAILABLE", "Server busy, try again later");
  CHECK(s.event() == Event::Close);
  CHECK(s.password().empty());
  CHECK(s.takeOutput() ==
        "a NO [UNAVAILABLE] Server busy, try again later\r\n* BYE Server busy, try again later\r\n");

  // After a failure (lockout): the NO is already there, only BYE follows.
  LoginSession t(tlsSettings(), scripted());
  feed(t, "a LOGIN bob x\r\n", false);
  t.passwordChecked(false);
  REQUIRE(t.event() == Event::AuthFailed);
  t.refuse("AUTHENTICATIONFAILED", "Too many failed logins, try again later");
  CHECK(t.takeOutput() == "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
                          "* BYE Too many failed logins, try again later\r\n");
}

}  // namespace yubin::mrad::imap
