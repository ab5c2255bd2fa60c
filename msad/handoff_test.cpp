// Tests for the handoff to mtad: the MAIL/RCPT commands built from an
// envelope, the reply mapping, and whole handoffs against a fake mtad on a
// Unix socket: committed (250 passed on), a refused recipient, mtad down,
// mtad closing mid-message, a garbled reply, a 3xx where only 2xx accepts,
// content held until 354 and dot-stuffed.
#include "msad/handoff.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <catch2/catch.hpp>

#include "auth/test_util.hpp"
#include "sys/listen.hpp"

using namespace yubin;
using namespace yubin::msad;

namespace {

smtp::Envelope envelope() {
  smtp::Envelope env;
  env.from = {"alice", "example.org"};
  env.fromRaw = "<alice@example.org>";
  env.authUser = "alice@example.org";
  smtp::Recipient r;
  r.address = {"bob", "remote.example"};
  r.raw = "<bob@remote.example>";
  env.recipients.push_back(r);
  return env;
}

// A scripted mtad: reads lines, answers, collects the DATA content.
struct FakeMtad {
  enum class Mode {
    Ok,
    RefuseRcpt,
    CloseInData,
    Garbage,
    NoGreeting,
    ThreeToMail,  // a broken mtad: 354 to MAIL, to RCPT or to the end of data
    ThreeToRcpt,
    ThreeToEnd
  };
  Mode mode = Mode::Ok;
  std::string commands;  // every command line received
  std::string content;   // raw DATA bytes up to and including the dot line
  bool inData = false;
  yubin::event::Bufferevent bev;

  void onBytes(std::string_view b) {
    if (inData) {
      content.append(b);
      if (mode == Mode::CloseInData) {
        bev.reset();
        return;
      }
      if (content.size() >= 5 && content.substr(content.size() - 5) == "\r\n.\r\n") {
        inData = false;
        send(mode == Mode::ThreeToEnd ? "354 more?\r\n" : "250 2.0.0 Ok: queued as Q1\r\n");
      }
      return;
    }
    pending_.append(b);
    size_t lf;
    while ((lf = pending_.find("\r\n")) != std::string::npos) {
      std::string line = pending_.substr(0, lf);
      pending_.erase(0, lf + 2);
      commands += line + "\n";
      if (line.rfind("EHLO", 0) == 0) {
        send("250-mtad\r\n250 PIPELINING\r\n");
      } else if (line.rfind("MAIL", 0) == 0) {
        send(mode == Mode::Garbage       ? "2x0 what\r\n"
             : mode == Mode::ThreeToMail ? "354 2.1.0 Ok?\r\n"
                                         : "250 2.1.0 Ok\r\n");
      } else if (line.rfind("RCPT", 0) == 0) {
        send(mode == Mode::RefuseRcpt    ? "550 5.1.1 no such user\r\n"
             : mode == Mode::ThreeToRcpt ? "354 2.1.5 Ok?\r\n"
                                         : "250 2.1.5 Ok\r\n");
      } else if (line == "DATA") {
        if (mode == Mode::RefuseRcpt) {
          send("554 5.5.1 no valid recipients\r\n");
        } else {
          send("354 go\r\n");
          inData = true;
          std::string rest = std::move(pending_);
          pending_.clear();
          if (!rest.empty()) onBytes(rest);
          return;
        }
      }
    }
  }
  void send(std::string_view s) {
    if (bev) bufferevent_write(bev.get(), s.data(), s.size());
  }
  std::string pending_;
};

struct Harness {
  auth::testing::TempDir dir;
  std::string path = dir.file("submission");
  yubin::event::EventBase base = yubin::event::newEventBase().value();
  FakeMtad mtad;
  std::unique_ptr<yubin::event::Listener> listener;
  std::optional<smtp::Reply> result;

  void listen() {
    auto fd = sys::bindUnix(path, 0600, static_cast<gid_t>(-1));
    REQUIRE(fd.ok());
    auto l = yubin::event::Listener::create(
        base.get(), std::move(*fd), [this](UniqueFd c, const yubin::event::Peer&) {
          mtad.bev = yubin::event::newSocketBufferevent(base.get(), std::move(c)).value();
          bufferevent_setcb(
              mtad.bev.get(),
              [](bufferevent* b, void* self) {
                auto* m = static_cast<FakeMtad*>(self);
                char buf[4096];
                size_t n;
                while (m->bev && (n = bufferevent_read(b, buf, sizeof buf)) > 0)
                  m->onBytes(std::string_view(buf, n));
              },
              nullptr, nullptr, &mtad);
          bufferevent_enable(mtad.bev.get(), EV_READ | EV_WRITE);
          if (mtad.mode != FakeMtad::Mode::NoGreeting) mtad.send("220 mtad ESMTP\r\n");
        });
    REQUIRE(l.ok());
    listener = std::move(*l);
  }
  HandoffSettings settings() {
    HandoffSettings s;
    s.socketPath = path;
    s.heloName = "msa.test";
    s.replyTimeout = std::chrono::milliseconds(500);
    return s;
  }
  std::unique_ptr<Handoff> start(const smtp::Envelope& env = envelope()) {
    return std::make_unique<Handoff>(base.get(), settings(), env, env.authUser, "t",
                                     [this](const smtp::Reply& r) { result = r; });
  }
  void runUntilDone() {
    for (int i = 0; i < 5000 && !result; ++i) event_base_loop(base.get(), EVLOOP_ONCE);
    REQUIRE(result);
  }
};

}  // namespace

