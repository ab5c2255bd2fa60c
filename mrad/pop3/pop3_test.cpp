// Tests of the POP3 state machines: the line reader, the command splitter,
// the wire encoder, the AUTHORIZATION state (LoginSession, with a scripted
// SASL exchange) and the TRANSACTION/UPDATE states (MailSession over a
// MemoryFolder). Every command in every state; dialogs run whole and one
// byte at a time and must give the same output; hostile input.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.hpp"
#include "base/strings.hpp"
#include "mrad/pop3/login_session.hpp"
#include "mrad/pop3/mail_session.hpp"
#include "store/maildir_folder.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::mrad::pop3;
using Event = LoginSession::Event;

namespace {

// ---- helpers -------------------------------------------------------------

std::string encodeAll(std::string_view in, std::optional<uint64_t> top, bool bytewise) {
  WireEncoder e(top);
  std::string out;
  if (bytewise) {
    for (char c : in)
      if (!e.encode(std::string_view(&c, 1), out)) break;
  } else {
    e.encode(in, out);
  }
  e.finish(out);
  return out;
}

// Feeds input (whole or byte by byte), pumping transfers, and returns all
// output.
std::string drive(MailSession& s, std::string_view input, bool bytewise) {
  std::string out;
  auto pump = [&] {
    out += s.takeOutput();
    while (s.transferring()) {
      s.produce(5);
      out += s.takeOutput();
    }
  };
  if (bytewise) {
    for (char c : input) {
      s.feed(std::string_view(&c, 1));
      pump();
    }
  } else {
    s.feed(input);
    pump();
  }
  return out;
}

// Feeds in to r whole or a byte at a time; returns the lines it gives,
// "<long>" for each over-long one.
std::vector<std::string> readLines(LineReader& r, std::string_view in, bool bytewise) {
  std::vector<std::string> got;
  std::string line;
  auto drain = [&] {
    for (;;) {
      auto k = r.next(&line);
      if (k == LineReader::Kind::None) return;
      got.push_back(k == LineReader::Kind::TooLong ? "<long>" : line);
    }
  };
  if (bytewise) {
    for (char c : in) {
      r.feed(std::string_view(&c, 1));
      drain();
    }
  } else {
    r.feed(in);
    drain();
  }
  return got;
}

std::vector<store::MemoryFolder::Item> sample() {
  return {
      {"uid-1", "Subject: one\n\nline 1\n.dot line\n..two dots\n"},
      {"uid-2", "Subject: two\r\nX: y\r\n\r\nbody a\r\nbody b\r\nbody c\r\n"},
      {"uid-3", "Subject: three\n\nFrom the start\nno final newline"},
  };
}

// A scripted SASL exchange: PLAIN-like (one response "user\0pass" checked
// by password), or a "CHAL" mechanism with one challenge and a server-final.
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

SaslFactory scripted() {
  return [](std::string_view mech) -> std::unique_ptr<SaslExchange> {
    std::string m = toLower(mech);
    if (m == "plain") return std::make_unique<ScriptedSasl>("PLAIN");
    if (m == "chal") return std::make_unique<ScriptedSasl>("CHAL");
    return nullptr;
  };
}

// Feeds a login dialog whole or byte by byte; stops at the first event.
std::string feedLogin(LoginSession& s, std::string_view input, bool bytewise) {
  std::string out = s.takeOutput();
  if (!bytewise) {
    s.feed(input);
    return out + s.takeOutput();
  }
  size_t i = 0;
  while (i < input.size() && s.event() == Event::None) s.feed(input.substr(i++, 1));
  // What was not fed yet would have been buffered by a real connection.
  if (i < input.size()) s.feed(input.substr(i));
  return out + s.takeOutput();
}

}  // namespace

// ---- LineReader, parseCommand, parseNumber --------------------------------

TEST_CASE("LineReader splits CRLF and LF lines, whole and byte at a time") {
  bool bytewise = GENERATE(false, true);
  LineReader r(16);
  CHECK(readLines(r, "A\r\nB\nC D\r\n\r\npartial", bytewise) ==
        std::vector<std::string>{"A", "B", "C D", ""});
  CHECK(r.takeRest() == "partial");
  CHECK(r.buffered() == 0);
}

