// Tests for the admin's queue actions in mtad: the queue manager's flush,
// hold, release, delete and bounce on a real queue (temporary spool, real
// Directory, the fake mdad or none at all), an action on a message being
// delivered waiting for the attempt to end, and the queue channel
// (QueueControl) on a socketpair: show, list, unknown and malformed IDs,
// a hostile frame closing the channel.
#include "mtad/control.hpp"

#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "auth/directory.hpp"
#include "auth/test_util.hpp"
#include "event/event_testing.hpp"
#include "mtad/lmtp_test_server.hpp"
#include "mtad/qmgr.hpp"
#include "queue/queue.hpp"

using namespace yubin;
using namespace yubin::mtad;
using namespace std::chrono_literals;
using yubin::mtad::testing::Behaviour;
using yubin::mtad::testing::FakeServer;

namespace {

struct Engine {
  Engine() {
    ::signal(SIGPIPE, SIG_IGN);
    auto b = yubin::event::newEventBase();
    REQUIRE(b);
    base = std::move(*b);
    auto q = queue::Queue::open({.spoolDir = dir.file("spool")});
    REQUIRE(q);
    queue = std::move(*q);
    REQUIRE(queue->attachLoop(base.get()));
    auth::testing::writeText(
        dir.file("users"),
        "alice@example.org:*:::\nbob@example.org:*:::\ncarol@example.org:*:::\n");
    auth::testing::writeText(dir.file("aliases"), "");
    auth::DirectorySettings ds;
    ds.users.path = dir.file("users");
    ds.users.domains = auth::LocalDomains({"example.org"});
    ds.users.mailRoot = dir.file("mail");
    ds.aliasesFile = dir.file("aliases");
    directory = std::make_unique<auth::Directory>(ds);
    REQUIRE(directory->reload());
    settings.hostname = "mx.test";
    settings.retry.min = 3600s;  // a deferred message waits for the admin
    settings.retry.max = 3600s;
    settings.lmtp.socketPath = dir.file("lmtp");
    settings.lmtp.lhloName = "mx.test";
    settings.lmtp.connectTimeout = 1s;
    settings.lmtp.replyTimeout = 1s;
    settings.lmtp.dataTimeout = 1s;
  }
  ~Engine() {
    control.reset();
    qmgr.reset();
    event_base_loop(base.get(), EVLOOP_NONBLOCK);
    queue.reset();
  }

  void startQmgr() {
    qmgr = std::make_unique<Qmgr>(base.get(), *queue, *directory, settings);
    REQUIRE(qmgr->start());
  }

  queue::QueueId commit(const std::string& rcpt, const std::string& body) {
    queue::Envelope env;
    env.sender = "alice@example.org";
    env.recipients.push_back({rcpt, 0, "", ""});
    env.envid = "E1";
    env.ret = queue::Ret::Headers;
    env.arrivalTime = ::time(nullptr);
    auto m = queue->begin(env);
    REQUIRE(m);
    REQUIRE(m->append(body));
    auto id = queue->commitNow(std::move(*m));
    REQUIRE(id);
    if (qmgr) qmgr->queued(*id);  // as mtad does after a commit
    return *id;
  }

  queue::MessageState state(const queue::QueueId& id) {
    auto s = queue->loadState(id, 1);
    REQUIRE(s);
    return *s;
  }

  std::vector<queue::QueueId> ids(queue::Area area = queue::Area::Queue) {
    auto s = queue->scan(area);
    REQUIRE(s);
    return *s;
  }

  void loopUntil(const std::function<bool()>& pred, std::chrono::seconds limit = 10s) {
    yubin::event::testing::Watchdog dog(base.get(), limit);
    yubin::event::Timer poll(base.get(), [] {});
    while (!pred() && !dog.fired()) {
      poll.arm(5ms);
      event_base_loop(base.get(), EVLOOP_ONCE);
    }
    REQUIRE(pred());
  }

  // Runs one admin action to its answer.
  Result<std::string> act(const std::function<void(Qmgr::AdminDone)>& action) {
    std::optional<Result<std::string>> got;
    action([&](Result<std::string> r) { got = std::move(r); });
    CHECK_FALSE(got.has_value());  // never inside the call
    loopUntil([&] { return got.has_value(); });
    return *got;
  }

  // A message to bob, deferred (no mdad): one attempt, next in an hour.
  queue::QueueId deferred() {
    queue::QueueId id = commit("bob@example.org", "Subject: x\r\n\r\nbody\r\n");
    loopUntil([&] { return state(id).rcpts[0].status == queue::RcptStatus::Deferred; });
    loopUntil([&] { return qmgr->idle(); });
    return id;
  }

  auth::testing::TempDir dir;
  yubin::event::EventBase base;
  std::unique_ptr<queue::Queue> queue;
  std::unique_ptr<auth::Directory> directory;
  QmgrSettings settings;
  std::unique_ptr<Qmgr> qmgr;
  std::unique_ptr<QueueControl> control;
};

}  // namespace

