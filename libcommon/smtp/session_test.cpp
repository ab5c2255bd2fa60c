// Tests for the SMTP / LMTP engine. Every scenario runs three ways: fed as
// written, one byte at a time, and in random pieces; the replies, the Io
// events and the stored messages must be the same each way. A recording
// fake plays both Io and Policy.
#include "smtp/session.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <random>
#include <regex>

#include "base/strings.hpp"

using namespace yubin::smtp;
namespace mail = yubin::mail;

namespace {

struct Fake final : Io, Policy {
  Session* session = nullptr;
  Mode mode = Mode::Smtp;
  bool autoCommit = true;
  std::vector<Reply> commitReplies;  // empty: Queued (SMTP) / Delivered (LMTP)
  std::string sent;
  size_t sendCalls = 0;
  std::vector<std::string> events;
  std::vector<std::string> messages;             // committed content
  std::vector<Envelope> envelopes;               // at messageBegin
  std::vector<std::string> senders, recipients;  // asked of the policy
  std::string current;
  size_t largestPiece = 0;

  // Submission: a scripted SASL. PLAIN accepts "\0user\0pw" ("\0lock\0x"
  // gets a 421, "\0busy\0x" a 454); LOGIN asks for the user name then the
  // password. With authAsync the answers wait for a kAuthAnswer step.
  std::vector<std::string> mechanisms = {"PLAIN", "LOGIN"};
  bool authAsync = false;
  std::function<void()> pendingAuth;
  std::string authMech, loginUser;
  int loginRound = 0;

  std::vector<std::string> authMechanisms(const Envelope&) override { return mechanisms; }
  void authStart(std::string_view mech, std::optional<std::string> initial) override {
    events.push_back("auth-start " + std::string(mech) +
                     (initial ? " " + printable(*initial) : ""));
    authMech = std::string(mech);
    loginRound = 0;
    answer([this, initial] {
      if (authMech == "PLAIN") {
        if (!initial) return session->authChallenge("");
        return verdict(*initial);
      }
      if (initial) {
        loginUser = *initial;
        loginRound = 2;
        return session->authChallenge("Password:");
      }
      loginRound = 1;
      session->authChallenge("Username:");
    });
  }
  void authResponse(std::string r) override {
    events.push_back("auth-response " + printable(r));
    answer([this, r] {
      if (authMech == "PLAIN") return verdict(r);
      if (loginRound == 1) {
        loginUser = r;
        loginRound = 2;
        return session->authChallenge("Password:");
      }
      verdict(std::string(1, '\0') + loginUser + std::string(1, '\0') + r);
    });
  }
  void authAbort() override {
    events.push_back("auth-abort");
    pendingAuth = nullptr;
  }
  void answer(std::function<void()> fn) {
    if (authAsync) {
      pendingAuth = std::move(fn);
    } else {
      fn();
    }
  }
  void verdict(const std::string& msg) {
    using namespace std::string_literals;
    if (msg == "\0user\0pw"s) return session->authSucceeded("user");
    if (msg == "\0lock\0x"s) return session->authFailed(reply(ReplyId::AuthTooManyFailures, "mx"));
    if (msg == "\0busy\0x"s) return session->authFailed(reply(ReplyId::AuthTemporary));
    session->authFailed(reply(ReplyId::AuthFailed));
  }
  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s) out.push_back(c == '\0' ? '|' : c);
    return out;
  }

  void send(std::string_view b) override {
    sent += b;
    ++sendCalls;
  }
  void startTls() override { events.push_back("starttls"); }
  void close() override { events.push_back("close"); }
  void messageBegin(const Envelope& e) override {
    events.push_back("begin");
    envelopes.push_back(e);
    current.clear();
  }
  void messageData(std::string_view b) override {
    if (events.empty() || events.back() != "data") events.push_back("data");
    current += b;
    largestPiece = std::max(largestPiece, b.size());
  }
  void messageEnd() override {
    events.push_back("end");
    messages.push_back(current);
    if (autoCommit) commit();
  }
  void messageAbort() override {
    events.push_back("abort");
    current.clear();
  }
  void commit() {
    if (mode == Mode::Lmtp) {
      std::vector<Reply> rs;
      for (size_t i = 0; i < session->envelope().recipients.size(); ++i)
        rs.push_back(i < commitReplies.size() ? commitReplies[i] : reply(ReplyId::Delivered));
      session->messageDone(rs);
    } else {
      session->messageDone(commitReplies.empty() ? reply(ReplyId::Queued, "Q1") : commitReplies[0]);
    }
  }

  std::optional<Reply> checkHelo(const Envelope& e) override {
    if (e.helo == "bad.helo") return reply(ReplyId::RecipientRejected);
    return std::nullopt;
  }
  std::optional<Reply> checkSender(const Envelope&, const mail::Address& a) override {
    senders.push_back(a.normalized());
    if (a.domain == "bad.example") return reply(ReplyId::SenderRejected);
    return std::nullopt;
  }
  std::optional<Reply> checkRecipient(const Envelope&, const mail::Address& a) override {
    recipients.push_back(a.normalized());
    if (a.local.rfind("unknown", 0) == 0) return reply(ReplyId::UserUnknown);
    if (a.local == "full") return reply(ReplyId::MailboxFullTemporary);
    if (mail::looksLikeRelayTrick(a)) return reply(ReplyId::RoutingRejected);
    return std::nullopt;
  }
};

struct Step {
  enum class Kind { Feed, TlsUp, Commit, Timeout, PeerClosed, Shutdown, AuthAnswer } kind;
  std::string bytes;
};
Step in(std::string s) { return Step{Step::Kind::Feed, std::move(s)}; }
const Step kTlsUp{Step::Kind::TlsUp, {}};
const Step kCommit{Step::Kind::Commit, {}};
const Step kTimeout{Step::Kind::Timeout, {}};
const Step kPeerClosed{Step::Kind::PeerClosed, {}};
const Step kShutdown{Step::Kind::Shutdown, {}};
const Step kAuthAnswer{Step::Kind::AuthAnswer, {}};

enum class Split { Whole, Bytes, Random };

struct Outcome {
  std::string sent;
  std::vector<std::string> codes;   // "250 2.1.0" per reply ("250" without enhanced)
  std::vector<std::string> events;  // "data" left out: its timing depends on the split
  std::vector<std::string> allEvents;
  std::vector<std::string> messages;
  std::vector<Envelope> envelopes;
  std::vector<std::string> senders, recipients;
  Session::State state;
  unsigned errors;
  size_t sendCalls;
  size_t largestPiece;
  size_t maxBuffered = 0;
  size_t buffered;
};

// The summary of each complete reply in a transcript.
std::vector<std::string> replyCodes(const std::string& sent) {
  static const std::regex kEnhanced("^[245]\\.[0-9]{1,3}\\.[0-9]{1,3}$");
  std::vector<std::string> out;
  size_t i = 0;
  while (i < sent.size()) {
    size_t e = sent.find("\r\n", i);
    REQUIRE(e != std::string::npos);
    std::string line = sent.substr(i, e - i);
    i = e + 2;
    REQUIRE(line.size() >= 4);
    if (line[3] == '-') continue;
    REQUIRE(line[3] == ' ');
    std::string code = line.substr(0, 3);
    std::string rest = line.substr(4);
    std::string token = rest.substr(0, rest.find(' '));
    if (std::regex_match(token, kEnhanced)) code += " " + token;
    out.push_back(code);
  }
  return out;
}