TEST_CASE("LineReader reports an over-long line once and skips it") {
  bool bytewise = GENERATE(false, true);
  LineReader r(8);
  std::string in = std::string(20, 'x') + "\r\nNOOP\r\n" + std::string(9, 'y') + "\nok\n";
  CHECK(readLines(r, in, bytewise) == std::vector<std::string>{"<long>", "NOOP", "<long>", "ok"});
}

TEST_CASE("LineReader: the limit counts the line end; exactly the limit is accepted") {
  bool bytewise = GENERATE(false, true);
  LineReader r(8);
  std::string in = "123456\r\n1234567\r\n1234567\n12345678\nA\r\n";
  CHECK(readLines(r, in, bytewise) ==
        std::vector<std::string>{"123456", "<long>", "1234567", "<long>", "A"});
}

TEST_CASE("parseCommand and parseNumber") {
  Command c = parseCommand("retr 1");
  CHECK(c.verb == "RETR");
  CHECK(c.args == std::vector<std::string>{"1"});
  c = parseCommand("PASS my secret  pw");
  CHECK(c.rest == "my secret  pw");
  CHECK(c.args.size() == 4);  // "my", "secret", "", "pw"
  c = parseCommand("");
  CHECK(c.verb.empty());
  CHECK(c.args.empty());
  c = parseCommand("TOP 1 ");
  CHECK(c.args == std::vector<std::string>{"1", ""});
  struct N {
    std::string in;
    std::optional<uint64_t> want;
  };
  auto n = GENERATE(N{"1", 1}, N{"007", 7}, N{"999999999", 999999999}, N{"", std::nullopt},
                    N{"-1", std::nullopt}, N{"+1", std::nullopt}, N{"1x", std::nullopt},
                    N{" 1", std::nullopt}, N{"1234567890", std::nullopt});
  CHECK(parseNumber(n.in) == n.want);
}

// ---- WireEncoder -------------------------------------------------------------

TEST_CASE("WireEncoder: CRLF, dot-stuffing, TOP limits, whole and byte at a time") {
  struct Case {
    std::string in;
    std::optional<uint64_t> top;
    std::string want;
  };
  auto c = GENERATE(
      Case{"", std::nullopt, ".\r\n"}, Case{"a\n", std::nullopt, "a\r\n.\r\n"},
      Case{"a\r\nb\r\n", std::nullopt, "a\r\nb\r\n.\r\n"},
      Case{"no end", std::nullopt, "no end\r\n.\r\n"},
      Case{".\n..\n.x\nx.\n", std::nullopt, "..\r\n...\r\n..x\r\nx.\r\n.\r\n"},
      Case{"a\rb\n", std::nullopt, "a\rb\r\n.\r\n"},
      Case{"From x\n>From y\n", std::nullopt, "From x\r\n>From y\r\n.\r\n"},
      Case{"H: 1\n\nb1\nb2\nb3\n", uint64_t{0}, "H: 1\r\n\r\n.\r\n"},
      Case{"H: 1\n\nb1\nb2\nb3\n", uint64_t{2}, "H: 1\r\n\r\nb1\r\nb2\r\n.\r\n"},
      Case{"H: 1\r\n\r\n.b1\r\nb2\r\n", uint64_t{1}, "H: 1\r\n\r\n..b1\r\n.\r\n"},
      Case{"H: 1\n\nb1\n", uint64_t{5}, "H: 1\r\n\r\nb1\r\n.\r\n"},
      Case{"H: 1\nH: 2\n", uint64_t{0}, "H: 1\r\nH: 2\r\n.\r\n"},
      Case{"H: 1\n\nlast", uint64_t{1}, "H: 1\r\n\r\nlast\r\n.\r\n"});
  CHECK(encodeAll(c.in, c.top, false) == c.want);
  CHECK(encodeAll(c.in, c.top, true) == c.want);
}

// ---- LoginSession ------------------------------------------------------------

