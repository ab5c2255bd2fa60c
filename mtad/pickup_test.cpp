// Tests of the pickup's pure parts (pickup.hpp): the content as queued
// (Received, then the fields the shared header fixer adds), the sender rule (owner
// decides; -f only for trusted submitters), the fields added when missing,
// display-name quoting, and refusals of bad addresses. Then the Pickup on
// a real loop and a temporary queue: files there at start and files that
// arrive later (inotify) are queued and removed; symlinks, hard links,
// folders, oversized and malformed files go to corrupt/; dot files wait.
#include "mtad/pickup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>

#include "auth/test_util.hpp"
#include "event/event_testing.hpp"

using namespace yubin::mtad;

namespace {

ParsedDrop drop(std::vector<std::string> rcpts, std::optional<std::string> sender = {},
                std::optional<std::string> fullName = {}) {
  ParsedDrop d;
  d.header.recipients = std::move(rcpts);
  d.header.sender = std::move(sender);
  d.header.fullName = std::move(fullName);
  return d;
}

Submitter user(bool trusted = false) {
  Submitter s;
  s.uid = 1000;
  s.login = "joe";
  s.fullName = "Joe User";
  s.trusted = trusted;
  s.address = "joe@example.org";
  return s;
}

constexpr time_t kNow = 1764288000;  // 2025-11-28
const std::string kId = "<abc@mx.example.org>";

}  // namespace

TEST_CASE("pickup: the content as queued") {
  // The fixer itself is tested in libcommon/mail; here: Received first,
  // the fields where the header ends, the separator when there was none,
  // and a message bigger than one piece.
  auto p = preparePickup(drop({"bob@example.org"}), "x", user(), kNow, kId);
  REQUIRE(p);
  std::string date = p->header.date;
  struct Case {
    std::string message, queued;
  };
  const std::string from = "From: Joe User <joe@example.org>\r\n";
  const std::string added = from + "Date: " + date + "\r\nMessage-ID: " + kId + "\r\n";
  const std::string big(200000, 'b');
  const std::vector<Case> cases = {
      {"Subject: s\r\n\r\nbody\r\n", "R\r\nSubject: s\r\n" + added + "\r\nbody\r\n"},
      {"DATE: x\r\nmessage-id: <a@b>\r\nFrom: a@b\r\n\r\n",
       "R\r\nDATE: x\r\nmessage-id: <a@b>\r\nFrom: a@b\r\n\r\n"},
      {"Subject: s\r\n  folded\r\nFrom: a\r\n\r\n",
       "R\r\nSubject: s\r\n  folded\r\nFrom: a\r\nDate: " + date + "\r\nMessage-ID: " + kId +
           "\r\n\r\n"},
      {"", "R\r\n" + added + "\r\n"},
      {"Subject: s", "R\r\nSubject: s\r\n" + added + "\r\n"},
      {"Subject: s\r\nnot a header line\r\n",
       "R\r\nSubject: s\r\n" + added + "\r\nnot a header line\r\n"},
      {"just text\r\n", "R\r\n" + added + "\r\njust text\r\n"},
      {"Subject: s\r\n\r\n" + big, "R\r\nSubject: s\r\n" + added + "\r\n" + big},
  };
  for (const auto& c : cases) {
    INFO(c.message.substr(0, 60));
    auto q = preparePickup(drop({"bob@example.org"}), c.message, user(), kNow, kId);
    REQUIRE(q);
    std::string out;
    int pieces = 0;
    pickupContent(*q, "R\r\n", c.message, [&](std::string_view s) {
      out.append(s);
      ++pieces;
    });
    CHECK(out == c.queued);
    if (c.message.size() > 100000) CHECK(pieces > 1);
  }
}

