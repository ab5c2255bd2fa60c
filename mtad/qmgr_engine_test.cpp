// Tests for the queue manager as a whole, on a real queue (temporary spool,
// group committer on the loop), a real Directory (temporary users and
// aliases files) and the fake mdad: start-up scan, the queued() hook,
// deferral and retry with the state file checked between, an alias whose
// targets end differently (split into a new message, no second copy), a
// permanent failure turned into a DSN from <>, a stop that waits for the
// delivery under way, and remote recipients (fake DNS, fake SMTP server)
// saved as soon as their own domain answers.
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "auth/directory.hpp"
#include "auth/test_util.hpp"
#include "dns/dns_testing.hpp"
#include "event/event_testing.hpp"
#include "mtad/lmtp_test_server.hpp"
#include "mtad/qmgr.hpp"
#include "queue/queue.hpp"
#include "queue/test_util.hpp"

using namespace yubin;
using namespace yubin::mtad;
using namespace std::chrono_literals;
using yubin::mtad::testing::Behaviour;
using yubin::mtad::testing::FakeServer;

namespace {

struct Engine {
  explicit Engine(queue::Fs* fs = nullptr) {
    ::signal(SIGPIPE, SIG_IGN);
    auto b = yubin::event::newEventBase();
    REQUIRE(b);
    base = std::move(*b);
    auto q = queue::Queue::open({.spoolDir = dir.file("spool"), .fs = fs});
    REQUIRE(q);
    queue = std::move(*q);
    REQUIRE(queue->attachLoop(base.get()));
    auth::testing::writeText(
        dir.file("users"),
        "alice@example.org:*:::\nbob@example.org:*:::\ncarol@example.org:*:::\n");
    auth::testing::writeText(dir.file("aliases"),
                             "team@example.org: bob@example.org, carol@example.org\n");
    auth::DirectorySettings ds;
    ds.users.path = dir.file("users");
    ds.users.domains = auth::LocalDomains({"example.org"});
    ds.users.mailRoot = dir.file("mail");
    ds.aliasesFile = dir.file("aliases");
    directory = std::make_unique<auth::Directory>(ds);
    REQUIRE(directory->reload());
    settings.hostname = "mx.test";
    settings.retry.min = 1s;
    settings.retry.max = 1s;
    settings.lmtp.socketPath = dir.file("lmtp");
    settings.lmtp.lhloName = "mx.test";
  }
  ~Engine() {
    qmgr.reset();
    event_base_loop(base.get(), EVLOOP_NONBLOCK);
    queue.reset();
  }

  void startQmgr() {
    qmgr = std::make_unique<Qmgr>(base.get(), *queue, *directory, settings);
    REQUIRE(qmgr->start());
  }

  queue::QueueId commit(std::vector<std::string> rcpts, const std::string& body,
                        std::string sender = "alice@example.org") {
    queue::Envelope env;
    env.sender = sender;
    env.nullSender = sender.empty();
    for (auto& r : rcpts) env.recipients.push_back({r, 0, "", ""});
    env.arrivalTime = ::time(nullptr);
    auto m = queue->begin(env);
    REQUIRE(m);
    REQUIRE(m->append(body));
    auto id = queue->commitNow(std::move(*m));
    REQUIRE(id);
    return *id;
  }