TEST_CASE("LoginSession: greeting and CAPA depend on TLS") {
  LoginSettings plain;
  plain.tlsAvailable = true;
  plain.mechanisms = {"PLAIN"};
  LoginSession s(plain);
  s.start();
  std::string out = feedLogin(s, "CAPA\r\n", false);
  CHECK(out.rfind("+OK Yubin POP3 server ready\r\n", 0) == 0);
  CHECK(out.find("STLS\r\n") != std::string::npos);
  CHECK(out.find("USER\r\n") == std::string::npos);
  CHECK(out.find("SASL") == std::string::npos);
  CHECK(out.find("RESP-CODES\r\n") != std::string::npos);
  CHECK(out.substr(out.size() - 3) == ".\r\n");

  LoginSession t(tlsSettings(), scripted());
  out = feedLogin(t, "capa\r\n", false);
  CHECK(out.find("USER\r\n") != std::string::npos);
  CHECK(out.find("SASL PLAIN CHAL\r\n") != std::string::npos);
  CHECK(out.find("STLS") == std::string::npos);
}

TEST_CASE("LoginSession: no plaintext login without TLS unless trusted") {
  LoginSettings plain;
  plain.tlsAvailable = true;
  plain.mechanisms = {"PLAIN"};
  LoginSession s(plain, scripted());
  std::string out = feedLogin(s, "USER bob\r\nPASS x\r\nAUTH PLAIN AGJvYgB4\r\n", false);
  CHECK(out ==
        "-ERR [AUTH] Plaintext authentication is not allowed without TLS (use STLS)\r\n"
        "-ERR USER first\r\n"
        "-ERR [AUTH] Authentication is not allowed without TLS (use STLS)\r\n");
  CHECK(s.event() == Event::None);

  plain.plaintextAllowed = true;
  LoginSession t(plain);
  out = feedLogin(t, "USER bob\r\nPASS x\r\n", false);
  CHECK(out == "+OK Send your password\r\n");
  CHECK(t.event() == Event::CheckPassword);
}

TEST_CASE("LoginSession: STLS discards pipelined input and enables login") {
  bool bytewise = GENERATE(false, true);
  LoginSettings plain;
  plain.tlsAvailable = true;
  LoginSession s(plain);
  std::string out = feedLogin(s, "STLS\r\nUSER injected\r\n", bytewise);
  CHECK(out == "+OK Begin TLS negotiation\r\n");
  REQUIRE(s.event() == Event::StartTls);
  s.tlsStarted();
  CHECK(s.event() == Event::None);
  CHECK(s.takeOutput().empty());  // the injected USER was dropped
  out = feedLogin(s, "STLS\r\nUSER bob\r\nPASS pw\r\n", bytewise);
  CHECK(out == "-ERR Already using TLS\r\n+OK Send your password\r\n");
  REQUIRE(s.event() == Event::CheckPassword);
  CHECK(s.user() == "bob");
  CHECK(s.password() == "pw");

  LoginSession none{LoginSettings{}};
  CHECK(feedLogin(none, "STLS\r\n", bytewise) == "-ERR TLS is not available\r\n");
  CHECK(feedLogin(none, "STLS now\r\n", bytewise) == "-ERR STLS takes no argument\r\n");
}

TEST_CASE("LoginSession: USER/PASS failure, retry, success with pipelined input") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings());
  std::string out = feedLogin(s, "USER bob\r\nPASS pass word\r\nUSER bob\r\nPASS right\r\nSTAT\r\nLIST 1\r\n",
                              bytewise);
  CHECK(out == "+OK Send your password\r\n");
  REQUIRE(s.event() == Event::CheckPassword);
  CHECK(s.user() == "bob");
  CHECK(s.password() == "pass word");
  s.passwordChecked(false);
  CHECK(s.password().empty());
  CHECK(s.event() == Event::AuthFailed);
  CHECK(s.failedUser() == "bob");
  CHECK(s.takeOutput() == "-ERR [AUTH] Authentication failed\r\n");
  s.resume();
  CHECK(s.takeOutput() == "+OK Send your password\r\n");
  REQUIRE(s.event() == Event::CheckPassword);
  CHECK(s.password() == "right");
  s.passwordChecked(true, "bob@example.org");
  REQUIRE(s.event() == Event::LoggedIn);
  CHECK(s.authenticated() == "bob@example.org");
  CHECK(s.method() == "USER");
  CHECK(s.takeOutput().empty());  // the mail process answers
  CHECK(s.takePendingInput() == "STAT\r\nLIST 1\r\n");
}