Outcome runOnce(const Settings& settings, const std::vector<Step>& steps, Split split,
                bool autoCommit, unsigned seed, bool authAsync) {
  Fake f;
  f.mode = settings.mode;
  f.autoCommit = autoCommit;
  f.authAsync = authAsync;
  Session s(settings, f, f);
  f.session = &s;
  Outcome o;
  s.greet();
  std::mt19937 rng(seed);
  for (const Step& st : steps) {
    switch (st.kind) {
      case Step::Kind::Feed: {
        std::string_view b = st.bytes;
        size_t i = 0;
        while (i < b.size()) {
          size_t n = split == Split::Whole ? b.size() : split == Split::Bytes ? 1 : 1 + rng() % 9;
          n = std::min(n, b.size() - i);
          s.feed(b.substr(i, n));
          i += n;
          o.maxBuffered = std::max(o.maxBuffered, s.buffered());
        }
        break;
      }
      case Step::Kind::TlsUp:
        s.tlsStarted();
        break;
      case Step::Kind::Commit:
        f.commit();
        break;
      case Step::Kind::Timeout:
        s.timeout();
        break;
      case Step::Kind::PeerClosed:
        s.peerClosed();
        break;
      case Step::Kind::Shutdown:
        s.shutdown();
        break;
      case Step::Kind::AuthAnswer: {
        REQUIRE(f.pendingAuth);
        auto fn = std::move(f.pendingAuth);
        f.pendingAuth = nullptr;
        fn();
        break;
      }
    }
  }
  o.sent = f.sent;
  o.codes = replyCodes(f.sent);
  o.allEvents = f.events;
  for (const auto& e : f.events)
    if (e != "data") o.events.push_back(e);
  o.messages = f.messages;
  o.envelopes = f.envelopes;
  o.senders = f.senders;
  o.recipients = f.recipients;
  o.state = s.state();
  o.errors = s.errors();
  o.sendCalls = f.sendCalls;
  o.largestPiece = f.largestPiece;
  o.buffered = s.buffered();
  return o;
}

// Runs a scenario whole, byte by byte and in random pieces; they must agree.
Outcome run(const Settings& settings, const std::vector<Step>& steps, bool autoCommit = true,
            bool authAsync = false) {
  Outcome whole = runOnce(settings, steps, Split::Whole, autoCommit, 0, authAsync);
  for (unsigned seed = 0; seed < 4; ++seed) {
    Outcome other = runOnce(settings, steps, seed == 0 ? Split::Bytes : Split::Random, autoCommit,
                            seed, authAsync);
    INFO("split " << (seed == 0 ? "byte by byte" : "random") << " seed " << seed);
    REQUIRE(other.sent == whole.sent);
    REQUIRE(other.events == whole.events);
    REQUIRE(other.messages == whole.messages);
    REQUIRE(other.senders == whole.senders);
    REQUIRE(other.recipients == whole.recipients);
    REQUIRE(other.state == whole.state);
    REQUIRE(other.errors == whole.errors);
    REQUIRE(other.buffered == whole.buffered);
    // Command input is never buffered past one maximal line.
    const size_t lineLimit = settings.mode == Mode::Submission
                                 ? std::max(settings.maxCommandLine, kMaxAuthLine)
                                 : settings.maxCommandLine;
    REQUIRE(other.maxBuffered <= std::max(lineLimit, whole.maxBuffered));
  }
  return whole;
}

Outcome run(const Settings& settings, const std::string& input, bool autoCommit = true) {
  return run(settings, std::vector<Step>{in(input)}, autoCommit);
}

Settings smtp() {
  Settings s;
  s.mode = Mode::Smtp;
  s.hostname = "mx.test";
  s.maxMessageSize = 10 * 1024 * 1024;
  s.clientAddress = "192.0.2.7";
  s.logId = "test";
  return s;
}

Settings lmtp() {
  Settings s = smtp();
  s.mode = Mode::Lmtp;
  return s;
}

using Codes = std::vector<std::string>;

// Codes with the greeting prepended.
Codes greeted(Codes c) {
  c.insert(c.begin(), "220");
  return c;
}

const std::string kEhlo = "EHLO client.test\r\n";
const std::string kMail = "MAIL FROM:<sender@client.test>\r\n";
const std::string kRcpt = "RCPT TO:<user@mx.test>\r\n";
const std::string kTx = kEhlo + kMail + kRcpt;  // replies 250, 250 2.1.0, 250 2.1.5

}  // namespace

TEST_CASE("a plain transaction", "[session]") {
  auto o = run(smtp(), kTx + "DATA\r\nSubject: hi\r\n\r\nbody\r\n..dot\r\n.\r\nQUIT\r\n");
  CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"}));
  CHECK(o.messages == std::vector<std::string>{"Subject: hi\r\n\r\nbody\r\n.dot\r\n"});
  CHECK(o.events == std::vector<std::string>{"begin", "end", "close"});
  CHECK(o.state == Session::State::Closed);
  CHECK(o.errors == 0);
  CHECK(o.sent.find("250 2.0.0 Ok: queued as Q1\r\n") != std::string::npos);
  CHECK(o.sent.rfind("221 2.0.0 Bye\r\n") == o.sent.size() - 15);
}

TEST_CASE("greeting and EHLO capabilities", "[session]") {
  Settings s = smtp();
  s.maxMessageSize = 5000;
  auto o = run(s, kEhlo);
  CHECK(o.sent ==
        "220 mx.test ESMTP Yubin\r\n"
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 5000\r\n250-8BITMIME\r\n"
        "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n");
  s.tlsAvailable = true;
  s.binaryMime = true;
  s.maxMessageSize = 0;
  o = run(s, kEhlo);
  CHECK(o.sent ==
        "220 mx.test ESMTP Yubin\r\n"
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-BINARYMIME\r\n"
        "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-DSN\r\n"
        "250 STARTTLS\r\n");
  o = run(smtp(), "HELO client.test\r\n");
  CHECK(o.sent == "220 mx.test ESMTP Yubin\r\n250 mx.test\r\n");
}

// The command × state matrix: the reply to each command in each state.
TEST_CASE("every command in every state (SMTP)", "[session]") {
  const std::vector<std::pair<std::string, std::string>> states = {
      {"fresh", ""}, {"helo", "HELO c.test\r\n"},        {"ehlo", kEhlo}, {"mail", kEhlo + kMail},
      {"rcpt", kTx}, {"chunked", kTx + "BDAT 3\r\nabc"},
  };
  struct Row {
    std::string command;
    std::vector<std::string> expect;  // per state, in the order above
  };
  const std::vector<Row> rows = {
      {"EHLO d.test", {"250", "250", "250", "250", "250", "250"}},
      {"HELO d.test", {"250", "250", "250", "250", "250", "250"}},
      {"LHLO d.test",
       {"500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1"}},
      {"MAIL FROM:<s@t.test>",
       {"503 5.5.1", "250 2.1.0", "250 2.1.0", "503 5.5.1", "503 5.5.1", "503 5.5.1"}},
      {"RCPT TO:<r@t.test>",
       {"503 5.5.1", "503 5.5.1", "503 5.5.1", "250 2.1.5", "250 2.1.5", "503 5.5.1"}},
      {"DATA", {"503 5.5.1", "503 5.5.1", "503 5.5.1", "554 5.5.1", "354", "503 5.5.1"}},
      {"BDAT 0 LAST",
       {"503 5.5.1", "503 5.5.1", "503 5.5.1", "554 5.5.1", "250 2.0.0", "250 2.0.0"}},
      {"RSET", {"250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0"}},
      {"NOOP", {"250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0"}},
      {"QUIT", {"221 2.0.0", "221 2.0.0", "221 2.0.0", "221 2.0.0", "221 2.0.0", "221 2.0.0"}},
      {"VRFY someone",
       {"252 2.5.0", "252 2.5.0", "252 2.5.0", "252 2.5.0", "252 2.5.0", "252 2.5.0"}},
      {"HELP", {"214 2.0.0", "214 2.0.0", "214 2.0.0", "214 2.0.0", "214 2.0.0", "214 2.0.0"}},
      {"STARTTLS", {"502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1"}},
      {"EXPN list", {"502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1"}},
      {"ETRN x", {"502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1"}},
      {"AUTH PLAIN",
       {"500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2"}},
      {"XYZZY", {"500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2"}},
      {"", {"500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2"}},
  };
  for (const Row& row : rows) {
    for (size_t i = 0; i < states.size(); ++i) {
      INFO("state " << states[i].first << ", command " << row.command);
      auto o = run(smtp(), states[i].second + row.command + "\r\n");
      REQUIRE_FALSE(o.codes.empty());
      CHECK(o.codes.back() == row.expect[i]);
    }
  }
}