  std::vector<queue::QueueId> ids() {
    auto s = queue->scan();
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

  auth::testing::TempDir dir;
  yubin::event::EventBase base;
  std::unique_ptr<queue::Queue> queue;
  std::unique_ptr<auth::Directory> directory;
  QmgrSettings settings;
  std::unique_ptr<Qmgr> qmgr;
};

size_t copiesFor(const FakeServer& s, const std::string& rcpt) {
  size_t n = 0;
  for (const auto& [from, rcpts] : s.envelopes)
    for (const auto& r : rcpts) n += r == rcpt;
  return n;
}

// The real file system, except that removing a message from queue/ fails
// while `failRemovals` is set.
struct RemovalFailingFs : queue::RealFs {
  Status unlink(const std::string& path) override {
    if (failRemovals && path.find("/queue/") != std::string::npos) {
      ++refused;
      return Error{"unlink " + path + ": injected EIO", EIO};
    }
    return RealFs::unlink(path);
  }
  bool failRemovals = true;
  int refused = 0;
};

}  // namespace

TEST_CASE("a delivered message that cannot be removed keeps its state; never delivered twice",
          "[qmgr]") {
  RemovalFailingFs fs;
  Engine e(&fs);
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, Behaviour{});
  auto id = e.commit({"bob@example.org"}, "Subject: r\r\n\r\nremove me\r\n");
  e.startQmgr();
  // Without a removal, the final state is saved instead (delivered).
  e.loopUntil([&] {
    auto st = e.queue->loadState(id, 1);
    return fs.refused >= 1 && st && st->rcpts[0].status == queue::RcptStatus::Delivered;
  });
  CHECK(server.messages.size() == 1);
  // The removal is tried again later and then succeeds; bob got one copy.
  fs.failRemovals = false;
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); }, 15s);
  CHECK(server.messages.size() == 1);
  CHECK(std::filesystem::is_empty(e.dir.file("spool/state")));
}

TEST_CASE("messages found at start-up and queued later are delivered and removed", "[qmgr]") {
  Engine e;
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, Behaviour{});
  e.commit({"bob@example.org"}, "Subject: 1\r\n\r\none\r\n");
  e.commit({"carol@example.org"}, "Subject: 2\r\n\r\ntwo\r\n");
  e.startQmgr();
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); });
  CHECK(server.messages.size() == 2);
  auto late = e.commit({"bob@example.org", "team@example.org"}, "Subject: 3\r\n\r\nthree\r\n");
  e.qmgr->queued(late);
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); });
  REQUIRE(server.messages.size() == 3);
  CHECK(server.messages[2] == "Subject: 3\r\n\r\nthree\r\n");
  // bob named directly and through the alias: one LMTP recipient.
  CHECK(server.envelopes[2].second ==
        std::vector<std::string>{"bob@example.org", "carol@example.org"});
  // The two found at start-up went out at once on two connections; the
  // third reused one of them.
  CHECK(server.accepted == 2);
  bool reused = false;
  for (const auto& c : server.conns) reused |= c->input_.find("\r\nRSET\r\n") != std::string::npos;
  CHECK(reused);
  // No state file is left behind.
  CHECK(std::filesystem::is_empty(e.dir.file("spool/state")));
}

TEST_CASE("mdad away: deferred with its reply, delivered on the retry", "[qmgr]") {
  Engine e;
  auto id = e.commit({"bob@example.org"}, "Subject: d\r\n\r\nlater\r\n");
  e.startQmgr();
  auto state = [&] { return e.queue->loadState(id, 1); };
  e.loopUntil([&] {
    auto s = state();
    return s && s->rcpts[0].status == queue::RcptStatus::Deferred;
  });
  auto s = state();
  REQUIRE(s);
  CHECK(s->rcpts[0].attempts >= 1);
  CHECK(s->rcpts[0].reply.rfind("421 4.4.1 cannot connect to LMTP socket", 0) == 0);
  CHECK(s->rcpts[0].nextAttempt > s->rcpts[0].lastAttempt);
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, Behaviour{});
  e.loopUntil([&] { return e.ids().empty(); }, 15s);
  REQUIRE(server.messages.size() == 1);
  CHECK(server.messages[0] == "Subject: d\r\n\r\nlater\r\n");
}