TEST_CASE("LoginSession: every other command in the AUTHORIZATION state") {
  struct Case {
    std::string in, want;
  };
  auto c = GENERATE(
      Case{"PASS x\r\n", "-ERR USER first\r\n"}, Case{"USER\r\n", "-ERR Usage: USER name\r\n"},
      Case{"USER a b\r\n", "-ERR Usage: USER name\r\n"},
      Case{"USER a\r\nPASS\r\n", "+OK Send your password\r\n-ERR Usage: PASS password\r\n"},
      Case{"APOP bob 0123\r\n", "-ERR APOP is not supported\r\n"},
      Case{"STAT\r\n", "-ERR Not logged in\r\n"}, Case{"LIST\r\n", "-ERR Not logged in\r\n"},
      Case{"RETR 1\r\n", "-ERR Not logged in\r\n"}, Case{"DELE 1\r\n", "-ERR Not logged in\r\n"},
      Case{"NOOP\r\n", "-ERR Not logged in\r\n"}, Case{"RSET\r\n", "-ERR Not logged in\r\n"},
      Case{"TOP 1 1\r\n", "-ERR Not logged in\r\n"}, Case{"UIDL\r\n", "-ERR Not logged in\r\n"},
      Case{"XYZZY\r\n", "-ERR Unknown command\r\n"}, Case{"\r\n", "-ERR Empty command\r\n"},
      Case{"CAPA x\r\n", "-ERR CAPA takes no argument\r\n"},
      Case{"AUTH\r\n", "+OK Mechanisms follow\r\nPLAIN\r\nCHAL\r\n.\r\n"},
      Case{"AUTH FOO\r\n", "-ERR Unsupported authentication mechanism\r\n"},
      Case{"AUTH PLAIN !!!\r\n", "-ERR Invalid base64 data\r\n"},
      Case{"AUTH PLAIN a b\r\n", "-ERR Usage: AUTH mechanism [initial-response]\r\n"},
      Case{"QUIT\r\n", "+OK Bye\r\n"});
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  CHECK(feedLogin(s, c.in, bytewise) == c.want);
  CHECK(s.event() == (c.in == "QUIT\r\n" ? Event::Close : Event::None));
}

TEST_CASE("LoginSession: too many bad commands and over-long lines close the session") {
  LoginSettings st = tlsSettings();
  st.limits.maxBadCommands = 3;
  st.limits.maxLine = 64;
  LoginSession s(st);
  std::string out = feedLogin(s, "X\r\n" + std::string(100, 'A') + "\r\nY\r\nQUIT\r\n", false);
  CHECK(out ==
        "-ERR Unknown command\r\n-ERR Line too long\r\n"
        "-ERR Too many bad commands, closing connection\r\n");
  CHECK(s.event() == Event::Close);
  // Binary garbage and NULs are just unknown commands.
  LoginSession g(tlsSettings());
  out = feedLogin(g, std::string("\0\xff\x01 x\r\n", 7), false);
  CHECK(out == "-ERR Unknown command\r\n");
}

TEST_CASE("LoginSession: an over-long SASL response cancels the exchange") {
  bool bytewise = GENERATE(false, true);
  LoginSettings st = tlsSettings();
  st.limits.maxLine = 32;
  LoginSession s(st, scripted());
  // "QUIT" is valid base64 too: answered as a command, the exchange is over.
  std::string out =
      feedLogin(s, "AUTH CHAL\r\n" + std::string(40, 'A') + "\r\nQUIT\r\n", bytewise);
  CHECK(out == "+ \r\n-ERR Line too long\r\n+OK Bye\r\n");
  CHECK(s.event() == Event::Close);
  CHECK(s.badCommands() == 1);
}