TEST_CASE("STARTTLS in every state", "[session][tls]") {
  Settings s = smtp();
  s.tlsAvailable = true;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "503 5.5.1"},    {"HELO c.test\r\n", "503 5.5.1"},
      {kEhlo, "220 2.0.0"}, {kEhlo + kMail, "503 5.5.1"},
      {kTx, "503 5.5.1"},   {kTx + "BDAT 1\r\nx", "503 5.5.1"},
  };
  for (const auto& [prefix, code] : cases) {
    INFO("prefix " << prefix);
    auto o = run(s, prefix + "STARTTLS\r\n");
    CHECK(o.codes.back() == code);
  }
  CHECK(run(s, kEhlo + "STARTTLS now\r\n").codes.back() == "501 5.5.4");
}

TEST_CASE("every command in every state (LMTP)", "[session][lmtp]") {
  const std::string lhlo = "LHLO client.test\r\n";
  const std::vector<std::string> states = {"", lhlo, lhlo + kMail, lhlo + kMail + kRcpt};
  struct Row {
    std::string command;
    std::vector<std::string> expect;
  };
  const std::vector<Row> rows = {
      {"LHLO d.test", {"250", "250", "250", "250"}},
      {"EHLO d.test", {"500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1"}},
      {"HELO d.test", {"500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1"}},
      {"STARTTLS", {"502 5.5.1", "502 5.5.1", "502 5.5.1", "502 5.5.1"}},
      {"MAIL FROM:<s@t.test>", {"503 5.5.1", "250 2.1.0", "503 5.5.1", "503 5.5.1"}},
      {"RCPT TO:<r@t.test>", {"503 5.5.1", "503 5.5.1", "250 2.1.5", "250 2.1.5"}},
      {"DATA", {"503 5.5.1", "503 5.5.1", "503 5.5.1", "354"}},
      {"BDAT 0 LAST", {"503 5.5.1", "503 5.5.1", "503 5.5.1", "250 2.0.0"}},
      {"RSET", {"250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0"}},
      {"QUIT", {"221 2.0.0", "221 2.0.0", "221 2.0.0", "221 2.0.0"}},
  };
  for (const Row& row : rows) {
    for (size_t i = 0; i < states.size(); ++i) {
      INFO("state " << i << ", command " << row.command);
      auto o = run(lmtp(), states[i] + row.command + "\r\n");
      CHECK(o.codes.back() == row.expect[i]);
    }
  }
  auto o = run(lmtp(), "MAIL FROM:<a@b.test>\r\n");
  CHECK(o.sent == "220 mx.test LMTP Yubin\r\n503 5.5.1 Error: send LHLO first\r\n");
  Settings s = lmtp();
  s.tlsAvailable = true;
  o = run(s, "LHLO client.test\r\nSTARTTLS\r\n");
  CHECK(o.sent ==
        "220 mx.test LMTP Yubin\r\n"
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n"
        "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
        "502 5.5.1 Error: STARTTLS not available\r\n");
}

TEST_CASE("LMTP: one reply per accepted recipient", "[session][lmtp]") {
  const std::string tx = "LHLO client.test\r\n" + kMail +
                         "RCPT TO:<a@mx.test>\r\nRCPT TO:<unknown@mx.test>\r\n"
                         "RCPT TO:<b@mx.test>\r\n";
  SECTION("DATA") {
    auto o = run(lmtp(), tx + "DATA\r\nhello\r\n.\r\nQUIT\r\n");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354",
                              "250 2.0.0", "250 2.0.0", "221 2.0.0"}));
    CHECK(o.messages == std::vector<std::string>{"hello\r\n"});
    REQUIRE(o.envelopes.size() == 1);
    REQUIRE(o.envelopes[0].recipients.size() == 2);
    CHECK(o.envelopes[0].recipients[1].address.normalized() == "b@mx.test");
  }
  SECTION("BDAT") {
    auto o = run(lmtp(), tx + "BDAT 3\r\nabcBDAT 2 LAST\r\nde");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5",
                              "250 2.0.0", "250 2.0.0", "250 2.0.0"}));
    CHECK(o.messages == std::vector<std::string>{"abcde"});
  }
  SECTION("distinct replies from the glue") {
    Settings s = lmtp();
    auto steps = std::vector<Step>{in(tx + "DATA\r\nx\r\n.\r\n")};
    Fake f;
    f.mode = Mode::Lmtp;
    f.commitReplies = {reply(ReplyId::Delivered), reply(ReplyId::MailboxFull)};
    Session session(s, f, f);
    f.session = &session;
    session.greet();
    session.feed(steps[0].bytes);
    CHECK(replyCodes(f.sent) == greeted({"250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5",
                                         "354", "250 2.0.0", "552 5.2.2"}));
  }
  SECTION("one reply repeated for all") {
    auto o = run(lmtp(), std::vector<Step>{in(tx + "DATA\r\nx\r\n.\r\n")}, false);
    CHECK(o.state == Session::State::Committing);
    Fake f;
    f.mode = Mode::Lmtp;
    f.autoCommit = false;
    Session session(lmtp(), f, f);
    f.session = &session;
    session.greet();
    session.feed(tx + "DATA\r\nx\r\n.\r\n");
    f.sent.clear();
    session.messageDone(reply(ReplyId::LocalError));
    CHECK(replyCodes(f.sent) == Codes{"451 4.3.0", "451 4.3.0"});
  }
  SECTION("a rejected message is refused once per recipient") {
    auto o = run(lmtp(), tx + "DATA\r\nbare\nLF\r\n.\r\n");
    CHECK(o.codes.back() == "550 5.6.0");
    CHECK(std::count(o.codes.begin(), o.codes.end(), "550 5.6.0") == 2);
    Settings small = lmtp();
    small.maxMessageSize = 4;
    o = run(small, tx + "DATA\r\n0123456789\r\n.\r\n");
    CHECK(std::count(o.codes.begin(), o.codes.end(), "552 5.3.4") == 2);
  }
}

TEST_CASE("submission mode without requireAuth speaks SMTP", "[session]") {
  Settings s = smtp();
  s.mode = Mode::Submission;
  s.requireAuth = false;
  auto o = run(s, kTx + "DATA\r\nx\r\n.\r\nLHLO c.test\r\n");
  CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "500 5.5.1"}));
  CHECK(o.sent.substr(0, 25) == "220 mx.test ESMTP Yubin\r\n");
  CHECK(o.messages == std::vector<std::string>{"x\r\n"});
}

TEST_CASE("pipelining", "[session]") {
  SECTION("a whole transaction in one packet") {
    auto o = run(smtp(), kEhlo + kMail + kRcpt +
                             "RCPT TO:<other@mx.test>\r\nDATA\r\n"
                             "line\r\n.\r\n" +
                             kMail + kRcpt + "DATA\r\nsecond\r\n.\r\nQUIT\r\n");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0",
                              "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"}));
    CHECK(o.messages == std::vector<std::string>{"line\r\n", "second\r\n"});
    REQUIRE(o.envelopes.size() == 2);
    CHECK(o.envelopes[0].recipients.size() == 2);
    CHECK(o.envelopes[1].recipients.size() == 1);
  }
  SECTION("replies to a group go out in one send") {
    Fake f;
    Session s(smtp(), f, f);
    f.session = &s;
    s.greet();
    s.feed(kEhlo);
    const size_t before = f.sendCalls;
    s.feed(kMail + kRcpt + "RCPT TO:<a@mx.test>\r\nRCPT TO:<b@mx.test>\r\n");
    CHECK(f.sendCalls == before + 1);
    CHECK(replyCodes(f.sent).size() == 6);
  }
  SECTION("BDAT chunks pipelined with commands") {
    auto o = run(smtp(), kTx + "BDAT 5\r\nhelloBDAT 6\r\n world" + "BDAT 0 LAST\r\nNOOP\r\n" +
                             kMail + kRcpt + "BDAT 3 LAST\r\nabcQUIT\r\n");
    CHECK(o.codes ==
          greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0", "250 2.0.0",
                   "250 2.0.0", "250 2.1.0", "250 2.1.5", "250 2.0.0", "221 2.0.0"}));
    CHECK(o.messages == std::vector<std::string>{"hello world", "abc"});
    CHECK(o.sent.find("250 2.0.0 5 octets received\r\n") != std::string::npos);
    CHECK(o.sent.find("250 2.0.0 6 octets received\r\n") != std::string::npos);
  }
  SECTION("lower-case verbs and a bare LF after a command") {
    auto o = run(smtp(), "ehlo c.test\nmail from:<a@b.test>\nrcpt to:<c@d.test>\r\nnoop\n");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0"}));
  }
}

