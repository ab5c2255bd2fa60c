// Tests for the LMTP client: dot-stuffing (table, byte by byte, round trip
// through the server's decoder), and whole transactions against Yubin's own
// LMTP engine (smtp::Session in LMTP mode) on a Unix socket: per-recipient
// replies, connection reuse with RSET, the server going away at each step,
// refused connections, timeouts, broken replies, a large message.
#include "mtad/lmtp_client.hpp"

#include <event2/buffer.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "event/event_testing.hpp"
#include "mtad/lmtp_test_server.hpp"
#include "queue/test_util.hpp"
#include "smtp/data.hpp"
#include "smtp/session.hpp"

using namespace yubin;
using namespace yubin::mtad;
using namespace std::chrono_literals;
using yubin::mtad::testing::Behaviour;
using yubin::mtad::testing::FakeServer;

namespace {

std::string stuff(std::string_view in, size_t piece = 0) {
  DotEncoder e;
  std::string out;
  if (piece == 0) {
    e.encode(in, out);
  } else {
    for (size_t i = 0; i < in.size(); i += piece) e.encode(in.substr(i, piece), out);
  }
  e.finish(out);
  return out;
}

// ---------------------------------------------------------------- fixture

struct Fixture {
  Fixture() {
    // As the daemon skeleton does: a peer that hangs up is an error value
    // from write(2), not a signal.
    ::signal(SIGPIPE, SIG_IGN);
    auto b = yubin::event::newEventBase();
    REQUIRE(b);
    base = std::move(*b);
    auto q = queue::Queue::open({.spoolDir = dir.path() + "/spool"});
    REQUIRE(q);
    queue = std::move(*q);
    settings.socketPath = dir.path() + "/lmtp";
    settings.lhloName = "mx.test";
  }

  // Bufferevents freed with callbacks still deferred are released by the
  // loop: give it one more turn before the base goes.
  ~Fixture() { event_base_loop(base.get(), EVLOOP_NONBLOCK); }

  // Commits `content` and opens it.
  queue::QueueFile message(const std::string& content, bool utf8 = false) {
    queue::Envelope env;
    env.sender = "alice@example.org";
    env.recipients.push_back({"bob@example.org", 0, "", ""});
    env.arrivalTime = 1700000000;
    env.smtputf8 = utf8;
    auto m = queue->begin(env);
    REQUIRE(m);
    REQUIRE(m->append(content));
    auto id = queue->commitNow(std::move(*m));
    REQUIRE(id);
    auto f = queue->openMessage(*id);
    REQUIRE(f);
    return std::move(*f);
  }

  // Runs one transaction to the end (or fails the test after 10 s).
  LmtpResult run(LmtpClient& client, const queue::QueueFile& file, std::vector<std::string> rcpts,
                 bool utf8 = false) {
    LmtpRequest req;
    req.sender = "alice@example.org";
    req.recipients = std::move(rcpts);
    req.file = &file;
    req.smtputf8 = utf8;
    req.logId = "test";
    std::optional<LmtpResult> got;
    client.send(std::move(req), [&](LmtpResult r) {
      got = std::move(r);
      event_base_loopbreak(base.get());
    });
    yubin::event::testing::Watchdog dog(base.get());
    event_base_dispatch(base.get());
    REQUIRE_FALSE(dog.fired());
    REQUIRE(got);
    return std::move(*got);
  }

  // Runs the loop until pred() holds (or 10 s).
  void loopUntil(const std::function<bool()>& pred) {
    yubin::event::testing::Watchdog dog(base.get());
    yubin::event::Timer poll(base.get(), [] {});
    while (!pred() && !dog.fired()) {
      poll.arm(5ms);
      event_base_loop(base.get(), EVLOOP_ONCE);
    }
    REQUIRE(pred());
  }

  queue::testing::TempDir dir;
  yubin::event::EventBase base;
  std::unique_ptr<queue::Queue> queue;
  LmtpSettings settings;
};

}  // namespace

TEST_CASE("dot-stuffing", "[lmtp]") {
  struct Case {
    std::string in;
    std::string out;
  };
  auto c = GENERATE(values<Case>({
      {"", ".\r\n"},
      {"a\r\n", "a\r\n.\r\n"},
      {"a", "a\r\n.\r\n"},
      {"a\r", "a\r\r\n.\r\n"},
      {".\r\n", "..\r\n.\r\n"},
      {"x\r\n.\r\ny\r\n", "x\r\n..\r\ny\r\n.\r\n"},
      {"x\r\n..two\r\n", "x\r\n...two\r\n.\r\n"},
      {"a.b\r\n.", "a.b\r\n..\r\n.\r\n"},
      {"\r\n.\r\n\r\n", "\r\n..\r\n\r\n.\r\n"},
  }));
  INFO(c.in);
  CHECK(stuff(c.in) == c.out);
  CHECK(stuff(c.in, 1) == c.out);
  CHECK(stuff(c.in, 2) == c.out);
}