TEST_CASE("admin: flush delivers a deferred message before its retry time") {
  Engine e;
  e.startQmgr();
  queue::QueueId id = e.deferred();
  CHECK(e.state(id).rcpts[0].nextAttempt > ::time(nullptr) + 3000);
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, Behaviour{});
  auto r = e.act([&](auto done) { e.qmgr->flush(done); });
  REQUIRE(r);
  CHECK(*r == "scheduled 1 message");
  e.loopUntil([&] { return e.ids().empty(); });
  REQUIRE(server.messages.size() == 1);
  CHECK(server.messages[0] == "Subject: x\r\n\r\nbody\r\n");
}

TEST_CASE("admin: hold survives a restart; release delivers") {
  Engine e;
  e.startQmgr();
  queue::QueueId id = e.deferred();
  auto held = e.act([&](auto done) { e.qmgr->hold(id, done); });
  REQUIRE(held);
  CHECK(*held == "held");
  CHECK(e.ids().empty());
  CHECK(e.ids(queue::Area::Hold) == std::vector<queue::QueueId>{id});
  auto retry = e.act([&](auto done) { e.qmgr->retry(id, done); });
  REQUIRE_FALSE(retry);
  CHECK(retry.error().errnum == EBUSY);

  // A new manager (mtad restarted) with mdad there: other mail flows, the
  // held message stays.
  e.qmgr.reset();
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, Behaviour{});
  e.startQmgr();
  auto flushed = e.act([&](auto done) { e.qmgr->flush(done); });
  CHECK(*flushed == "scheduled 0 messages");
  e.commit("carol@example.org", "Subject: other\r\n\r\n");
  e.loopUntil([&] { return server.messages.size() == 1 && e.ids().empty(); });
  CHECK(server.messages[0] == "Subject: other\r\n\r\n");
  CHECK(e.ids(queue::Area::Hold) == std::vector<queue::QueueId>{id});

  auto notHeld = e.act([&](auto done) { e.qmgr->release(queue::QueueId(id), done); });
  REQUIRE(notHeld);
  CHECK(*notHeld == "released");
  e.loopUntil([&] { return server.messages.size() == 2 && e.ids().empty(); });
  CHECK(e.ids(queue::Area::Hold).empty());
  auto again = e.act([&](auto done) { e.qmgr->release(id, done); });
  REQUIRE_FALSE(again);
  CHECK(again.error().errnum == ENOENT);
}

TEST_CASE("admin: delete removes the message and its state, no report") {
  Engine e;
  e.startQmgr();
  queue::QueueId id = e.deferred();
  auto r = e.act([&](auto done) { e.qmgr->remove(id, done); });
  REQUIRE(r);
  CHECK(*r == "deleted");
  e.loopUntil([&] { return e.qmgr->idle(); });
  CHECK(e.ids().empty());
  CHECK(e.ids(queue::Area::Hold).empty());
  CHECK_FALSE(
      std::filesystem::exists(queue::filePath(e.queue->spoolDir(), queue::Area::State, id)));
  auto again = e.act([&](auto done) { e.qmgr->remove(id, done); });
  REQUIRE_FALSE(again);
  CHECK(again.error().message == "no message " + id.str() + " in the queue");
}

TEST_CASE("admin: bounce queues one DSN from <> with 5.0.0 and removes the message") {
  Engine e;
  e.startQmgr();
  queue::QueueId id = e.deferred();
  auto r = e.act([&](auto done) { e.qmgr->bounce(id, done); });
  REQUIRE(r);
  CHECK(*r == "bounced 1 recipient");
  // The DSN (to alice, deferred too: no mdad) is the only message left.
  e.loopUntil([&] { return e.ids().size() == 1 && e.ids()[0] != id; });
  auto dsn = e.queue->openMessage(e.ids()[0]);
  REQUIRE(dsn);
  CHECK(dsn->envelope().nullSender);
  REQUIRE(dsn->envelope().recipients.size() == 1);
  CHECK(dsn->envelope().recipients[0].address == "alice@example.org");
  auto bytes = dsn->readAll();
  REQUIRE(bytes);
  CHECK_THAT(*bytes, Catch::Contains("Status: 5.0.0\r\n"));
  CHECK_THAT(*bytes, Catch::Contains("Action: failed\r\n"));
  CHECK_THAT(*bytes,
             Catch::Contains("Diagnostic-Code: smtp; 554 5.0.0 bounced by the administrator"));
  CHECK_THAT(*bytes, Catch::Contains("Original-Envelope-Id: E1"));
}