TEST_CASE("input arriving while a message is committed is held", "[session]") {
  Settings s = smtp();
  auto o = run(s, std::vector<Step>{in(kTx + "DATA\r\nx\r\n.\r\n" + kMail)}, false);
  CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "354"}));
  CHECK(o.state == Session::State::Committing);
  CHECK(o.buffered == kMail.size());
  o = run(s, std::vector<Step>{in(kTx + "DATA\r\nx\r\n.\r\n" + kMail), in(kRcpt), kCommit}, false);
  CHECK(o.codes ==
        greeted({"250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "250 2.1.0", "250 2.1.5"}));
  CHECK(o.state == Session::State::Mail);
  CHECK(o.buffered == 0);
}

TEST_CASE("limits", "[session][limits]") {
  SECTION("command line length") {
    const std::string exact = "NOOP " + std::string(2041, 'x') + "\r\n";
    REQUIRE(exact.size() == 2048);
    const std::string over = "NOOP " + std::string(2042, 'x') + "\r\n";
    auto o = run(smtp(), exact + over + "NOOP\r\n");
    CHECK(o.codes == greeted({"250 2.0.0", "500 5.5.2", "250 2.0.0"}));
    // A huge line with no end is not kept.
    o = run(smtp(), std::vector<Step>{in(std::string(100000, 'A'))});
    CHECK(o.buffered == 0);
    CHECK(o.maxBuffered <= 2048);
    CHECK(o.codes == greeted({}));
    o = run(smtp(), std::string(100000, 'A') + "\r\nNOOP\r\n");
    CHECK(o.codes == greeted({"500 5.5.2", "250 2.0.0"}));
    CHECK(o.sent.find("500 5.5.2 Error: line too long") != std::string::npos);
  }
  SECTION("recipients per transaction") {
    Settings s = smtp();
    s.maxRecipients = 2;
    auto o = run(s, kEhlo + kMail +
                        "RCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                        "RCPT TO:<c@x.test>\r\nDATA\r\nm\r\n.\r\n");
    CHECK(o.codes ==
          greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.1.5", "452 4.5.3", "354", "250 2.0.0"}));
    REQUIRE(o.envelopes.size() == 1);
    CHECK(o.envelopes[0].recipients.size() == 2);
    CHECK(o.errors == 0);  // 452 is not held against the client
  }
  SECTION("errors") {
    Settings s = smtp();
    s.maxErrors = 3;
    auto o = run(s, "FOO\r\nBAR\r\nBAZ\r\nQUX\r\nNOOP\r\n");
    CHECK(o.codes == greeted({"500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0"}));
    CHECK(o.events == std::vector<std::string>{"close"});
    CHECK(o.state == Session::State::Closed);
    CHECK(o.sent.find("421 4.7.0 mx.test Error: too many errors") != std::string::npos);
    // Policy refusals count too (dictionary attacks).
    o = run(s, kEhlo + kMail +
                   "RCPT TO:<unknown1@x.test>\r\nRCPT TO:<unknown2@x.test>\r\n"
                   "RCPT TO:<unknown3@x.test>\r\nRCPT TO:<unknown4@x.test>\r\n");
    CHECK(o.codes.back() == "421 4.7.0");
    // Temporary resource refusals (452) do not.
    o = run(s, kEhlo + kMail +
                   "RCPT TO:<full@x.test>\r\nRCPT TO:<full@x.test>\r\n"
                   "RCPT TO:<full@x.test>\r\nRCPT TO:<full@x.test>\r\n");
    CHECK(o.codes.back() == "452 4.2.2");
    CHECK(o.errors == 0);
    // An aborted message in progress is discarded when the session closes.
    o = run(s, kTx + "BDAT 2\r\nabFOO\r\nBAR\r\nBAZ\r\nQUX\r\n");
    CHECK(o.events == std::vector<std::string>{"begin", "abort", "close"});
  }
  SECTION("declared SIZE") {
    Settings s = smtp();
    s.maxMessageSize = 1000;
    auto o = run(s, kEhlo + "MAIL FROM:<a@b.test> SIZE=1001\r\nMAIL FROM:<a@b.test> SIZE=1000\r\n");
    CHECK(o.codes == greeted({"250", "552 5.3.4", "250 2.1.0"}));
  }
  SECTION("message size in DATA") {
    Settings s = smtp();
    s.maxMessageSize = 10;
    auto o = run(s, kTx + "DATA\r\n0123456789\r\nmore\r\n.\r\n" + kMail);
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "354", "552 5.3.4", "250 2.1.0"}));
    CHECK(o.events == std::vector<std::string>{"begin", "abort"});
    CHECK(o.messages.empty());
    o = run(s, kTx + "DATA\r\n01234567\r\n.\r\n");  // exactly 10 octets with its CRLF
    CHECK(o.messages == std::vector<std::string>{"01234567\r\n"});
  }
  SECTION("message size in BDAT") {
    Settings s = smtp();
    s.maxMessageSize = 10;
    auto o = run(s, kTx + "BDAT 20 LAST\r\n01234567890123456789NOOP\r\n");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "552 5.3.4", "250 2.0.0"}));
    CHECK(o.events == std::vector<std::string>{"begin", "abort"});
    o = run(s, kTx + "BDAT 6\r\n012345BDAT 6 LAST\r\n012345");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "552 5.3.4"}));
    // A non-last chunk that is too big ends the transaction; later chunks
    // are drained and refused.
    o = run(s, kTx + "BDAT 20\r\n01234567890123456789BDAT 4 LAST\r\nQUITNOOP\r\n");
    CHECK(o.codes ==
          greeted({"250", "250 2.1.0", "250 2.1.5", "552 5.3.4", "503 5.5.1", "250 2.0.0"}));
    CHECK(o.state == Session::State::Idle);
  }
  SECTION("long lines are streamed, not buffered") {
    const std::string line(300000, 'x');
    auto o = run(smtp(), kTx + "DATA\r\n" + line + "\r\n.\r\n");
    REQUIRE(o.messages.size() == 1);
    CHECK(o.messages[0] == line + "\r\n");
    CHECK(o.largestPiece <= 2 * 64 * 1024);
    CHECK(o.maxBuffered == 0);
  }
}