TEST_CASE("an alias whose targets end differently: the rest moves to a new message", "[qmgr]") {
  Engine e;
  Behaviour b;
  b.finalReplies["carol@example.org"] = smtp::reply(smtp::ReplyId::MailboxFullTemporary);
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, b);
  auto id = e.commit({"team@example.org"}, "Subject: team\r\n\r\nhi\r\n");
  e.startQmgr();
  // bob has his copy; the original is gone; a new message holds carol.
  e.loopUntil([&] {
    auto ids = e.ids();
    return copiesFor(server, "bob@example.org") == 1 && ids.size() == 1 && ids[0] != id;
  });
  queue::QueueId rest = e.ids()[0];
  auto file = e.queue->openMessage(rest);
  REQUIRE(file);
  const auto& env = file->envelope();
  REQUIRE(env.recipients.size() == 1);
  CHECK(env.recipients[0].address == "carol@example.org");
  CHECK(env.recipients[0].orcptType == "rfc822");
  CHECK(env.recipients[0].orcpt == "team@example.org");
  CHECK(env.sender == "alice@example.org");
  auto content = file->readAll();
  REQUIRE(content);
  CHECK(*content == "Subject: team\r\n\r\nhi\r\n");
  // carol's mailbox comes back: she gets it on the retry; bob never again.
  server.behaviour.finalReplies.clear();
  e.loopUntil([&] { return e.ids().empty(); }, 15s);
  CHECK(copiesFor(server, "carol@example.org") >= 1);
  CHECK(copiesFor(server, "bob@example.org") == 1);
}

TEST_CASE("a permanent failure sends a DSN from <> to the sender", "[qmgr]") {
  Engine e;
  Behaviour b;
  b.finalReplies["carol@example.org"] = smtp::reply(smtp::ReplyId::MailboxFull);
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, b);
  e.commit({"carol@example.org", "bob@example.org"}, "Subject: q\r\n\r\nbody\r\n");
  // A bounce is never bounced: this one's failure is only logged.
  e.commit({"carol@example.org"}, "Subject: from null\r\n\r\nx\r\n", "");
  e.startQmgr();
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); });
  std::vector<std::string> dsns;
  for (size_t i = 0; i < server.envelopes.size(); ++i)
    if (server.envelopes[i].first.empty() &&
        server.envelopes[i].second == std::vector<std::string>{"alice@example.org"})
      dsns.push_back(server.messages[i]);
  REQUIRE(dsns.size() == 1);
  CHECK(dsns[0].find("Final-Recipient: rfc822; carol@example.org\r\n") != std::string::npos);
  CHECK(dsns[0].find("Status: 5.2.2\r\n") != std::string::npos);
  CHECK(dsns[0].find("Diagnostic-Code: smtp; 552 5.2.2") != std::string::npos);
  CHECK(dsns[0].find("bob@example.org") == std::string::npos);  // delivered: not reported
  CHECK(dsns[0].find("\r\n\r\nSubject: q\r\n\r\nbody\r\n") != std::string::npos);
  CHECK(copiesFor(server, "bob@example.org") == 1);
}

TEST_CASE("an unknown user bounces at delivery time, unless a catch-all takes it", "[qmgr]") {
  Engine e;
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, Behaviour{});
  SECTION("no catch-all") {
    e.commit({"gone@example.org"}, "Subject: g\r\n\r\nx\r\n");
    e.startQmgr();
    e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); });
    REQUIRE(server.envelopes.size() == 1);  // the DSN only
    CHECK(server.envelopes[0].first.empty());
    CHECK(server.messages[0].find("Status: 5.1.1\r\n") != std::string::npos);
  }
  SECTION("catch-all") {
    e.settings.catchall = "bob@example.org";
    e.commit({"gone@example.org"}, "Subject: g\r\n\r\nx\r\n");
    e.startQmgr();
    e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); });
    REQUIRE(server.envelopes.size() == 1);
    CHECK(server.envelopes[0].second == std::vector<std::string>{"bob@example.org"});
  }
}