TEST_CASE("admin: an action on a message being delivered waits for the attempt to end") {
  Engine e;
  Behaviour silent;
  silent.silent = true;  // takes the message, never answers: the attempt times out
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, silent);
  e.startQmgr();
  queue::QueueId id = e.commit("bob@example.org", "Subject: x\r\n\r\n");
  e.loopUntil([&] { return e.qmgr->isActive(id); });
  std::optional<Result<std::string>> got;
  bool activeWhenAnswered = true;
  e.qmgr->hold(id, [&](Result<std::string> r) {
    activeWhenAnswered = e.qmgr->isActive(id);
    got = std::move(r);
  });
  e.loopUntil([&] { return got.has_value(); });
  REQUIRE(*got);
  CHECK(**got == "held");
  CHECK_FALSE(activeWhenAnswered);
  // The attempt's outcome was saved before the message moved.
  auto st = e.state(id);
  CHECK(st.rcpts[0].status == queue::RcptStatus::Deferred);
  CHECK(st.rcpts[0].attempts == 1);
  CHECK(e.ids(queue::Area::Hold) == std::vector<queue::QueueId>{id});
}

// ------------------------------------------------------------ the channel

namespace {

struct Channel {
  explicit Channel(Engine& e) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
    master.reset(sv[0]);
    auto c = QueueControl::create(e.base.get(), UniqueFd(sv[1]), *e.queue, *e.qmgr);
    REQUIRE(c);
    e.control = std::move(*c);
  }
  // Sends req and runs the loop until the answer is there.
  ipc::QueueResult ask(Engine& e, const ipc::QueueRequest& req) {
    REQUIRE(ipc::sendMessage(master.get(), req));
    std::optional<ipc::Message> got;
    e.loopUntil([&] {
      char buf[65536];
      ssize_t n = ::read(master.get(), buf, sizeof buf);
      if (n > 0) reader.feed(std::string_view(buf, static_cast<size_t>(n)));
      auto m = reader.next();
      REQUIRE(m);
      if (*m) got = std::move(**m);
      return got.has_value();
    });
    REQUIRE(std::holds_alternative<ipc::QueueResult>(*got));
    auto r = std::get<ipc::QueueResult>(*got);
    CHECK(r.serial == req.serial);
    return r;
  }
  UniqueFd master;
  ipc::FrameReader reader;
};

}  // namespace

TEST_CASE("queue channel: show, list, unknown and malformed IDs") {
  Engine e;
  e.startQmgr();
  queue::QueueId id = e.deferred();
  Channel ch(e);

  auto shown = ch.ask(e, {7, ipc::QueueAction::Show, id.str()});
  REQUIRE(shown.ok);
  REQUIRE(shown.messages.size() == 1);
  const ipc::QueueMessageInfo& m = shown.messages[0];
  CHECK(m.id == id.str());
  CHECK(m.state == ipc::QueueMsgState::Deferred);
  CHECK(m.sender == "alice@example.org");
  CHECK(m.envid == "E1");
  CHECK(m.ret == 2);
  REQUIRE(m.recipients.size() == 1);
  CHECK(m.recipients[0].address == "bob@example.org");
  CHECK(m.recipients[0].status == ipc::QueueRcptStatus::Deferred);
  CHECK(m.recipients[0].attempts == 1);
  CHECK_THAT(m.recipients[0].reply, Catch::StartsWith("4"));

  auto listed = ch.ask(e, {8, ipc::QueueAction::List, ""});
  REQUIRE(listed.ok);
  REQUIRE(listed.messages.size() == 1);
  CHECK(listed.messages[0] == m);

  auto unknown = ch.ask(e, {9, ipc::QueueAction::Delete, "0000000000000000"});
  CHECK_FALSE(unknown.ok);
  CHECK(unknown.text == "no message 0000000000000000 in the queue");

  for (std::string bad : {std::string("../../etc/passwd"), std::string("ABCDEFGHJKMNPQRS"),
                          std::string(""), std::string(17, 'a'), std::string("a\nb")}) {
    auto r = ch.ask(e, {10, ipc::QueueAction::Hold, bad});
    CHECK_FALSE(r.ok);
    CHECK(r.text == invalidIdError(bad));
  }
  CHECK(invalidIdError("a\x1b"
                       "b") ==
        "invalid queue ID 'a\\x1bb': a queue ID is 16 characters of 0-9 and a-z without i, l, o "
        "and u");
  CHECK(invalidIdError(std::string(50, 'x')).find(std::string(40, 'x') + "...'") !=
        std::string::npos);

  auto held = ch.ask(e, {11, ipc::QueueAction::Hold, id.str()});
  CHECK(held.ok);
  CHECK(held.text == "held");
  auto shownHeld = ch.ask(e, {12, ipc::QueueAction::Show, id.str()});
  REQUIRE(shownHeld.messages.size() == 1);
  CHECK(shownHeld.messages[0].state == ipc::QueueMsgState::Held);
}

TEST_CASE("queue channel: a message that is not a QueueRequest closes it") {
  Engine e;
  e.startQmgr();
  Channel ch(e);
  REQUIRE(ipc::sendMessage(ch.master.get(), ipc::StatusCommand{}));
  e.loopUntil([&] { return !e.control->open(); });
  char c;
  e.loopUntil([&] { return ::read(ch.master.get(), &c, 1) == 0; });  // EOF for the master
}