TEST_CASE("malformed commands", "[session]") {
  struct Case {
    std::string input;  // after EHLO
    std::string code;
  };
  const std::vector<Case> cases = {
      {std::string("NO\0OP\r\n", 7), "500 5.5.2"},
      {"NOOP\rQUIT\r\n", "500 5.5.2"},
      {"NOOP\t\r\n", "500 5.5.2"},
      {"MAIL FROM:<a@b.test> FOO=bar\r\n", "555 5.5.4"},
      {"MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n", "555 5.5.4"},
      {"MAIL FROM:<a@b.test> BODY=9BIT\r\n", "501 5.5.4"},
      {"MAIL FROM:<a@b.test> SIZE=1 SIZE=2\r\n", "501 5.5.4"},
      {"MAIL FROM:a@b.test\r\n", "501 5.5.4"},
      {"MAIL TO:<a@b.test>\r\n", "501 5.5.4"},
      {"MAIL\r\n", "501 5.5.4"},
      {"MAIL FROM:<a@b.test\r\n", "501 5.5.4"},
      {"MAIL FROM:<@x.test:a@b.test>\r\n", "501 5.1.7"},
      {"MAIL FROM:<a..b@c.test>\r\n", "501 5.1.7"},
      {"MAIL FROM:<\xc3\xa9@c.test>\r\n", "553 5.6.7"},
      {"MAIL FROM:<\xc3\xa9@c.test> SMTPUTF8\r\n", "250 2.1.0"},
      {"MAIL FROM:<\xc3@c.test> SMTPUTF8\r\n", "501 5.1.7"},
      {kMail + "RCPT TO:<a b@c.test>\r\n", "501 5.1.3"},
      {kMail + "RCPT TO:<>\r\n", "501 5.1.3"},
      {kMail + "RCPT TO:<" + std::string(65, 'a') + "@c.test>\r\n", "501 5.1.3"},
      {kMail + "RCPT TO:<\xc3\xa9@c.test>\r\n", "553 5.6.7"},
      {"MAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<\xc3\xa9@c.test>\r\n", "250 2.1.5"},
      {kMail + "RCPT TO:<a@c.test> NOTIFY=SOMETIMES\r\n", "501 5.5.4"},
      {kMail + "RCPT TO:<a@c.test> SIZE=1\r\n", "555 5.5.4"},
      {kMail + "RCPT <a@c.test>\r\n", "501 5.5.4"},
      {kMail + "RCPT TO:<postmaster>\r\n", "250 2.1.5"},
      {kMail + "RCPT TO:<pOsTmAsTeR>\r\n", "250 2.1.5"},  // RFC 5321 §4.5.1: any case
      {kMail + "RCPT TO:<a%b@c.test>\r\n", "550 5.7.1"},
      {"MAIL FROM:<a@bad.example>\r\n", "550 5.7.1"},
      {"MAIL FROM:<>\r\n", "250 2.1.0"},
      {kMail + kRcpt + "DATA now\r\n", "501 5.5.4"},
      {kMail + kRcpt + "BDAT\r\n", "501 5.5.4"},
      {kMail + kRcpt + "BDAT x\r\n", "501 5.5.4"},
      {kMail + kRcpt + "BDAT -1\r\n", "501 5.5.4"},
      {kMail + kRcpt + "BDAT 1 NOTLAST\r\n", "501 5.5.4"},
      {kMail + kRcpt + "BDAT 1 LAST more\r\n", "501 5.5.4"},
      {kMail + kRcpt + "BDAT 99999999999999999999999\r\n", "501 5.5.4"},
      {"EHLO\r\n", "501 5.5.4"},
      {"HELO \xc3\xa9\r\n", "501 5.5.4"},
      {"RSET now\r\n", "501 5.5.4"},
      {"VRFY\r\n", "501 5.5.4"},
      {"NOOP anything goes\r\n", "250 2.0.0"},
      {"QUIT now\r\n", "221 2.0.0"},
  };
  for (const auto& c : cases) {
    INFO("input: " << c.input);
    auto o = run(smtp(), kEhlo + c.input);
    CHECK(o.codes.back() == c.code);
  }
  // Parameters need EHLO.
  auto o = run(smtp(), "HELO c.test\r\nMAIL FROM:<a@b.test> SIZE=10\r\n");
  CHECK(o.codes.back() == "555 5.5.4");
  // HTTP on the mail port: hang up.
  o = run(smtp(), "GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n");
  CHECK(o.codes == greeted({"421 4.7.0"}));
  CHECK(o.events == std::vector<std::string>{"close"});
  // Replies never echo the client's input.
  o = run(smtp(), kEhlo + "MAIL FROM:<evil<script>@x.test>\r\n");
  CHECK(o.sent.find("script") == std::string::npos);
}

TEST_CASE("the envelope handed to the glue", "[session]") {
  auto o = run(smtp(),
               "EHLO client.test\r\n"
               "MAIL FROM:<Sender@Client.TEST> SIZE=123 BODY=8BITMIME RET=HDRS "
               "ENVID=id+2B1 SMTPUTF8\r\n"
               "RCPT TO:<a@mx.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40mx.test\r\n"
               "RCPT TO:<Postmaster>\r\n"
               "DATA\r\nx\r\n.\r\n");
  REQUIRE(o.envelopes.size() == 1);
  const Envelope& e = o.envelopes[0];
  CHECK(e.helo == "client.test");
  CHECK(e.esmtp);
  CHECK_FALSE(e.tls);
  CHECK(e.clientAddress == "192.0.2.7");
  CHECK(e.from.normalized() == "Sender@client.test");
  CHECK(e.fromRaw == "<Sender@Client.TEST>");
  CHECK_FALSE(e.nullSender);
  CHECK(e.declaredSize == 123u);
  CHECK(e.body == mail::Body::EightBitMime);
  CHECK(e.ret == mail::Ret::Headers);
  CHECK(e.envid == "id+1");
  CHECK(e.smtputf8);
  REQUIRE(e.recipients.size() == 2);
  CHECK(e.recipients[0].address.normalized() == "a@mx.test");
  CHECK(e.recipients[0].raw == "<a@mx.test>");
  CHECK(e.recipients[0].notify == (mail::kNotifySuccess | mail::kNotifyFailure));
  CHECK(e.recipients[0].orcptType == "rfc822");
  CHECK(e.recipients[0].orcpt == "a@mx.test");
  CHECK(e.recipients[1].address.isPostmaster());
  CHECK(o.senders == std::vector<std::string>{"Sender@client.test"});
  CHECK(o.recipients == std::vector<std::string>{"a@mx.test", "Postmaster"});

  o = run(smtp(), "HELO c.test\r\nMAIL FROM:<>\r\n" + kRcpt + "DATA\r\nx\r\n.\r\n");
  REQUIRE(o.envelopes.size() == 1);
  CHECK(o.envelopes[0].nullSender);
  CHECK_FALSE(o.envelopes[0].esmtp);
  CHECK(o.envelopes[0].fromRaw == "<>");
}

TEST_CASE("transaction resets", "[session]") {
  auto o = run(smtp(), kTx + "RSET\r\nRCPT TO:<a@b.test>\r\nDATA\r\n");
  CHECK(o.codes ==
        greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1", "503 5.5.1"}));
  o = run(smtp(), kTx + "EHLO again.test\r\nDATA\r\n");
  CHECK(o.codes.back() == "503 5.5.1");
  o = run(smtp(), kTx + "BDAT 3\r\nabcRSET\r\nBDAT 1 LAST\r\nx");
  CHECK(o.codes ==
        greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0", "503 5.5.1"}));
  CHECK(o.events == std::vector<std::string>{"begin", "abort"});
  o = run(smtp(), kTx + "BDAT 3\r\nabcQUIT\r\n");
  CHECK(o.events == std::vector<std::string>{"begin", "abort", "close"});
  // Policy refusals.
  o = run(smtp(), "EHLO bad.helo\r\n" + kMail + kEhlo + kMail);
  CHECK(o.codes == greeted({"550 5.7.1", "503 5.5.1", "250", "250 2.1.0"}));
  o = run(smtp(), kEhlo + "MAIL FROM:<x@bad.example>\r\n" + kRcpt + kMail);
  CHECK(o.codes == greeted({"250", "550 5.7.1", "503 5.5.1", "250 2.1.0"}));
}

// SMTP smuggling: content that some other server would read as the end of
// the message followed by new commands. The smuggled MAIL must never run.
TEST_CASE("smuggling through DATA", "[session][smuggling]") {
  const std::vector<std::string> fakeEnds = {
      "\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r", "\r.\r", "\r\n.\r\r\n", "\n.\r\r\n",
  };
  const std::string smuggled =
      "MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@mx.test>\r\n"
      "DATA\r\nforged\r\n";
  for (const auto& fake : fakeEnds) {
    const std::string input = kTx + "DATA\r\nreal" + fake + smuggled + ".\r\nQUIT\r\n";
    INFO("fake end: " << ::Catch::Detail::stringify(fake));
    auto o = run(smtp(), input);
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "354", "550 5.6.0", "221 2.0.0"}));
    CHECK(o.events == std::vector<std::string>{"begin", "abort", "close"});
    CHECK(o.senders == std::vector<std::string>{"sender@client.test"});
    CHECK(o.sent.find("550 5.6.0 Error: bare <CR> or <LF>") != std::string::npos);

    Settings normalize = smtp();
    normalize.normalizeBareLf = true;
    o = run(normalize, input);
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"}));
    REQUIRE(o.messages.size() == 1);
    CHECK(o.senders == std::vector<std::string>{"sender@client.test"});
    // One message, every line ending CRLF, the smuggled commands inside it.
    const std::string& m = o.messages[0];
    CHECK(m.find("MAIL FROM:<evil@x.test>\r\n") != std::string::npos);
    CHECK(m.substr(m.size() - 8) == "forged\r\n");
    for (size_t i = 0; i < m.size(); ++i) {
      if (m[i] == '\n') REQUIRE((i > 0 && m[i - 1] == '\r'));
      if (m[i] == '\r') REQUIRE((i + 1 < m.size() && m[i + 1] == '\n'));
    }
  }
}