TEST_CASE("LoginSession: AUTH with an initial response, password checked by the glue") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  std::string ir = base64Encode(std::string("bob\0secret", 10));
  std::string out = feedLogin(s, "AUTH PLAIN " + ir + "\r\nRETR 1\r\n", bytewise);
  CHECK(out.empty());
  REQUIRE(s.event() == Event::CheckPassword);
  CHECK(s.user() == "bob");
  CHECK(s.password() == "secret");
  s.passwordChecked(true);
  REQUIRE(s.event() == Event::LoggedIn);
  CHECK(s.authenticated() == "bob@example.org");
  CHECK(s.method() == "plain");
  CHECK(s.takePendingInput() == "RETR 1\r\n");
}

TEST_CASE("LoginSession: AUTH challenges, cancel, failure, server-final data") {
  bool bytewise = GENERATE(false, true);
  LoginSession s(tlsSettings(), scripted());
  std::string out = feedLogin(s, "AUTH PLAIN\r\n*\r\n", bytewise);
  CHECK(out == "+ \r\n-ERR Authentication cancelled\r\n");
  out = feedLogin(s, "AUTH CHAL\r\n" + base64Encode("hello") + "\r\n" + base64Encode("wrong") + "\r\n",
                  bytewise);
  CHECK(out == "+ \r\n+ " + base64Encode("ok?") + "\r\n-ERR [AUTH] Authentication failed\r\n");
  REQUIRE(s.event() == Event::AuthFailed);
  CHECK(s.failedUser() == "carol");
  s.resume();
  out = feedLogin(s, "AUTH CHAL " + base64Encode("hello") + "\r\n" + base64Encode("proof") +
                         "\r\n\r\nNOOP\r\n",
                  bytewise);
  CHECK(out == "+ " + base64Encode("ok?") + "\r\n+ " + base64Encode("v=final") + "\r\n");
  REQUIRE(s.event() == Event::LoggedIn);
  CHECK(s.authenticated() == "carol@example.org");
  CHECK(s.takePendingInput() == "NOOP\r\n");

  LoginSession t(tlsSettings(), scripted());
  out = feedLogin(t, "AUTH CHAL\r\nnot base64!\r\n", bytewise);
  CHECK(out == "+ " + base64Encode("") + "\r\n-ERR Invalid base64 data, authentication cancelled\r\n");
  CHECK(t.event() == Event::None);
}

TEST_CASE("LoginSession: the glue may refuse an attempt") {
  LoginSession s(tlsSettings());
  feedLogin(s, "USER bob\r\nPASS x\r\n", false);
  REQUIRE(s.event() == Event::CheckPassword);
  s.refuse(errCode(kAuth, "Too many failures, try later"));
  CHECK(s.event() == Event::Close);
  CHECK(s.password().empty());
  CHECK(s.takeOutput() == "-ERR [AUTH] Too many failures, try later\r\n");
}

// ---- MailSession -------------------------------------------------------------

TEST_CASE("MailSession: STAT, LIST, UIDL, NOOP, CAPA") {
  bool bytewise = GENERATE(false, true);
  store::MemoryFolder f(sample());
  MailSession s(f, {});
  s.start("");
  uint64_t s1 = f.messages()[0].size, s2 = f.messages()[1].size, s3 = f.messages()[2].size;
  CHECK(s1 == 47);
  std::string total = std::to_string(s1 + s2 + s3);
  std::string out = drive(s, "STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\nNOOP\r\nCAPA\r\n", bytewise);
  CHECK(out == "+OK Logged in, 3 messages (" + total + " octets)\r\n"
               "+OK 3 " + total + "\r\n"
               "+OK 3 messages (" + total + " octets)\r\n1 47\r\n2 " + std::to_string(s2) +
                   "\r\n3 " + std::to_string(s3) + "\r\n.\r\n"
               "+OK 2 " + std::to_string(s2) + "\r\n"
               "+OK Unique ids follow\r\n1 uid-1\r\n2 uid-2\r\n3 uid-3\r\n.\r\n"
               "+OK 3 uid-3\r\n+OK\r\n"
               "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
               "PIPELINING\r\nIMPLEMENTATION Yubin\r\n.\r\n");
}