TEST_CASE("stop waits for the delivery under way and starts no other", "[qmgr]") {
  Engine e;
  Behaviour b;
  b.silent = true;  // the greeting never comes: the delivery hangs
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, b);
  e.settings.lmtp.connectTimeout = 300ms;
  e.settings.maxDeliveries = 1;
  auto first = e.commit({"bob@example.org"}, "1\r\n");
  auto second = e.commit({"bob@example.org"}, "2\r\n");
  e.startQmgr();
  e.loopUntil([&] { return server.accepted == 1; });
  bool stopped = false;
  e.qmgr->stop([&] { stopped = true; });
  CHECK_FALSE(stopped);
  e.loopUntil([&] { return stopped; });
  CHECK(e.qmgr->idle());
  CHECK(server.accepted == 1);  // the second message was not started
  auto s1 = e.queue->loadState(first, 1);
  REQUIRE(s1);
  CHECK(s1->rcpts[0].status == queue::RcptStatus::Deferred);  // its outcome was saved
  auto s2 = e.queue->loadState(second, 1);
  REQUIRE(s2);
  CHECK(s2->rcpts[0].status == queue::RcptStatus::Pending);
}

TEST_CASE("a recipient delivered is saved at once, while another domain is still slow", "[qmgr]") {
  // The crash window: the state of a recipient whose server said 250 must
  // not wait for the rest of the attempt (here a domain whose DNS never
  // answers), or a crash meanwhile delivers it again.
  Engine e;
  auth::testing::writeText(e.dir.file("aliases"),
                           "fast@example.org: r@fast.test\nslow@example.org: r@slow.test\n");
  REQUIRE(e.directory->reload());
  dns::testing::FakeServer dns(e.base.get(), [](const dns::testing::Question& q)
                                                 -> std::optional<std::string> {
    if (q.name == "slow.test") return std::nullopt;  // never answers
    dns::testing::Reply r(q);
    if (q.name == "fast.test" && q.type == dns::testing::kTypeA) r.a("127.0.0.1");
    return r.bytes();  // MX, AAAA: no data (the implicit MX, IPv4 only)
  });
  FakeServer lmtp(e.base.get(), e.settings.lmtp.socketPath, Behaviour{});
  FakeServer mx(e.base.get(), Behaviour{});
  e.settings.remoteEnabled = true;
  e.settings.remote.port = mx.port;
  e.settings.remote.tlsPolicy = TlsPolicy::None;
  e.settings.remote.dns.servers = {dns.server()};
  e.settings.remote.dns.timeout = 60s;
  e.settings.remote.dns.tries = 1;
  auto id = e.commit({"fast@example.org", "slow@example.org", "bob@example.org"},
                     "Subject: r\r\n\r\nremote\r\n");
  e.startQmgr();
  auto state = [&] { return e.queue->loadState(id, 3); };
  e.loopUntil([&] {
    auto s = state();
    return s && s->rcpts[0].status == queue::RcptStatus::Delivered &&
           s->rcpts[2].status == queue::RcptStatus::Delivered;
  });
  auto s = state();
  REQUIRE(s);
  CHECK(s->rcpts[0].reply.rfind("250", 0) == 0);
  CHECK(s->rcpts[0].attempts == 1);
  CHECK(s->rcpts[1].status == queue::RcptStatus::Pending);  // still being looked up
  CHECK(s->rcpts[1].attempts == 0);
  REQUIRE(mx.envelopes.size() == 1);
  CHECK(mx.envelopes[0].second == std::vector<std::string>{"r@fast.test"});
  CHECK(mx.messages[0] == "Subject: r\r\n\r\nremote\r\n");
  CHECK(copiesFor(lmtp, "bob@example.org") == 1);
  CHECK(e.qmgr->active() == 1);  // the attempt goes on for slow.test
  CHECK(e.ids() == std::vector<queue::QueueId>{id});
}