TEST_CASE("smuggling through BDAT", "[session][smuggling]") {
  SECTION("CRLF.CRLF inside a chunk is content") {
    const std::string content =
        "a\r\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@mx.test>\r\n"
        "DATA\r\nforged\r\n.\r\n";
    auto o = run(smtp(), kTx + "BDAT " + std::to_string(content.size()) + " LAST\r\n" + content +
                             "QUIT\r\n");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "221 2.0.0"}));
    CHECK(o.messages == std::vector<std::string>{content});
    CHECK(o.senders.size() == 1);
  }
  SECTION("bare line endings: rejected at LAST, or normalised") {
    const std::string input = kTx + "BDAT 4\r\na\nb\rBDAT 3 LAST\r\n\nc\r";
    auto o = run(smtp(), input);
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "550 5.6.0"}));
    CHECK(o.events == std::vector<std::string>{"begin", "abort"});
    Settings normalize = smtp();
    normalize.normalizeBareLf = true;
    o = run(normalize, input);
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0"}));
    CHECK(o.messages == std::vector<std::string>{"a\r\nb\r\nc\r\n"});
  }
  SECTION("a CR and its LF in different chunks are a line ending") {
    auto o = run(smtp(), kTx + "BDAT 2\r\na\rBDAT 2 LAST\r\n\nb");
    CHECK(o.messages == std::vector<std::string>{"a\r\nb"});
  }
  SECTION("BINARYMIME content is passed untouched") {
    Settings s = smtp();
    s.binaryMime = true;
    const std::string content("\0\r\n\n\r.\r\n\xff", 9);
    auto o = run(s, kEhlo + "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n" + kRcpt + "DATA\r\n" +
                        "BDAT 9 LAST\r\n" + content);
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "503 5.5.1", "250 2.0.0"}));
    CHECK(o.messages == std::vector<std::string>{content});
  }
  SECTION("a refused BDAT's octets are drained, not executed") {
    auto o = run(smtp(), kEhlo + "BDAT 6\r\nQUIT\r\nNOOP\r\n");
    CHECK(o.codes == greeted({"250", "503 5.5.1", "250 2.0.0"}));
    o = run(smtp(), kEhlo + kMail + "BDAT 6 LAST\r\nQUIT\r\n");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "554 5.5.1"}));
    CHECK(o.state == Session::State::Mail);
    o = run(smtp(), "BDAT 6 LAST\r\nQUIT\r\n");
    CHECK(o.codes == greeted({"503 5.5.1"}));
    Settings tls = smtp();
    tls.requireTls = true;
    tls.tlsAvailable = true;
    o = run(tls, kEhlo + "BDAT 6\r\nQUIT\r\n");
    CHECK(o.codes == greeted({"250", "530 5.7.0"}));
  }
  SECTION("DATA and BDAT do not mix") {
    auto o = run(smtp(), kTx +
                             "BDAT 3\r\nabcDATA\r\nRCPT TO:<x@y.test>\r\nMAIL FROM:<a@b.test>\r\n"
                             "BDAT 0 LAST\r\n");
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1",
                              "503 5.5.1", "503 5.5.1", "250 2.0.0"}));
    CHECK(o.messages == std::vector<std::string>{"abc"});
  }
}