TEST_CASE("MailSession: RETR and TOP send exact, stuffed bytes; RETR marks seen") {
  bool bytewise = GENERATE(false, true);
  store::MemoryFolder f(sample());
  MailSession s(f, {});
  s.start("");
  std::string out = drive(s, "RETR 1\r\nTOP 2 1\r\nRETR 3\r\nTOP 1 0\r\n", bytewise);
  CHECK(out == "+OK Logged in, 3 messages (" +
                   std::to_string(f.messages()[0].size + f.messages()[1].size +
                                  f.messages()[2].size) +
                   " octets)\r\n"
                   "+OK 47 octets\r\nSubject: one\r\n\r\nline 1\r\n..dot line\r\n...two dots\r\n.\r\n"
                   "+OK Top of message follows\r\nSubject: two\r\nX: y\r\n\r\nbody a\r\n.\r\n"
                   "+OK " + std::to_string(f.messages()[2].size) +
                   " octets\r\nSubject: three\r\n\r\nFrom the start\r\nno final newline\r\n.\r\n"
                   "+OK Top of message follows\r\nSubject: one\r\n\r\n.\r\n");
  CHECK(f.seenFlags() == std::vector<bool>{true, false, true});
  CHECK(s.stats().retrieved == 2);
  CHECK(s.stats().tops == 2);
}

TEST_CASE("MailSession: the size in LIST is the number of octets RETR sends before stuffing") {
  store::MemoryFolder f(sample());
  MailSession s(f, {});
  s.start("");
  (void)s.takeOutput();
  for (size_t i = 0; i < 3; ++i) {
    std::string out = drive(s, "RETR " + std::to_string(i + 1) + "\r\n", false);
    size_t body = out.find("\r\n") + 2;
    std::string msg = out.substr(body, out.size() - body - 3);  // without ".\r\n"
    // Undo the stuffing as a client does.
    std::string unstuffed;
    size_t pos = 0;
    while (pos < msg.size()) {
      size_t nl = msg.find("\r\n", pos);
      std::string line = msg.substr(pos, nl + 2 - pos);
      if (line[0] == '.') line.erase(0, 1);
      unstuffed += line;
      pos = nl + 2;
    }
    // The last message lacks a final newline: the CRLF added before the dot
    // is not part of its size.
    uint64_t extra = i == 2 ? 2 : 0;
    CHECK(unstuffed.size() == f.messages()[i].size + extra);
  }
}

TEST_CASE("MailSession: DELE marks, RSET unmarks, QUIT expunges") {
  bool bytewise = GENERATE(false, true);
  store::MemoryFolder f(sample());
  MailSession s(f, {});
  s.start("");
  (void)s.takeOutput();
  std::string out = drive(s, "DELE 1\r\nDELE 1\r\nRETR 1\r\nLIST 1\r\nSTAT\r\nRSET\r\nDELE 2\r\n"
                             "LIST\r\nQUIT\r\nNOOP\r\n",
                          bytewise);
  uint64_t s1 = f.messages()[0].size, s2 = f.messages()[1].size, s3 = f.messages()[2].size;
  CHECK(out == "+OK Message 1 deleted\r\n-ERR Message 1 already deleted\r\n"
               "-ERR Message 1 already deleted\r\n-ERR Message 1 already deleted\r\n"
               "+OK 2 " + std::to_string(s2 + s3) + "\r\n"
               "+OK Maildrop has 3 messages (" + std::to_string(s1 + s2 + s3) + " octets)\r\n"
               "+OK Message 2 deleted\r\n"
               "+OK 2 messages (" + std::to_string(s1 + s3) + " octets)\r\n1 " +
                   std::to_string(s1) + "\r\n3 " + std::to_string(s3) + "\r\n.\r\n"
               "+OK Bye, 1 messages deleted\r\n");
  CHECK(s.closing());
  CHECK(s.updated());
  CHECK(s.stats().deleted == 1);
  CHECK(f.remaining() == std::vector<std::string>{sample()[0].data, sample()[2].data});
}