TEST_CASE("handoff commands") {
  smtp::Envelope env = envelope();
  CHECK(mailCommand(env, "alice@example.org") ==
        "MAIL FROM:<alice@example.org> AUTH=alice@example.org\r\n");
  env.body = mail::Body::EightBitMime;
  env.smtputf8 = true;
  env.ret = mail::Ret::Headers;
  env.envid = "id+1 x";
  CHECK(mailCommand(env, "a=b@example.org") ==
        "MAIL FROM:<alice@example.org> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+20x "
        "AUTH=a+3Db@example.org\r\n");
  env.nullSender = true;
  CHECK(mailCommand(env, "") ==
        "MAIL FROM:<> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+20x AUTH=<>\r\n");
  smtp::Recipient r = envelope().recipients[0];
  CHECK(rcptCommand(r) == "RCPT TO:<bob@remote.example>\r\n");
  r.notify = mail::kNotifySuccess | mail::kNotifyDelay;
  r.orcptType = "rfc822";
  r.orcpt = "bob+x@remote.example";
  CHECK(
      rcptCommand(r) ==
      "RCPT TO:<bob@remote.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bx@remote.example\r\n");
  r.notify = mail::kNotifyNever;
  r.orcptType.clear();
  CHECK(rcptCommand(r) == "RCPT TO:<bob@remote.example> NOTIFY=NEVER\r\n");
}

TEST_CASE("handoff reply mapping") {
  CHECK(clientReplyFor({250, "2.0.0", {"Ok: queued as Q1"}}) ==
        smtp::Reply{250, "2.0.0", "Ok: queued as Q1"});
  CHECK(clientReplyFor({250, "", {"Ok"}}) == smtp::Reply{250, "2.0.0", "Ok"});
  CHECK(clientReplyFor({452, "", {"full", "really"}}) == smtp::Reply{452, "4.3.0", "full\nreally"});
  CHECK(clientReplyFor({550, "5.1.1", {"no"}}) == smtp::Reply{550, "5.1.1", "no"});
  CHECK(clientReplyFor({354, "", {"go"}}).code == 451);
}

TEST_CASE("handoff: committed, content held until 354 and dot-stuffed") {
  Harness h;
  h.listen();
  auto ho = h.start();
  ho->data("Subject: x\r\n\r\n.leading dot\r\n");  // before the connection is even made
  ho->end();
  h.runUntilDone();
  CHECK(*h.result == smtp::Reply{250, "2.0.0", "Ok: queued as Q1"});
  CHECK(h.mtad.commands ==
        "EHLO msa.test\nMAIL FROM:<alice@example.org> AUTH=alice@example.org\n"
        "RCPT TO:<bob@remote.example>\nDATA\n");
  CHECK(h.mtad.content == "Subject: x\r\n\r\n..leading dot\r\n.\r\n");
}

TEST_CASE("handoff: streaming after 354") {
  Harness h;
  h.listen();
  auto ho = h.start();
  for (int i = 0; i < 200 && !h.mtad.inData; ++i) event_base_loop(h.base.get(), EVLOOP_ONCE);
  REQUIRE(h.mtad.inData);
  std::string big(300000, 'x');
  ho->data("a\r\n.b\r\n");
  ho->data(big);
  ho->end();
  h.runUntilDone();
  CHECK(h.result->code == 250);
  CHECK(h.mtad.content == "a\r\n..b\r\n" + big + "\r\n.\r\n");
}

TEST_CASE("handoff: failures become replies, never silence") {
  SECTION("mtad down") {
    Harness h;  // nothing listens
    auto ho = h.start();
    ho->data("x\r\n");
    h.runUntilDone();
    CHECK(*h.result == smtp::reply(smtp::ReplyId::LocalError));
  }
  SECTION("a refused recipient") {
    Harness h;
    h.mtad.mode = FakeMtad::Mode::RefuseRcpt;
    h.listen();
    auto ho = h.start();
    h.runUntilDone();
    CHECK(h.result->code == 550);
    CHECK(h.result->enhanced == "5.1.1");
  }
  SECTION("mtad closes in the middle of the content") {
    Harness h;
    h.mtad.mode = FakeMtad::Mode::CloseInData;
    h.listen();
    auto ho = h.start();
    ho->data("x\r\n");
    h.runUntilDone();
    CHECK(h.result->code == 451);
    CHECK(h.result->enhanced == "4.3.0");
  }
  SECTION("a garbled reply") {
    Harness h;
    h.mtad.mode = FakeMtad::Mode::Garbage;
    h.listen();
    auto ho = h.start();
    h.runUntilDone();
    CHECK(h.result->code == 451);
  }
  SECTION("a 3xx to MAIL, RCPT or the end of data is a temporary failure, not an acceptance") {
    auto mode = GENERATE(FakeMtad::Mode::ThreeToMail, FakeMtad::Mode::ThreeToRcpt,
                         FakeMtad::Mode::ThreeToEnd);
    CAPTURE(static_cast<int>(mode));
    Harness h;
    h.mtad.mode = mode;
    h.listen();
    auto ho = h.start();
    ho->data("x\r\n");
    ho->end();
    h.runUntilDone();
    CHECK(h.result->code == 451);
    CHECK(h.result->enhanced == "4.3.0");
  }
  SECTION("no greeting: timeout") {
    Harness h;
    h.mtad.mode = FakeMtad::Mode::NoGreeting;
    h.listen();
    auto ho = h.start();
    h.runUntilDone();
    CHECK(h.result->code == 451);
  }
}