TEST_CASE("STARTTLS", "[session][tls]") {
  Settings s = smtp();
  s.tlsAvailable = true;
  SECTION("commands injected after STARTTLS are never executed") {
    auto o =
        run(s, std::vector<Step>{
                   in(kEhlo + "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@mx.test>\r\n"),
                   in("MAIL FROM:<evil2@x.test>\r\n"),  // before the handshake ends
                   kTlsUp,
                   in(kMail),
                   in(kEhlo),
                   in("STARTTLS\r\n"),
                   in(kMail + kRcpt + "DATA\r\nx\r\n.\r\n"),
               });
    CHECK(o.codes == greeted({"250", "220 2.0.0", "503 5.5.1", "250", "503 5.5.1", "250 2.1.0",
                              "250 2.1.5", "354", "250 2.0.0"}));
    CHECK(o.senders == std::vector<std::string>{"sender@client.test"});
    CHECK(o.events == std::vector<std::string>{"starttls", "begin", "end"});
    REQUIRE(o.envelopes.size() == 1);
    CHECK(o.envelopes[0].tls);
    // STARTTLS is offered before TLS and not after.
    size_t tlsAt = o.sent.find("220 2.0.0 Ready to start TLS\r\n");
    REQUIRE(tlsAt != std::string::npos);
    CHECK(o.sent.substr(0, tlsAt).find("250 STARTTLS\r\n") != std::string::npos);
    CHECK(o.sent.substr(tlsAt).find("STARTTLS") == std::string::npos);
    CHECK(o.sent.find("503 5.5.1 Error: TLS already active") != std::string::npos);
  }
  SECTION("required TLS") {
    s.requireTls = true;
    auto o = run(s, std::vector<Step>{in(kEhlo + kMail +
                                         "VRFY x\r\nNOOP\r\nRSET\r\nHELP\r\n"
                                         "STARTTLS\r\n"),
                                      kTlsUp, in(kTx)});
    CHECK(o.codes == greeted({"250", "530 5.7.0", "530 5.7.0", "250 2.0.0", "250 2.0.0",
                              "214 2.0.0", "220 2.0.0", "250", "250 2.1.0", "250 2.1.5"}));
  }
  SECTION("implicit TLS") {
    s.tlsActive = true;
    auto o = run(s, kEhlo + "STARTTLS\r\n" + kMail + kRcpt + "DATA\r\nx\r\n.\r\n");
    CHECK(o.sent.find("STARTTLS\r\n") == std::string::npos);
    CHECK(o.codes == greeted({"250", "503 5.5.1", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"}));
    REQUIRE(o.envelopes.size() == 1);
    CHECK(o.envelopes[0].tls);
  }
}

TEST_CASE("timers and endings", "[session]") {
  SECTION("which timeout applies") {
    Fake f;
    Settings s = smtp();
    s.commandTimeout = std::chrono::seconds(300);
    s.dataTimeout = std::chrono::seconds(180);
    Session session(s, f, f);
    f.session = &session;
    session.greet();
    CHECK(session.timeoutNow() == std::chrono::seconds(300));
    session.feed(kTx + "DATA\r\npartial");
    CHECK(session.state() == Session::State::Data);
    CHECK(session.timeoutNow() == std::chrono::seconds(180));
    session.feed("\r\n.\r\nBDAT");
    CHECK(session.timeoutNow() == std::chrono::seconds(300));
    session.feed(" 10\r\n");  // refused (no MAIL), its octets are still read
    CHECK(session.state() == Session::State::Chunk);
    CHECK(session.timeoutNow() == std::chrono::seconds(180));
  }
  SECTION("timeout in the middle of a message") {
    auto o = run(smtp(), std::vector<Step>{in(kTx + "DATA\r\npartial"), kTimeout, in("more\r\n")});
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5", "354", "421 4.4.2"}));
    CHECK(o.events == std::vector<std::string>{"begin", "abort", "close"});
    CHECK(o.sent.find("421 4.4.2 mx.test Error: timeout exceeded\r\n") != std::string::npos);
  }
  SECTION("shutdown") {
    auto o = run(smtp(), std::vector<Step>{in(kEhlo), kShutdown});
    CHECK(o.codes == greeted({"250", "421 4.3.2"}));
    CHECK(o.events == std::vector<std::string>{"close"});
  }
  SECTION("the peer goes away mid-message") {
    auto o =
        run(smtp(), std::vector<Step>{in(kTx + "BDAT 10\r\nabc"), kPeerClosed, in("NOOP\r\n")});
    CHECK(o.events == std::vector<std::string>{"begin", "abort"});
    CHECK(o.state == Session::State::Closed);
    CHECK(o.codes == greeted({"250", "250 2.1.0", "250 2.1.5"}));
  }
  SECTION("the peer goes away while the message is committed") {
    auto o =
        run(smtp(), std::vector<Step>{in(kTx + "DATA\r\nx\r\n.\r\n"), kPeerClosed, kCommit}, false);
    CHECK(o.events == std::vector<std::string>{"begin", "end"});
    CHECK(o.codes.back() == "354");
  }
  SECTION("refusing a connection") {
    Fake f;
    Session session(smtp(), f, f);
    f.session = &session;
    session.refuse(reply(ReplyId::TooManyErrors, "mx.test"));
    CHECK(f.sent == "421 4.7.0 mx.test Error: too many errors\r\n");
    CHECK(f.events == std::vector<std::string>{"close"});
    session.feed("EHLO x\r\n");
    CHECK(f.sent == "421 4.7.0 mx.test Error: too many errors\r\n");
  }
  SECTION("early talkers are answered after the greeting") {
    Fake f;
    Session session(smtp(), f, f);
    f.session = &session;
    session.feed(kEhlo);
    CHECK(f.sent.empty());
    CHECK(session.buffered() == kEhlo.size());
    session.greet();
    CHECK(replyCodes(f.sent) == greeted({"250"}));
  }
}

// ---- Submission: AUTH (RFC 4954) ----

namespace {

Settings submission() {
  Settings s = smtp();
  s.mode = Mode::Submission;
  s.tlsAvailable = true;
  return s;
}

Settings submissionTls() {
  Settings s = submission();
  s.tlsActive = true;
  return s;
}

std::string b64(std::string_view raw) { return yubin::base64Encode(raw); }
std::string plain(std::string_view user, std::string_view pw) {
  std::string m(1, '\0');
  m.append(user);
  m.push_back('\0');
  m.append(pw);
  return m;
}
const std::string kAuthGood = "AUTH PLAIN " + b64(plain("user", "pw")) + "\r\n";

}  // namespace

TEST_CASE("AUTH: refused before TLS, offered and accepted after STARTTLS", "[session][auth]") {
  auto o = run(submission(),
               std::vector<Step>{in(kEhlo + kAuthGood + kMail + "STARTTLS\r\n"), kTlsUp,
                                 in(kEhlo + kAuthGood + kMail + kRcpt + "DATA\r\nx\r\n.\r\n")});
  CHECK(o.codes == greeted({"250", "538 5.7.11", "530 5.7.0", "220 2.0.0", "250", "235 2.7.0",
                            "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"}));
  size_t tlsAt = o.sent.find("220 2.0.0");
  CHECK(o.sent.substr(0, tlsAt).find("AUTH") == std::string::npos);
  CHECK(o.sent.substr(tlsAt).find("250 AUTH PLAIN LOGIN\r\n") != std::string::npos);
  CHECK(o.sent.find("235 2.7.0 Authentication successful\r\n") != std::string::npos);
  CHECK(o.events ==
        std::vector<std::string>{"starttls", "auth-start PLAIN |user|pw", "begin", "end"});
  REQUIRE(o.envelopes.size() == 1);
  CHECK(o.envelopes[0].authUser == "user");
  CHECK(o.senders == std::vector<std::string>{"sender@client.test"});
}

TEST_CASE("AUTH: the loopback exception allows it without TLS", "[session][auth]") {
  Settings s = submission();
  s.authWithoutTls = true;
  auto o = run(s, kEhlo + kAuthGood + kMail);
  CHECK(o.codes == greeted({"250", "235 2.7.0", "250 2.1.0"}));
  CHECK(o.sent.find("250 AUTH PLAIN LOGIN\r\n") != std::string::npos);
}

TEST_CASE("AUTH: STARTTLS after AUTH forgets the user", "[session][auth]") {
  Settings s = submission();
  s.authWithoutTls = true;
  auto o =
      run(s, std::vector<Step>{in(kEhlo + kAuthGood + "STARTTLS\r\n"), kTlsUp, in(kEhlo + kMail)});
  CHECK(o.codes == greeted({"250", "235 2.7.0", "220 2.0.0", "250", "530 5.7.0"}));
}

TEST_CASE("AUTH: challenges, responses and outcomes", "[session][auth]") {
  struct Case {
    std::string name, input;
    Codes codes;
    std::vector<std::string> events;
  };
  const std::vector<Case> cases = {
      {"PLAIN without initial response",
       "AUTH PLAIN\r\n" + b64(plain("user", "pw")) + "\r\n",
       {"334", "235 2.7.0"},
       {"auth-start PLAIN", "auth-response |user|pw"}},
      {"PLAIN, empty initial response", "AUTH PLAIN =\r\n", {"535 5.7.8"}, {"auth-start PLAIN "}},
      {"wrong password",
       "AUTH PLAIN " + b64(plain("user", "nope")) + "\r\n",
       {"535 5.7.8"},
       {"auth-start PLAIN |user|nope"}},
      {"mechanism in lower case",
       "AUTH plain " + b64(plain("user", "pw")) + "\r\n",
       {"235 2.7.0"},
       {"auth-start PLAIN |user|pw"}},
      {"LOGIN",
       "AUTH LOGIN\r\n" + b64("user") + "\r\n" + b64("pw") + "\r\n",
       {"334", "334", "235 2.7.0"},
       {"auth-start LOGIN", "auth-response user", "auth-response pw"}},
      {"LOGIN with the user as initial response",
       "AUTH LOGIN " + b64("user") + "\r\n" + b64("pw") + "\r\n",
       {"334", "235 2.7.0"},
       {"auth-start LOGIN user", "auth-response pw"}},
      {"cancelled, then again",
       "AUTH LOGIN\r\n*\r\n" + kAuthGood,
       {"334", "501 5.0.0", "235 2.7.0"},
       {"auth-start LOGIN", "auth-abort", "auth-start PLAIN |user|pw"}},
      {"bad base64 in a response",
       "AUTH LOGIN\r\n!!!\r\nNOOP\r\n",
       {"334", "501 5.5.2", "250 2.0.0"},
       {"auth-start LOGIN", "auth-abort"}},
      {"bad base64 in the initial response", "AUTH PLAIN AB$=\r\n", {"501 5.5.2"}, {}},
      {"unknown mechanism", "AUTH CRAM-MD5\r\n", {"504 5.5.4"}, {}},
      {"no mechanism", "AUTH\r\n", {"501 5.5.4"}, {}},
      {"too many arguments", "AUTH PLAIN AAAA AAAA\r\n", {"501 5.5.4"}, {}},
      {"twice", kAuthGood + kAuthGood, {"235 2.7.0", "503 5.5.1"}, {"auth-start PLAIN |user|pw"}},
      {"temporary failure",
       "AUTH PLAIN " + b64(plain("busy", "x")) + "\r\n",
       {"454 4.7.0"},
       {"auth-start PLAIN |busy|x"}},
      {"throttled: 421 and close",
       "AUTH PLAIN " + b64(plain("lock", "x")) + "\r\nNOOP\r\n",
       {"421 4.7.0"},
       {"auth-start PLAIN |lock|x", "close"}},
      {"EHLO and RSET keep the user",
       kAuthGood + "RSET\r\n" + kEhlo + kMail,
       {"235 2.7.0", "250 2.0.0", "250", "250 2.1.0"},
       {"auth-start PLAIN |user|pw"}},
      {"a response line of 12288 octets is allowed",
       "AUTH LOGIN\r\n" + std::string(12284, 'A') + "\r\n",
       {"334", "334"},
       {"auth-start LOGIN",
        "auth-response " + std::string(9213, '\0').replace(0, 9213, 9213, '|')}},
      {"a longer one is refused",
       "AUTH LOGIN\r\n" + std::string(12288, 'A') + "\r\nNOOP\r\n",
       {"334", "500 5.5.6", "250 2.0.0"},
       {"auth-start LOGIN", "auth-abort"}},
      {"an AUTH command line of 12288 octets is read",
       "AUTH PLAIN " + std::string(12272, 'A') + "   \r\n",
       {"535 5.7.8"},
       {"auth-start PLAIN " + std::string(9204, '|')}},
      {"a longer AUTH command line is refused before any exchange",
       "AUTH PLAIN " + std::string(12276, 'A') + "\r\nNOOP\r\n",
       {"500 5.5.2", "250 2.0.0"},
       {}},
      {"a far longer one is skipped, and the next AUTH runs",
       "AUTH PLAIN " + std::string(100000, 'A') + "\r\n" + kAuthGood,
       {"500 5.5.2", "235 2.7.0"},
       {"auth-start PLAIN |user|pw"}},
      {"a temporary failure, then a login",
       "AUTH PLAIN " + b64(plain("busy", "x")) + "\r\n" + kAuthGood,
       {"454 4.7.0", "235 2.7.0"},
       {"auth-start PLAIN |busy|x", "auth-start PLAIN |user|pw"}},
      {"an AUTH line past maxCommandLine is allowed",
       "AUTH PLAIN " + b64(plain("user", std::string(3000, 'p'))) + "\r\n",
       {"535 5.7.8"},
       {"auth-start PLAIN |user|" + std::string(3000, 'p')}},
      {"other commands are not",
       "NOOP " + std::string(3000, 'x') + "\r\nNOOP\r\n",
       {"500 5.5.2", "250 2.0.0"},
       {}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    auto o = run(submissionTls(), kEhlo + c.input);
    Codes want = {"250"};
    want.insert(want.end(), c.codes.begin(), c.codes.end());
    CHECK(o.codes == greeted(want));
    CHECK(o.events == c.events);
  }
}

TEST_CASE("AUTH: the challenges on the wire", "[session][auth]") {
  auto o = run(submissionTls(),
               kEhlo + "AUTH LOGIN\r\n" + b64("user") + "\r\n" + b64("pw") + "\r\nAUTH PLAIN\r\n");
  CHECK(o.sent.find("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0") != std::string::npos);
  auto o2 = run(submissionTls(), kEhlo + "AUTH PLAIN\r\n");
  CHECK(o2.sent.substr(o2.sent.size() - 6) == "334 \r\n");
  CHECK(o2.state == Session::State::AuthResponse);
}

TEST_CASE("AUTH: the refusals on the wire", "[session][auth]") {
  auto o = run(submissionTls(), kEhlo + "AUTH PLAIN " + b64(plain("busy", "x")) + "\r\n");
  INFO(o.sent);
  CHECK(o.sent.ends_with("\r\n454 4.7.0 Error: temporary authentication failure\r\n"));
  CHECK(o.state == Session::State::Idle);
  auto o2 = run(submissionTls(), kEhlo + "AUTH LOGIN\r\n" + std::string(20000, 'A') + "\r\n");
  CHECK(o2.sent.ends_with("\r\n334 VXNlcm5hbWU6\r\n"
                          "500 5.5.6 Error: authentication exchange line is too long\r\n"));
  CHECK(o2.state == Session::State::Idle);
  CHECK(o2.errors == 1);
}

TEST_CASE("AUTH: sequence rules", "[session][auth]") {
  SECTION("before EHLO, after HELO") {
    auto o = run(submissionTls(), kAuthGood + "HELO c.test\r\n" + kAuthGood);
    CHECK(o.codes == greeted({"503 5.5.1", "250", "503 5.5.1"}));
    CHECK(o.events.empty());
  }
  SECTION("in a transaction") {
    Settings s = submissionTls();
    s.requireAuth = false;
    auto o = run(s, kEhlo + kMail + kAuthGood);
    CHECK(o.codes == greeted({"250", "250 2.1.0", "503 5.5.1"}));
  }
  SECTION("MAIL, RCPT, DATA and BDAT need AUTH") {
    auto o = run(submissionTls(), kEhlo + kMail + kRcpt + "DATA\r\nBDAT 3 LAST\r\nabcNOOP\r\n");
    CHECK(o.codes ==
          greeted({"250", "530 5.7.0", "530 5.7.0", "530 5.7.0", "530 5.7.0", "250 2.0.0"}));
    CHECK(o.senders.empty());
  }
  SECTION("no mechanism offered") {
    Fake f;
    f.mechanisms.clear();
    Session s(submissionTls(), f, f);
    f.session = &s;
    s.greet();
    s.feed(kEhlo + kAuthGood);
    CHECK(f.sent.find("AUTH") == std::string::npos);
    CHECK(replyCodes(f.sent).back() == "503 5.5.1");
  }
  SECTION("AUTH is unknown outside submission") {
    auto o = run(smtp(), kEhlo + kAuthGood);
    CHECK(o.codes == greeted({"250", "500 5.5.2"}));
    CHECK(o.sent.find("AUTH") == std::string::npos);
  }
  SECTION("failures count toward maxErrors") {
    Settings s = submissionTls();
    s.maxErrors = 2;
    std::string bad = "AUTH PLAIN " + b64(plain("user", "x")) + "\r\n";
    auto o = run(s, kEhlo + bad + bad + bad + kAuthGood);
    CHECK(o.codes == greeted({"250", "535 5.7.8", "535 5.7.8", "421 4.7.0"}));
    CHECK(o.state == Session::State::Closed);
  }
}

TEST_CASE("AUTH: the engine waits for the glue's answer", "[session][auth]") {
  SECTION("input pipelined behind AUTH waits") {
    auto o = run(submissionTls(),
                 std::vector<Step>{in(kEhlo + kAuthGood + kMail + kRcpt), kAuthAnswer,
                                   in("DATA\r\nx\r\n.\r\n")},
                 true, true);
    CHECK(o.codes == greeted({"250", "235 2.7.0", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"}));
  }
  SECTION("the client leaves while the password is checked") {
    auto o =
        run(submissionTls(), std::vector<Step>{in(kEhlo + kAuthGood), kPeerClosed}, true, true);
    CHECK(o.events == std::vector<std::string>{"auth-start PLAIN |user|pw", "auth-abort"});
    CHECK(o.state == Session::State::Closed);
  }
  SECTION("timeout while waiting for a response") {
    auto o =
        run(submissionTls(), std::vector<Step>{in(kEhlo + "AUTH LOGIN\r\n"), kAuthAnswer, kTimeout},
            true, true);
    CHECK(o.codes == greeted({"250", "334", "421 4.4.2"}));
    CHECK(o.events == std::vector<std::string>{"auth-start LOGIN", "auth-abort", "close"});
  }
  SECTION("shutdown while authenticating") {
    auto o = run(submissionTls(), std::vector<Step>{in(kEhlo + kAuthGood), kShutdown}, true, true);
    CHECK(o.codes == greeted({"250", "421 4.3.2"}));
    CHECK(o.events == std::vector<std::string>{"auth-start PLAIN |user|pw", "auth-abort", "close"});
  }
}