TEST_CASE("dot-stuffing round-trips through the server's decoder", "[lmtp]") {
  std::string content;
  for (int i = 0; i < 2000; ++i) {
    content += (i % 3 == 0) ? "." : "";
    content += (i % 7 == 0) ? ".." : "line";
    content += std::to_string(i) + "\r\n";
    if (i % 11 == 0) content += "\r\n";
  }
  for (size_t piece : {size_t(0), size_t(1), size_t(3), size_t(4096)}) {
    std::string wire = stuff(content, piece);
    smtp::DotDecoder d;
    std::string out;
    size_t used = d.decode(wire, out);
    CHECK(d.done());
    CHECK(used == wire.size());
    CHECK(out == content);
  }
}

TEST_CASE("a transaction with per-recipient replies", "[lmtp]") {
  Fixture f;
  Behaviour b;
  b.rcptRefusals["carol@example.org"] = smtp::reply(smtp::ReplyId::UserUnknown);
  b.finalReplies["dave@example.org"] = smtp::reply(smtp::ReplyId::MailboxFullTemporary);
  b.finalReplies["erin@example.org"] = smtp::reply(smtp::ReplyId::MailboxFull);
  FakeServer server(f.base.get(), f.settings.socketPath, b);
  const std::string content = "Subject: t\r\n\r\n.leading dot\r\n..two\r\nend";
  auto file = f.message(content);
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r =
      f.run(client, file,
            {"bob@example.org", "carol@example.org", "dave@example.org", "erin@example.org"});
  REQUIRE(r.replies.size() == 4);
  CHECK(r.replies[0].code == 250);
  CHECK(r.replies[0].enhanced == "2.0.0");
  CHECK(r.replies[1].code == 550);
  CHECK(r.replies[1].enhanced == "5.1.1");
  CHECK(r.replies[2].code == 452);
  CHECK(r.replies[2].enhanced == "4.2.2");
  CHECK(r.replies[3].code == 552);
  CHECK(r.replies[3].enhanced == "5.2.2");
  CHECK_FALSE(r.retryable);
  CHECK_FALSE(r.fileError);
  CHECK(r.reuse == 0);
  REQUIRE(server.messages.size() == 1);
  // Byte for byte, plus the CRLF the end-of-data line needs.
  CHECK(server.messages[0] == content + "\r\n");
  CHECK(client.ready());
  CHECK(client.pipelining());
  CHECK(client.eightBitMime());
  REQUIRE(server.conns.size() == 1);
  const std::string& in = server.conns[0]->input_;
  CHECK(in.rfind("LHLO mx.test\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n",
                 0) == 0);
}

TEST_CASE("the connection is reused with RSET", "[lmtp]") {
  Fixture f;
  FakeServer server(f.base.get(), f.settings.socketPath, Behaviour{});
  auto one = f.message("Subject: 1\r\n\r\none\r\n");
  auto two = f.message("Subject: 2\r\n\r\ntwo\r\n");
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r1 = f.run(client, one, {"bob@example.org"});
  LmtpResult r2 = f.run(client, two, {"bob@example.org", "carol@example.org"});
  CHECK(r1.replies[0].code == 250);
  CHECK(r2.replies[0].code == 250);
  CHECK(r2.replies[1].code == 250);
  CHECK(r2.reuse == 1);
  CHECK(server.accepted == 1);
  REQUIRE(server.messages.size() == 2);
  CHECK(server.messages[1] == "Subject: 2\r\n\r\ntwo\r\n");
  CHECK(server.conns[0]->input_.find("\r\nRSET\r\nMAIL FROM:") != std::string::npos);
  // The idle connection is closed after idleTimeout.
}

TEST_CASE("an idle connection closed by the server is noticed", "[lmtp]") {
  Fixture f;
  FakeServer server(f.base.get(), f.settings.socketPath, Behaviour{});
  auto one = f.message("x\r\n");
  LmtpClient client(f.base.get(), f.settings);
  bool closed = false;
  client.setOnIdleClose([&] { closed = true; });
  CHECK(f.run(client, one, {"bob@example.org"}).replies[0].code == 250);
  server.conns[0]->bev_.reset();  // the server hangs up
  f.loopUntil([&] { return closed; });
  CHECK(client.disconnected());
  // The next transaction connects again.
  CHECK(f.run(client, one, {"bob@example.org"}).replies[0].code == 250);
  CHECK(server.accepted == 2);
}