TEST_CASE("MailSession: a session that ends without QUIT removes nothing") {
  store::MemoryFolder f(sample());
  {
    MailSession s(f, {});
    s.start("DELE 1\r\nDELE 2\r\nRETR 3\r\n");
    while (s.transferring()) s.produce(3);  // the client vanishes after this
    CHECK_FALSE(s.updated());
  }
  CHECK(f.remaining().size() == 3);
}

TEST_CASE("MailSession: bad arguments and commands of other states") {
  struct Case {
    std::string in, want;
  };
  auto c = GENERATE(
      Case{"RETR\r\n", "-ERR Usage: RETR message\r\n"},
      Case{"RETR 0\r\n", "-ERR No such message\r\n"},
      Case{"RETR 4\r\n", "-ERR No such message\r\n"},
      Case{"RETR -1\r\n", "-ERR No such message\r\n"},
      Case{"RETR 1x\r\n", "-ERR No such message\r\n"},
      Case{"RETR 99999999999999999999\r\n", "-ERR No such message\r\n"},
      Case{"DELE\r\n", "-ERR Usage: DELE message\r\n"},
      Case{"TOP 1\r\n", "-ERR Usage: TOP message lines\r\n"},
      Case{"TOP 1 x\r\n", "-ERR Usage: TOP message lines\r\n"},
      Case{"LIST 1 2\r\n", "-ERR Usage: LIST [message]\r\n"},
      Case{"UIDL 9\r\n", "-ERR No such message\r\n"},
      Case{"STAT 1\r\n", "-ERR STAT takes no argument\r\n"},
      Case{"NOOP 1\r\n", "-ERR NOOP takes no argument\r\n"},
      Case{"RSET 1\r\n", "-ERR RSET takes no argument\r\n"},
      Case{"QUIT now\r\n", "-ERR QUIT takes no argument\r\n"},
      Case{"USER bob\r\n", "-ERR Already logged in\r\n"},
      Case{"PASS x\r\n", "-ERR Already logged in\r\n"},
      Case{"AUTH PLAIN\r\n", "-ERR Already logged in\r\n"},
      Case{"STLS\r\n", "-ERR Already logged in\r\n"},
      Case{"APOP a b\r\n", "-ERR Already logged in\r\n"},
      Case{"FOO\r\n", "-ERR Unknown command\r\n"}, Case{"\r\n", "-ERR Empty command\r\n"});
  bool bytewise = GENERATE(false, true);
  store::MemoryFolder f(sample());
  MailSession s(f, {});
  s.start("");
  (void)s.takeOutput();
  CHECK(drive(s, c.in, bytewise) == c.want);
  CHECK_FALSE(s.closing());
}

TEST_CASE("MailSession: over-long lines count as bad commands; a line of exactly the limit is served") {
  bool bytewise = GENERATE(false, true);
  store::MemoryFolder f(sample());
  MailSettings st;
  st.limits.maxLine = 16;
  st.limits.maxBadCommands = 3;
  MailSession s(f, st);
  s.start("");
  (void)s.takeOutput();
  uint64_t total = f.messages()[0].size + f.messages()[1].size + f.messages()[2].size;
  CHECK(drive(s,
              std::string(30, 'A') + "\r\nSTAT\r\nUIDL 000000001\r\n" + std::string(17, 'B') +
                  "\r\nX\r\nNOOP\r\n",
              bytewise) ==
        "-ERR Line too long\r\n+OK 3 " + std::to_string(total) +
            "\r\n+OK 1 uid-1\r\n-ERR Line too long\r\n"
            "-ERR Too many bad commands, closing connection\r\n");
  CHECK(s.closing());
  CHECK_FALSE(s.updated());
}