TEST_CASE("a full disk while saving a partial outcome: kept in memory, no second delivery",
          "[qmgr]") {
  // bob is delivered, carol deferred; saving that state fails (ENOSPC at
  // every state file). The outcome stays known: while the disk is full the
  // message waits (its state is tried again, nothing delivered), and once
  // a save succeeds only carol is tried again. bob gets one copy.
  queue::testing::FaultFs fs;
  Engine e(&fs);
  e.settings.stateRetry = 1s;
  Behaviour b;
  b.finalReplies["carol@example.org"] = smtp::reply(smtp::ReplyId::MailboxFullTemporary);
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, b);
  auto id = e.commit({"bob@example.org", "carol@example.org"}, "Subject: f\r\n\r\nfull\r\n");
  fs.failAt(queue::testing::Op::Replace, 1, ENOSPC, true);
  e.startQmgr();
  // The first save fails, then its retries (one a second) fail too.
  e.loopUntil([&] { return fs.calls(queue::testing::Op::Replace) >= 3; }, 15s);
  CHECK(copiesFor(server, "bob@example.org") == 1);
  CHECK(copiesFor(server, "carol@example.org") == 1);
  CHECK(e.ids() == std::vector<queue::QueueId>{id});
  CHECK(queue::testing::listNames(e.dir.file("spool/state")).empty());  // nothing saved, no temporary file
  // Space again, and carol's mailbox has room.
  server.behaviour.finalReplies.clear();
  fs.clearFaults();
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); }, 15s);
  CHECK(copiesFor(server, "bob@example.org") == 1);
  CHECK(copiesFor(server, "carol@example.org") == 2);  // the deferred try, then the good one
  CHECK(std::filesystem::is_empty(e.dir.file("spool/state")));
}

TEST_CASE("fewer connections than destinations: a free connection takes the next message for "
          "its destination",
          "[qmgr]") {
  // Three domains, one connection in all, 30 messages in turn to each
  // domain. With more messages under way than connections (as fromConfig
  // sets maxDeliveries), each connection sends every message waiting for
  // its domain before the slot goes to the next domain: a few sessions,
  // not one per message.
  Engine e;
  auth::testing::writeText(e.dir.file("aliases"),
                           "a@example.org: r@a.test\nb@example.org: r@b.test\n"
                           "c@example.org: r@c.test\n");
  REQUIRE(e.directory->reload());
  dns::testing::FakeServer dns(e.base.get(), [](const dns::testing::Question& q)
                                                 -> std::optional<std::string> {
    dns::testing::Reply r(q);
    if (q.type == dns::testing::kTypeA) r.a("127.0.0.1");
    return r.bytes();  // MX, AAAA: no data (the implicit MX, IPv4 only)
  });
  FakeServer mx(e.base.get(), Behaviour{});
  e.settings.remoteEnabled = true;
  e.settings.remote.port = mx.port;
  e.settings.remote.tlsPolicy = TlsPolicy::None;
  e.settings.remote.dns.servers = {dns.server()};
  e.settings.remote.maxConnections = 1;
  e.settings.remote.maxPerDestination = 1;
  e.settings.maxLmtp = 1;
  e.settings.maxDeliveries = 1 + 1 + 100;
  const int n = 30;
  for (int i = 0; i < n; ++i)
    e.commit({std::string(1, static_cast<char>('a' + i % 3)) + "@example.org"},
             "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
  e.startQmgr();
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); }, 20s);
  REQUIRE(mx.messages.size() == static_cast<size_t>(n));
  std::map<std::string, int> perRcpt;
  for (const auto& [from, rcpts] : mx.envelopes)
    for (const auto& r : rcpts) ++perRcpt[r];
  CHECK(perRcpt == std::map<std::string, int>{{"r@a.test", 10}, {"r@b.test", 10}, {"r@c.test", 10}});
  INFO("SMTP sessions: " << mx.accepted);
  CHECK(mx.accepted >= 3);
  CHECK(mx.accepted <= 6);
}

namespace {

// Remote delivery to r@<domain> (aliases a@, b@, c@example.org) through a
// fake DNS server that gives every name the address 127.0.0.1 and `mx`.
struct RemoteSetup {
  explicit RemoteSetup(Engine& e)
      : dns(e.base.get(),
            [](const dns::testing::Question& q) -> std::optional<std::string> {
              dns::testing::Reply r(q);
              if (q.type == dns::testing::kTypeA) r.a("127.0.0.1");
              return r.bytes();  // MX, AAAA: no data (the implicit MX, IPv4 only)
            }),
        mx(e.base.get(), Behaviour{}) {
    auth::testing::writeText(e.dir.file("aliases"),
                             "a@example.org: r@a.test\nb@example.org: r@b.test\n"
                             "c@example.org: r@c.test\n");
    REQUIRE(e.directory->reload());
    e.settings.remoteEnabled = true;
    e.settings.remote.port = mx.port;
    e.settings.remote.tlsPolicy = TlsPolicy::None;
    e.settings.remote.dns.servers = {dns.server()};
  }
  dns::testing::FakeServer dns;
  FakeServer mx;
};

// Runs the loop for `d` (timers and sockets go on meanwhile).
void runFor(Engine& e, std::chrono::milliseconds d) {
  bool done = false;
  yubin::event::Timer t(e.base.get(), [&] { done = true; });
  t.arm(d);
  while (!done) event_base_loop(e.base.get(), EVLOOP_ONCE);
}

}  // namespace