TEST_CASE("idle timeout closes the connection", "[lmtp]") {
  Fixture f;
  f.settings.idleTimeout = 50ms;
  FakeServer server(f.base.get(), f.settings.socketPath, Behaviour{});
  auto one = f.message("x\r\n");
  LmtpClient client(f.base.get(), f.settings);
  bool closed = false;
  client.setOnIdleClose([&] { closed = true; });
  f.run(client, one, {"bob@example.org"});
  f.loopUntil([&] { return closed; });
  CHECK(client.disconnected());
  // It said goodbye.
  f.loopUntil([&] { return server.conns[0]->gone_; });
  CHECK(server.conns[0]->input_.substr(server.conns[0]->input_.size() - 6) == "QUIT\r\n");
}

TEST_CASE("a stale reused connection is reported as retryable", "[lmtp]") {
  Fixture f;
  Behaviour b;
  b.closeAtRset = true;
  FakeServer server(f.base.get(), f.settings.socketPath, b);
  auto one = f.message("x\r\n");
  LmtpClient client(f.base.get(), f.settings);
  CHECK(f.run(client, one, {"bob@example.org"}).replies[0].code == 250);
  LmtpResult r = f.run(client, one, {"bob@example.org"});
  CHECK(r.retryable);
  CHECK(r.replies[0].code == 421);
  CHECK(client.disconnected());
  CHECK(server.messages.size() == 1);
}

TEST_CASE("no server: every recipient deferred", "[lmtp]") {
  Fixture f;
  auto one = f.message("x\r\n");
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r = f.run(client, one, {"bob@example.org", "carol@example.org"});
  REQUIRE(r.replies.size() == 2);
  for (const auto& rep : r.replies) {
    CHECK(rep.code == 421);
    CHECK(rep.enhanced == "4.4.1");
    CHECK(rep.summary().find("No such file or directory") != std::string::npos);
  }
  CHECK_FALSE(r.retryable);
  CHECK(client.disconnected());
}

TEST_CASE("a silent server times out", "[lmtp]") {
  Fixture f;
  f.settings.connectTimeout = 100ms;
  Behaviour b;
  b.silent = true;
  FakeServer server(f.base.get(), f.settings.socketPath, b);
  auto one = f.message("x\r\n");
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r = f.run(client, one, {"bob@example.org"});
  CHECK(r.replies[0].code == 421);
  CHECK(r.replies[0].enhanced == "4.4.2");
  CHECK(r.replies[0].summary().find("timeout") != std::string::npos);
}

TEST_CASE("refused greetings and broken replies are temporary failures", "[lmtp]") {
  struct Case {
    std::string greeting;
    int code;
    std::string enhanced;
    std::string text;
  };
  auto c = GENERATE(values<Case>({
      {"554 5.3.2 go away\r\n", 451, "4.3.0", "LMTP greeting: 554 5.3.2 go away"},
      {"421 4.3.2 busy\r\n", 421, "4.3.2", "busy"},
      {"220-a\r\n221 b\r\n", 451, "4.5.0", "mixed reply codes"},
      {"220 x\n", 451, "4.5.0", "bare LF"},
      {"2x0 x\r\n", 451, "4.5.0", "bad reply code"},
  }));
  INFO(c.greeting);
  Fixture f;
  f.settings.replyTimeout = 2s;
  Behaviour b;
  b.rawGreeting = c.greeting;
  FakeServer server(f.base.get(), f.settings.socketPath, b);
  auto one = f.message("x\r\n");
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r = f.run(client, one, {"bob@example.org"});
  CHECK(r.replies[0].code == c.code);
  CHECK(r.replies[0].enhanced == c.enhanced);
  CHECK(r.replies[0].summary().find(c.text) != std::string::npos);
  CHECK(client.disconnected());
}

TEST_CASE("the server closing before the per-recipient replies", "[lmtp]") {
  Fixture f;
  Behaviour b;
  b.closeAtDataEnd = true;
  b.rcptRefusals["carol@example.org"] = smtp::reply(smtp::ReplyId::UserUnknown);
  FakeServer server(f.base.get(), f.settings.socketPath, b);
  auto one = f.message("x\r\n");
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r = f.run(client, one, {"bob@example.org", "carol@example.org"});
  CHECK(r.replies[0].code == 421);
  CHECK(r.replies[0].summary().find("connection lost") != std::string::npos);
  CHECK(r.replies[1].code == 550);  // answered before the failure: kept
  CHECK_FALSE(r.retryable);
}