TEST_CASE("pickup: the sender comes from the file's owner") {
  std::string msg = "Subject: s\r\n\r\nb\r\n";
  // No -f: the submitter's address, a From: with their GECOS name.
  auto p = preparePickup(drop({"bob@example.org"}), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.sender == "joe@example.org");
  CHECK_FALSE(p->envelope.nullSender);
  CHECK_FALSE(p->senderIgnored);
  CHECK(p->envelope.recipients.size() == 1);
  CHECK(p->envelope.recipients[0].address == "bob@example.org");
  CHECK(p->envelope.arrivalTime == kNow);
  CHECK(p->header.from == "Joe User <joe@example.org>");
  CHECK(p->header.messageId == "<abc@mx.example.org>");
  CHECK(p->header.date.size() >= 29);
  CHECK(p->header.trace.empty());

  // -f from an ordinary user: ignored.
  p = preparePickup(drop({"bob@example.org"}, "ceo@example.org"), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.sender == "joe@example.org");
  CHECK(p->senderIgnored);
  // -f naming their own address: nothing to ignore.
  p = preparePickup(drop({"bob@example.org"}, "joe@example.org"), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK_FALSE(p->senderIgnored);
  // -f <> from an ordinary user: ignored too.
  p = preparePickup(drop({"bob@example.org"}, "<>"), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.sender == "joe@example.org");
  CHECK(p->senderIgnored);

  // Trusted (root, trusted_users): honoured; no GECOS name on another address.
  p = preparePickup(drop({"bob@example.org"}, "ceo@Example.ORG"), msg, user(true), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.sender == "ceo@example.org");
  CHECK(p->header.from == "ceo@example.org");
  p = preparePickup(drop({"bob@example.org"}, "<>"), msg, user(true), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.nullSender);
  CHECK(p->envelope.sender.empty());
  CHECK(p->header.from == "Joe User <joe@example.org>");
  // -F wins over GECOS.
  p = preparePickup(drop({"bob@example.org"}, {}, "Cron \"Daemon\""), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->header.from == "\"Cron \\\"Daemon\\\"\" <joe@example.org>");
}

TEST_CASE("pickup: fields added only when missing") {
  auto queued = [](std::string_view message) {
    auto p = preparePickup(drop({"bob@example.org"}), message, user(), kNow, kId);
    REQUIRE(p);
    std::string out;
    pickupContent(*p, "", message, [&](std::string_view s) { out.append(s); });
    return out;
  };
  std::string full = "From: x@y\r\nDate: d\r\nMessage-ID: <m@y>\r\n\r\nb\r\n";
  CHECK(queued(full) == full);
  // No body separator: one is added after the new fields.
  CHECK(queued("From: x@y\r\nDate: d\r\nMessage-ID: <m@y>\r\n") ==
        "From: x@y\r\nDate: d\r\nMessage-ID: <m@y>\r\n\r\n");
  // A one-line message without its line end is ended first.
  std::string one = queued("Subject: s");
  CHECK(one.rfind("Subject: s\r\nFrom: ", 0) == 0);
  CHECK(one.substr(one.size() - 4) == "\r\n\r\n");
  auto p = preparePickup(drop({"bob@example.org"}), "x", user(), kNow, kId);
  // 8-bit content and UTF-8 addresses are flagged.
  p = preparePickup(drop({"jörg@example.org"}), "Subject: é\r\n\r\n", user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.smtputf8);
  CHECK(p->envelope.body == yubin::queue::Body::EightBitMime);
}

TEST_CASE("pickup: bad addresses in a drop file are refused") {
  std::string msg = "\r\nb\r\n";
  for (std::string bad : {"a@@b", "nodomain", "a@b@c", "<a@b>", "a@-b", ""}) {
    INFO(bad);
    auto p = preparePickup(drop({"ok@example.org", bad}), msg, user(), kNow, kId);
    REQUIRE_FALSE(p);
    CHECK(p.error().errnum == EBADMSG);
  }
  auto p = preparePickup(drop({"ok@example.org"}, "not an address"), msg, user(true), kNow, kId);
  REQUIRE_FALSE(p);
  // An untrusted user's bad -f is simply ignored.
  CHECK(preparePickup(drop({"ok@example.org"}, "not an address"), msg, user(), kNow, kId));
}

TEST_CASE("pickup: display names and the Received field") {
  CHECK(quoteDisplayName("Joe User") == "Joe User");
  CHECK(quoteDisplayName("  Joe  ") == "Joe");
  CHECK(quoteDisplayName("") == "");
  CHECK(quoteDisplayName("Doe, John") == "\"Doe, John\"");
  CHECK(quoteDisplayName("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quoteDisplayName("evil\r\nBcc: x@y") == "\"evilBcc: x@y\"");
  CHECK(quoteDisplayName(std::string("nul\0x", 5)) == "nulx");
  std::string r = pickupReceived("mx.example.org", 1000, "QID", kNow);
  CHECK(r.rfind("Received: by mx.example.org (Yubin ", 0) == 0);
  CHECK(r.find(")\r\n\tid QID from userid 1000;\r\n\t") != std::string::npos);
  CHECK(r.substr(r.size() - 2) == "\r\n");
  CHECK(r.find('\n', 0) == r.find("\r\n") + 1);
}

namespace {

using namespace std::chrono_literals;

struct Loop {
  Loop() {
    auto b = yubin::event::newEventBase();
    REQUIRE(b);
    base = std::move(*b);
    auto q = yubin::queue::Queue::open({.spoolDir = dir.file("spool")});
    REQUIRE(q);
    queue = std::move(*q);
    REQUIRE(queue->attachLoop(base.get()));
    yubin::auth::testing::writeText(dir.file("users"), "alice@example.org:*:::\n");
    yubin::auth::testing::writeText(dir.file("aliases"), "");
    yubin::auth::DirectorySettings ds;
    ds.users.path = dir.file("users");
    ds.users.domains = yubin::auth::LocalDomains({"example.org"});
    ds.users.mailRoot = dir.file("mail");
    ds.aliasesFile = dir.file("aliases");
    directory = std::make_unique<yubin::auth::Directory>(ds);
    REQUIRE(directory->reload());
    settings.spoolDir = dir.file("spool");
    settings.dir = settings.spoolDir + "/maildrop";
    settings.hostname = "mx.test";
    settings.qualifyDomain = "qualify.test";
    settings.maxMessageSize = 1000;
    REQUIRE(mkdir(settings.dir.c_str(), 01730) == 0);
  }
  ~Loop() {
    pickup.reset();
    event_base_loop(base.get(), EVLOOP_NONBLOCK);
    queue.reset();
  }
  void start() {
    pickup =
        std::make_unique<Pickup>(base.get(), *queue, *directory, settings,
                                 [this](const yubin::queue::QueueId& id) { ids.push_back(id); });
    REQUIRE(pickup->start());
  }
  std::string drop(const std::string& rcpt, const std::string& message,
                   std::optional<std::string> sender = {}) {
    DropHeader h;
    h.recipients = {rcpt};
    h.sender = sender;
    h.size = message.size();
    auto head = encodeDropHeader(h);
    REQUIRE(head);
    auto name = writeDropFile(settings.dir, *head + message);
    REQUIRE(name);
    return *name;
  }
  void loopUntil(const std::function<bool()>& pred) {
    yubin::event::testing::Watchdog dog(base.get(), 10s);
    yubin::event::Timer poll(base.get(), [] {});
    while (!pred() && !dog.fired()) {
      poll.arm(5ms);
      event_base_loop(base.get(), EVLOOP_ONCE);
    }
    REQUIRE(pred());
  }
  bool exists(const std::string& rel) {
    struct stat st;
    return lstat((settings.dir + "/" + rel).c_str(), &st) == 0;
  }

  yubin::auth::testing::TempDir dir;
  yubin::event::EventBase base;
  std::unique_ptr<yubin::queue::Queue> queue;
  std::unique_ptr<yubin::auth::Directory> directory;
  PickupSettings settings;
  std::unique_ptr<Pickup> pickup;
  std::vector<yubin::queue::QueueId> ids;
};

}  // namespace

TEST_CASE("pickup on a loop: at start, then by inotify; removed once queued") {
  Loop t;
  std::string first = t.drop("bob@example.org", "Subject: one\r\n\r\nbody\r\n");
  t.start();
  t.loopUntil([&] { return t.pickup->pickedUp() == 1; });
  CHECK_FALSE(t.exists(first));
  REQUIRE(t.ids.size() == 1);
  auto f = t.queue->openMessage(t.ids[0]);
  REQUIRE(f);
  // This test's process owns the file: its login decides the sender
  // (root and unknown users get the qualify domain).
  CHECK(f->envelope().sender.find('@') != std::string::npos);
  CHECK(f->envelope().recipients.at(0).address == "bob@example.org");
  auto text = f->readAll();
  REQUIRE(text);
  CHECK(text->rfind("Received: by mx.test (Yubin ", 0) == 0);
  CHECK(text->find("\r\nSubject: one\r\nFrom: ") != std::string::npos);
  CHECK(text->find("\r\nMessage-ID: <") != std::string::npos);
  CHECK(text->substr(text->size() - 8) == "\r\nbody\r\n");

  // Later files arrive through inotify; a dot file (being written) waits.
  int fd = open((t.settings.dir + "/.inprogress").c_str(), O_CREAT | O_WRONLY, 0600);
  REQUIRE(fd >= 0);
  close(fd);
  std::string second = t.drop("carol@example.org", "\r\nb\r\n", "alice@example.org");
  t.loopUntil([&] { return t.pickup->pickedUp() == 2; });
  CHECK_FALSE(t.exists(second));
  CHECK(t.exists(".inprogress"));
  REQUIRE(t.ids.size() == 2);
  auto g = t.queue->openMessage(t.ids[1]);
  REQUIRE(g);
  if (geteuid() == 0) CHECK(g->envelope().sender == "alice@example.org");  // root: -f honoured
  CHECK(t.pickup->quarantined() == 0);
}

TEST_CASE("pickup on a loop: hostile files go to corrupt/") {
  Loop t;
  std::string victim = t.dir.file("victim");
  yubin::auth::testing::writeText(victim, "secret\n");
  std::string d = t.settings.dir;
  REQUIRE(symlink(victim.c_str(), (d + "/link1").c_str()) == 0);
  std::string good = t.drop("bob@example.org", "\r\nb\r\n");
  REQUIRE(link((d + "/" + good).c_str(), (d + "/hard1").c_str()) == 0);  // two links
  REQUIRE(mkdir((d + "/dir1").c_str(), 0700) == 0);
  yubin::auth::testing::writeText(d + "/junk1", "not a maildrop file\n");
  std::string big(2000, 'x');
  std::string bigName = t.drop("bob@example.org", big);
  std::string badRcpt = t.drop("not-an-address", "\r\nb\r\n");
  t.start();
  t.loopUntil([&] { return t.pickup->quarantined() == 7; });
  for (const char* n : {"link1", "hard1", "dir1", "junk1"}) {
    INFO(n);
    CHECK(t.exists(std::string("corrupt/") + n));
    CHECK_FALSE(t.exists(n));
  }
  CHECK(t.exists("corrupt/" + good));  // the other name of the hard link
  CHECK(t.exists("corrupt/" + bigName));
  CHECK(t.exists("corrupt/" + badRcpt));
  CHECK(t.pickup->pickedUp() == 0);
  CHECK(t.ids.empty());
  // The symlink's target was not touched.
  std::ifstream in(victim);
  std::string content;
  std::getline(in, content);
  CHECK(content == "secret");
}