TEST_CASE("the connection cache: messages 100 ms apart to one destination share one session",
          "[qmgr]") {
  // Each message is delivered before the next arrives, so no message
  // waits when a transaction ends: the connection is cached for
  // remote_connection_cache_time and the next message takes it. With the
  // cache off, every message opens its own session.
  Engine e;
  RemoteSetup r(e);
  const bool cache = GENERATE(true, false);
  e.settings.remote.connection.idleTimeout = cache ? std::chrono::milliseconds(2000) : 0ms;
  e.startQmgr();
  const int n = 5;
  for (int i = 0; i < n; ++i) {
    auto id = e.commit({"a@example.org"}, "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
    e.qmgr->queued(id);
    e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); });
    runFor(e, 100ms);
  }
  REQUIRE(r.mx.messages.size() == static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    CHECK(r.mx.messages[i] == "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
  INFO("cache " << cache);
  CHECK(r.mx.accepted == (cache ? 1 : n));
  if (cache) {
    // Reuse sent no RSET: each transaction ended cleanly.
    REQUIRE(r.mx.conns.size() == 1);
    CHECK(r.mx.conns[0]->input_.find("RSET") == std::string::npos);
    // The idle connection ends after the cache time, with QUIT.
    e.loopUntil([&] { return r.mx.conns[0]->input_.find("QUIT\r\n") != std::string::npos; });
  }
}

TEST_CASE("the connection cache: an idle connection gives its slot to a destination with none",
          "[qmgr]") {
  // One connection in all, cached for a minute: a message for another
  // domain must not wait for the cache time to end.
  Engine e;
  RemoteSetup r(e);
  e.settings.remote.connection.idleTimeout = 60s;
  e.settings.remote.maxConnections = 1;
  e.settings.remote.maxPerDestination = 1;
  e.startQmgr();
  auto first = e.commit({"a@example.org"}, "Subject: a\r\n\r\nbody\r\n");
  e.qmgr->queued(first);
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); });
  auto second = e.commit({"b@example.org"}, "Subject: b\r\n\r\nbody\r\n");
  e.qmgr->queued(second);
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); }, 5s);
  REQUIRE(r.mx.envelopes.size() == 2);
  CHECK(r.mx.envelopes[1].second == std::vector<std::string>{"r@b.test"});
  CHECK(r.mx.accepted == 2);
  REQUIRE(r.mx.conns.size() == 2);
  // The cached connection to a.test was closed for b.test, long before
  // its cache time ran out.
  e.loopUntil([&] { return !r.mx.conns[0]->bev_; }, 5s);
  CHECK(r.mx.conns[1]->bev_);  // b.test's is the one cached now
}