TEST_CASE("SMTPUTF8 is required when the message needs it", "[lmtp]") {
  Fixture f;
  FakeServer server(f.base.get(), f.settings.socketPath, Behaviour{});
  auto one = f.message("x\r\n", true);
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r = f.run(client, one, {"bob@example.org"}, true);
  CHECK(r.replies[0].code == 250);
  CHECK(server.conns[0]->input_.find("MAIL FROM:<alice@example.org> SMTPUTF8\r\n") !=
        std::string::npos);
}

TEST_CASE("a large message is streamed and arrives intact", "[lmtp]") {
  Fixture f;
  f.settings.outputHighWater = 16 * 1024;
  f.settings.readChunk = 4096;
  FakeServer server(f.base.get(), f.settings.socketPath, Behaviour{});
  std::string content = "Subject: big\r\n\r\n";
  for (int i = 0; content.size() < 3 * 1024 * 1024; ++i)
    content += (i % 5 == 0 ? ".dotted line " : "plain line ") + std::to_string(i) + "\r\n";
  auto big = f.message(content);
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r = f.run(client, big, {"bob@example.org"});
  CHECK(r.replies[0].code == 250);
  REQUIRE(server.messages.size() == 1);
  CHECK(server.messages[0].size() == content.size());
  CHECK(server.messages[0] == content);
}

// Regression (lmtp_client fuzz target): a server that answers DATA with a
// 2xx instead of 354 never got the message; that must not count as a
// delivery. The whole conversation is scripted in the greeting.
TEST_CASE("a reply to DATA other than 354 is never a delivery", "[lmtp]") {
  struct Case {
    std::string dataReply;
    int code;
    std::string enhanced;
  };
  auto c = GENERATE(values<Case>({
      {"250 2.0.0 fine\r\n", 451, "4.3.0"},
      {"251 ok\r\n", 451, "4.3.0"},
      {"334 what\r\n", 451, "4.3.0"},
      {"452 4.3.1 full\r\n", 452, "4.3.1"},
      {"554 5.5.1 no\r\n", 554, "5.5.1"},
  }));
  INFO(c.dataReply);
  Fixture f;
  Behaviour b;
  b.rawGreeting =
      "220 x\r\n250-x\r\n250 PIPELINING\r\n250 mail\r\n250 rcpt\r\n250 rcpt\r\n" + c.dataReply;
  FakeServer server(f.base.get(), f.settings.socketPath, b);
  auto one = f.message("x\r\n");
  LmtpClient client(f.base.get(), f.settings);
  LmtpResult r = f.run(client, one, {"bob@example.org", "carol@example.org"});
  REQUIRE(r.replies.size() == 2);
  for (const auto& rep : r.replies) {
    CHECK(rep.code == c.code);
    CHECK(rep.enhanced == c.enhanced);
  }
  CHECK(server.messages.empty());
}

// Only a 2xx accepts MAIL or RCPT: a 3xx there is a broken server and a
// temporary failure, never an acceptance that leads on to DATA.
TEST_CASE("a 3xx reply to MAIL or RCPT is a temporary failure", "[lmtp]") {
  Fixture f;
  Behaviour b;
  SECTION("to MAIL: every recipient deferred, no DATA") {
    b.rawGreeting = "220 x\r\n250-x\r\n250 PIPELINING\r\n354 mail?\r\n250 rcpt\r\n250 rcpt\r\n";
    FakeServer server(f.base.get(), f.settings.socketPath, b);
    auto one = f.message("x\r\n");
    LmtpClient client(f.base.get(), f.settings);
    LmtpResult r = f.run(client, one, {"bob@example.org", "carol@example.org"});
    REQUIRE(r.replies.size() == 2);
    for (const auto& rep : r.replies) {
      CHECK(rep.code == 451);
      CHECK(rep.enhanced == "4.3.0");
    }
    CHECK(server.messages.empty());
  }
  SECTION("to one RCPT: that one deferred, and no DATA when the other is refused") {
    // Were the 354 taken as an acceptance, the client would send DATA and
    // wait for a reply the script never gives (the watchdog fails the test).
    b.rawGreeting =
        "220 x\r\n250-x\r\n250 PIPELINING\r\n250 mail\r\n354 rcpt?\r\n550 5.1.1 no\r\n";
    FakeServer server(f.base.get(), f.settings.socketPath, b);
    auto one = f.message("x\r\n");
    LmtpClient client(f.base.get(), f.settings);
    LmtpResult r = f.run(client, one, {"bob@example.org", "carol@example.org"});
    REQUIRE(r.replies.size() == 2);
    CHECK(r.replies[0].code == 451);
    CHECK(r.replies[0].enhanced == "4.3.0");
    CHECK(r.replies[1].code == 550);
    CHECK(server.messages.empty());
  }
}