TEST_CASE("MailSession: limits and storage failures") {
  SECTION("too many bad commands") {
    store::MemoryFolder f(sample());
    MailSettings st;
    st.limits.maxBadCommands = 2;
    MailSession s(f, st);
    s.start("");
    (void)s.takeOutput();
    CHECK(drive(s, "X\r\nY\r\nSTAT\r\n", false) ==
          "-ERR Unknown command\r\n-ERR Too many bad commands, closing connection\r\n");
    CHECK(s.closing());
    CHECK_FALSE(s.updated());
  }
  SECTION("a message that cannot be opened") {
    store::MemoryFolder f(sample());
    f.failOpen = true;
    MailSession s(f, {});
    s.start("");
    (void)s.takeOutput();
    CHECK(drive(s, "RETR 1\r\nTOP 1 1\r\nNOOP\r\n", false) ==
          "-ERR [SYS/TEMP] Cannot read the message now, try again later\r\n"
          "-ERR [SYS/TEMP] Cannot read the message now, try again later\r\n+OK\r\n");
  }
  SECTION("the UPDATE state fails") {
    store::MemoryFolder f(sample());
    f.failExpunge = true;
    MailSession s(f, {});
    s.start("");
    (void)s.takeOutput();
    CHECK(drive(s, "DELE 1\r\nQUIT\r\n", false) ==
          "+OK Message 1 deleted\r\n-ERR [SYS/TEMP] Some deleted messages were not removed\r\n");
    CHECK(s.closing());
    CHECK(f.remaining().size() == 3);
  }
  SECTION("an empty maildrop") {
    store::MemoryFolder f({});
    MailSession s(f, {});
    s.start("STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nQUIT\r\n");
    CHECK(drive(s, "", false) ==
          "+OK Logged in, 0 messages (0 octets)\r\n+OK 0 0\r\n+OK 0 messages (0 octets)\r\n.\r\n"
          "+OK Unique ids follow\r\n.\r\n-ERR No such message\r\n+OK Bye\r\n");
  }
}

TEST_CASE("MailSession: pipelined commands wait for the transfer before them") {
  store::MemoryFolder f(sample());
  MailSession s(f, {});
  s.start("RETR 1\r\nDELE 1\r\nQUIT\r\n");
  std::string out = s.takeOutput();
  CHECK(out.find("+OK 47 octets\r\n") != std::string::npos);
  CHECK(out.find("deleted") == std::string::npos);  // DELE waits for the transfer
  REQUIRE(s.transferring());
  CHECK_FALSE(f.seenFlags()[0]);
  while (s.transferring()) s.produce(1);
  out += s.takeOutput();
  CHECK(out.find(".\r\n+OK Message 1 deleted\r\n+OK Bye, 1 messages deleted\r\n") !=
        std::string::npos);
  CHECK(f.seenFlags()[0]);
}

TEST_CASE("MailSession over a Maildir: a message another client removed since the snapshot") {
  bool bytewise = GENERATE(false, true);
  store::test::TempDir t;
  for (const char* d : {"cur", "new", "tmp"}) REQUIRE(::mkdir((t / d).c_str(), 0700) == 0);
  REQUIRE(atomicWrite(t / "new/1.M1P1Q1.h,S=10", "A: 1\n\none\n", 0600));
  REQUIRE(atomicWrite(t / "new/2.M1P1Q1.h,S=10", "A: 2\n\ntwo\n", 0600));
  auto f = store::MaildirFolder::open(t.path());
  REQUIRE(f);
  MailSession s(**f, {});
  s.start("");
  CHECK(s.takeOutput() == "+OK Logged in, 2 messages (26 octets)\r\n");
  REQUIRE(::unlink((t / "new/1.M1P1Q1.h,S=10").c_str()) == 0);  // another session's QUIT
  CHECK(drive(s, "RETR 1\r\nRETR 2\r\nDELE 1\r\nDELE 2\r\nQUIT\r\n", bytewise) ==
        "-ERR [SYS/TEMP] Cannot read the message now, try again later\r\n"
        "+OK 13 octets\r\nA: 2\r\n\r\ntwo\r\n.\r\n"
        "+OK Message 1 deleted\r\n+OK Message 2 deleted\r\n"
        "+OK Bye, 2 messages deleted\r\n");
  CHECK(s.stats().retrieved == 1);
  CHECK(store::test::listDir(t / "new").empty());
  CHECK(store::test::listDir(t / "cur").empty());
}