TEST_CASE("stop: remote messages waiting for a connection are not tried and stay pending",
          "[qmgr]") {
  // One connection, whose server never greets: the first message holds it
  // until the greeting timeout, the two others wait. A stop answers those
  // two at once without touching their state; the first ends deferred.
  Engine e;
  RemoteSetup r(e);
  r.mx.behaviour.silent = true;
  e.settings.remote.maxConnections = 1;
  e.settings.remote.maxPerDestination = 1;
  e.settings.remote.connection.client.greetingTimeout = 500ms;
  std::vector<queue::QueueId> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(e.commit({"a@example.org"}, "Subject: " + std::to_string(i) + "\r\n\r\nx\r\n"));
  e.startQmgr();
  e.loopUntil([&] { return r.mx.accepted == 1 && e.qmgr->active() == 3; });
  bool stopped = false;
  e.qmgr->stop([&] { stopped = true; });
  e.loopUntil([&] { return stopped; });
  CHECK(r.mx.accepted == 1);
  size_t deferred = 0;
  size_t pending = 0;
  for (const auto& id : ids) {
    auto s = e.queue->loadState(id, 1);
    REQUIRE(s);
    if (s->rcpts[0].status == queue::RcptStatus::Deferred) {
      ++deferred;
      CHECK(s->rcpts[0].reply.find("greeting") != std::string::npos);
    } else {
      ++pending;
      CHECK(s->rcpts[0].status == queue::RcptStatus::Pending);
      CHECK(s->rcpts[0].attempts == 0);
    }
  }
  CHECK(deferred == 1);
  CHECK(pending == 2);
  CHECK(e.ids().size() == 3);
}

TEST_CASE("stop saves the outcomes kept in memory after a full disk; the restart sends no copy",
          "[qmgr]") {
  // bob delivered, carol deferred, the save fails (ENOSPC): the outcome is
  // in memory only. Space comes back and mtad stops before the message's
  // next attempt: the stop saves it, so the next run tries carol alone.
  queue::testing::FaultFs fs;
  Engine e(&fs);
  e.settings.stateRetry = 3600s;  // no later attempt: only the stop saves it
  Behaviour b;
  b.finalReplies["carol@example.org"] = smtp::reply(smtp::ReplyId::MailboxFullTemporary);
  FakeServer server(e.base.get(), e.settings.lmtp.socketPath, b);
  auto id = e.commit({"bob@example.org", "carol@example.org"}, "Subject: f\r\n\r\nfull\r\n");
  fs.failAt(queue::testing::Op::Replace, 1, ENOSPC, true);
  e.startQmgr();
  e.loopUntil([&] { return fs.calls(queue::testing::Op::Replace) >= 1 && e.qmgr->idle(); });
  CHECK(queue::testing::listNames(e.dir.file("spool/state")).empty());
  fs.clearFaults();
  bool stopped = false;
  e.qmgr->stop([&] { stopped = true; });
  e.loopUntil([&] { return stopped; });
  auto s = e.queue->loadState(id, 2);
  REQUIRE(s);
  CHECK(s->rcpts[0].status == queue::RcptStatus::Delivered);
  CHECK(s->rcpts[1].status == queue::RcptStatus::Deferred);
  // The restart: carol's mailbox has room now; bob gets no second copy.
  e.qmgr.reset();
  server.behaviour.finalReplies.clear();
  e.settings.stateRetry = 1s;
  e.startQmgr();
  e.qmgr->flush([](Result<std::string>) {});
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); }, 15s);
  CHECK(copiesFor(server, "bob@example.org") == 1);
  CHECK(copiesFor(server, "carol@example.org") == 2);
}

TEST_CASE("the connection cache off: a connection whose answer is pending never times out idle",
          "[qmgr]") {
  // With remote_connection_cache_time = 0 the idle timer of a connection
  // that has just become ready (greeted, or its transaction answered)
  // expires at once, beside the pending callback that hands it its next
  // message. It must not send QUIT under the owner's feet (mtad aborted
  // with "send on a connection that is not ready" in bench/relay).
  Engine e;
  RemoteSetup r(e);
  e.settings.remote.connection.idleTimeout = 0ms;
  e.settings.remote.maxConnections = 2;
  e.settings.remote.maxPerDestination = 2;
  const int n = 60;
  for (int i = 0; i < n; ++i)
    e.commit({"a@example.org"}, "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
  e.startQmgr();
  e.loopUntil([&] { return e.ids().empty() && e.qmgr->idle(); }, 20s);
  CHECK(r.mx.messages.size() == static_cast<size_t>(n));
  CHECK(r.mx.accepted <= 4);  // messages waiting: the connections went on
}
