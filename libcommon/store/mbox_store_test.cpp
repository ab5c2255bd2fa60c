// MboxStore: the shared MailStore cases (mail_store_cases.hpp) over mbox
// files, then what is particular to mbox: the hidden X-UID / Status /
// X-IMAPbase fields (FETCH and sizes never see them, POP3 agrees), From_
// quoting round trips, mail delivered by mdad between syncs, a file changed
// behind our back, a rewrite failing midway (FaultyFs), the pseudo message
// of an empty folder, Dovecot/UW-IMAP files read as they are, path escapes.
#include "store/mbox_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "base/fs.hpp"
#include "store/mail_store_cases.hpp"
#include "store/mbox.hpp"
#include "store/mbox_folder.hpp"
#include "store/test_util.hpp"
#include "store/watch_pool.hpp"

namespace yubin::store {
namespace {

using test::appendTo;
using test::listDir;
using test::listNames;
using test::readable;
using test::readAll;
using test::TempDir;

void deliverTo(const std::string& path, const std::string& bytes, int64_t date = 1700000000) {
  REQUIRE(appendToMbox(path, "sender@example.org", date, "", MemorySource(bytes)));
}

bool statPathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string slurp(const std::string& path) {
  auto t = readFile(path);
  REQUIRE(t);
  return *t;
}

struct MboxHarness final : test::StoreHarness {
  TempDir tmp;
  MboxStoreSettings settings;
  explicit MboxHarness(Fs* fs = nullptr) {
    settings.inbox = tmp / "inbox";
    settings.folderRoot = tmp / "mail";
    settings.createDefaults = false;
    settings.lock.timeout = std::chrono::milliseconds(2000);
    settings.fs = fs;
  }
  std::unique_ptr<MailStore> open() override {
    auto s = openMboxStore(settings);
    REQUIRE(s);
    return std::move(*s);
  }
  void deliver(const std::string& mailbox, const std::string& bytes) override {
    auto path = mboxStorePath(settings, mailbox);
    REQUIRE(path);
    deliverTo(*path, bytes);
  }
};

TEST_CASE("MboxStore: the MailStore cases") {
  MboxHarness h;
  test::mailStoreCases(h);
}

TEST_CASE("MboxStore: default mailboxes and layout") {
  TempDir tmp;
  MboxStoreSettings st;
  st.inbox = tmp / "user";
  auto s = openMboxStore(st);
  REQUIRE(s);
  CHECK(listNames(**s) == std::vector<std::string>{"INBOX", "Archive \\Archive", "Drafts \\Drafts",
                                                   "Junk \\Junk", "Sent \\Sent", "Trash \\Trash"});
  CHECK(mboxFolderRoot(st.inbox) == tmp / "user.folders");
  CHECK(listDir(tmp / "user.folders") ==
        std::vector<std::string>{".subscriptions", ".yubin", "Archive", "Drafts", "Junk", "Sent",
                                 "Trash"});
  // Deleting one does not bring it back.
  REQUIRE((*s)->remove("Junk"));
  auto again = openMboxStore(st);
  REQUIRE(again);
  CHECK(listNames(**again).size() == 5);
  // Hierarchy in the file name, mUTF-7.
  REQUIRE((*s)->create("Entwürfe.A", ""));
  CHECK(statPathExists(tmp / "user.folders/Entw&APw-rfe.A"));
}

TEST_CASE("MboxStore: names that would leave the root or hit a lock file") {
  MboxHarness h;
  auto s = h.open();
  for (const char* bad : {"../x", "A/B", "..", "/etc/passwd", "X.lock", "~x"}) {
    INFO(bad);
    CHECK(s->create(bad, "").error().errnum == EINVAL);
    CHECK(mboxStorePath(h.settings, bad).error().errnum == EINVAL);
  }
  CHECK(listDir(h.tmp.path()) == std::vector<std::string>{});
}

TEST_CASE("MboxStore: hidden fields; FETCH and sizes see the message as delivered") {
  MboxHarness h;
  const std::string msg = "Subject: hi\nX-UID: 77\n\nFrom the start\n>From x\nend\n";
  const std::string visible = "Subject: hi\n\nFrom the start\n>From x\nend\n";
  h.deliver("INBOX", msg);
  auto s = h.open();
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  REQUIRE((*mb)->messages().size() == 1);
  // The sender's own X-UID: is not below UIDNEXT: a new UID.
  CHECK((*mb)->messages()[0].uid == 1);
  CHECK((*mb)->messages()[0].flags.system == 0);
  CHECK((*mb)->messages()[0].recent);
  CHECK(readAll(**mb, 0) == visible);
  CHECK((*mb)->messages()[0].size == crlfSize(visible));
  REQUIRE((*mb)->setFlags({0}, FlagOp::Add, {kFlagSeen | kFlagAnswered, {"$Work"}}));
  // On disk: our fields, the quoting kept.
  std::string disk = slurp(h.settings.inbox);
  CHECK(disk.find("X-IMAPbase: ") != std::string::npos);
  CHECK(disk.find("Status: RO\n") != std::string::npos);
  CHECK(disk.find("X-Status: A\n") != std::string::npos);
  CHECK(disk.find("X-Keywords: $Work\n") != std::string::npos);
  CHECK(disk.find("X-UID: 1\n") != std::string::npos);
  CHECK(disk.find("\n>From the start\n>>From x\n") != std::string::npos);
  CHECK(disk.find("X-UID: 77") == std::string::npos);
  auto again = h.open()->select("INBOX", true);
  REQUIRE(again);
  CHECK(readAll(**again, 0) == visible);
  CHECK((*again)->messages()[0].flags == Flags{kFlagSeen | kFlagAnswered, {"$Work"}});
  CHECK_FALSE((*again)->messages()[0].recent);
  // POP3 over the same file: same bytes, same size, no pseudo message.
  auto f = MboxFolder::open(h.settings.inbox);
  REQUIRE(f);
  REQUIRE((*f)->messages().size() == 1);
  CHECK((*f)->messages()[0].size == crlfSize(visible));
  auto r = (*f)->open(0);
  REQUIRE(r);
  std::string got;
  while (true) {
    auto n = (*r)->read(got, 3);
    REQUIRE(n);
    if (*n == 0) break;
  }
  CHECK(got == visible);
}

TEST_CASE("MboxStore: POP3 UIDL does not change when IMAP changes flags") {
  MboxHarness h;
  h.deliver("INBOX", "Subject: a\n\nx\n");
  h.deliver("INBOX", "Subject: b\n\ny\n");
  auto f1 = MboxFolder::open(h.settings.inbox);
  REQUIRE(f1);
  auto before = (*f1)->messages();
  auto s = h.open();
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  REQUIRE((*mb)->setFlags({0, 1}, FlagOp::Add, {kFlagFlagged, {}}));
  auto f2 = MboxFolder::open(h.settings.inbox);
  REQUIRE(f2);
  REQUIRE((*f2)->messages().size() == 2);
  CHECK((*f2)->messages()[0].uid == before[0].uid);
  CHECK((*f2)->messages()[1].uid == before[1].uid);
  CHECK((*f2)->messages()[1].size == before[1].size);
  // A POP3 expunge keeps the IMAP state of the rest (and the base).
  REQUIRE((*f2)->expunge({0}));
  auto c = (*mb)->sync(true);
  REQUIRE(c);
  CHECK(c->expunged == std::vector<uint32_t>{1});
  CHECK(test::uids(**mb) == std::vector<uint32_t>{2});
  CHECK((*mb)->messages()[0].flags.system == kFlagFlagged);
  CHECK(s->status("INBOX")->uidNext == 3);
}

TEST_CASE("MboxStore: From_ quoting round-trips through APPEND, COPY and rewrites") {
  MboxHarness h;
  auto s = h.open();
  REQUIRE(s->create("Other", ""));
  const std::vector<std::string> bodies = {
      "Subject: q\n\nFrom here\n>From there\n>>From everywhere\nFrom\n",
      "Subject: crlf\r\n\r\nFrom a\r\n>From b\r\n",
      "no header at all\nFrom x\n",
      "Subject: no final newline\n\nFrom",
  };
  for (const auto& b : bodies) appendTo(*s, "INBOX", b);
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  REQUIRE((*mb)->messages().size() == bodies.size());
  for (size_t i = 0; i < bodies.size(); ++i) {
    INFO(i);
    std::string want = bodies[i];
    if (want.back() != '\n') want += '\n';  // mbox needs the separator line
    CHECK(readAll(**mb, i) == want);
    CHECK((*mb)->messages()[i].size == crlfSize(want));
  }
  REQUIRE((*mb)->copy({0, 1, 2, 3}, "Other", false));
  REQUIRE((*mb)->setFlags({0, 1, 2, 3}, FlagOp::Add, {kFlagSeen, {}}));
  auto other = s->select("Other", false);
  REQUIRE(other);
  for (size_t i = 0; i < bodies.size(); ++i) {
    INFO(i);
    CHECK(readAll(**other, i) == readAll(**mb, i));
  }
  // The file still parses into exactly these messages.
  size_t n = 0;
  REQUIRE(readMbox(h.settings.inbox, [&](MboxMessage&&) -> Status {
    ++n;
    return {};
  }));
  CHECK(n == bodies.size());
}

TEST_CASE("MboxStore: mail delivered between syncs gets the next UIDs") {
  MboxHarness h;
  auto s = h.open();
  appendTo(*s, "INBOX", "Subject: 1\n\n1\n");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  REQUIRE((*mb)->expunge({0}));
  REQUIRE((*mb)->sync(true));
  // UIDNEXT survives the empty mailbox (the pseudo message holds it).
  CHECK(slurp(h.settings.inbox).find("X-IMAP: ") != std::string::npos);
  h.deliver("INBOX", "Subject: 2\n\n2\n");
  h.deliver("INBOX", "Subject: 3\n\n3\n");
  // STATUS sees them before any session takes them.
  auto st = s->status("INBOX");
  REQUIRE(st);
  CHECK(st->messages == 2);
  CHECK(st->recent == 2);
  CHECK(st->uidNext == 4);
  auto c = (*mb)->sync(true);
  REQUIRE(c);
  CHECK(c->existsChanged);
  CHECK(test::uids(**mb) == std::vector<uint32_t>{2, 3});
  CHECK((*mb)->messages()[0].recent);
  CHECK((*mb)->messages()[0].internalDate == 1700000000);
  CHECK(readAll(**mb, 1) == "Subject: 3\n\n3\n");
  // The pseudo message went once real mail arrived; the base moved along.
  std::string disk = slurp(h.settings.inbox);
  CHECK(disk.find("X-IMAP: ") == std::string::npos);
  CHECK(disk.find("X-IMAPbase: ") != std::string::npos);
}

TEST_CASE("MboxStore: SELECT again reuses the change descriptor, which still wakes") {
  MboxHarness h;
  h.settings.watches = std::make_shared<WatchPool>();
  auto s = h.open();
  appendTo(*s, "INBOX", "Subject: 1\n\n1\n");
  int kept = -1;
  {
    auto a = s->select("INBOX", false);
    REQUIRE(a);
    kept = (*a)->changeFd();
    REQUIRE(kept >= 0);
  }
  CHECK(h.settings.watches->kept() == 1);
  h.deliver("INBOX", "Subject: 2\n\nwhile closed\n");  // stale on the kept descriptor
  auto a = s->select("INBOX", false);
  REQUIRE(a);
  CHECK((*a)->changeFd() == kept);
  CHECK(h.settings.watches->kept() == 0);
  CHECK((*a)->messages().size() == 2);
  (*a)->drainChangeFd();  // its own rewrite (UIDs, \Recent taken)
  CHECK_FALSE(readable(kept));
  h.deliver("INBOX", "Subject: 3\n\nafter\n");
  CHECK(readable(kept));
  auto c = (*a)->sync(true);
  REQUIRE(c);
  CHECK((*a)->messages().size() == 3);
}

TEST_CASE("MboxStore: a file changed behind our back") {
  MboxHarness h;
  auto s = h.open();
  for (int i = 0; i < 3; ++i) appendTo(*s, "INBOX", "m" + std::to_string(i) + "\n");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  uint32_t validity = (*mb)->uidValidity();

  SECTION("another program edits a Status field in place (same size)") {
    std::string disk = slurp(h.settings.inbox);
    size_t at = disk.find("X-UID: 2\n");
    REQUIRE(at != std::string::npos);
    // Flags from another server: X-Status F on message 2.
    disk.insert(at, "X-Status: F\n");
    REQUIRE(atomicWrite(h.settings.inbox, disk, 0600));
    auto c = (*mb)->sync(false);
    REQUIRE(c);
    CHECK(c->flagsChanged == std::vector<size_t>{1});
    CHECK((*mb)->messages()[1].flags.system == kFlagFlagged);
  }
  SECTION("another program removes a message") {
    std::string disk = slurp(h.settings.inbox);
    size_t a = disk.find("\nFrom ", disk.find("X-UID: 1\n"));
    size_t b = disk.find("\nFrom ", a + 1);
    disk.erase(a + 1, b - a);
    REQUIRE(atomicWrite(h.settings.inbox, disk, 0600));
    auto c = (*mb)->sync(true);
    REQUIRE(c);
    CHECK(c->expunged == std::vector<uint32_t>{2});
    CHECK(test::uids(**mb) == std::vector<uint32_t>{1, 3});
    CHECK(readAll(**mb, 1) == "m2\n");
  }
  SECTION("the file is replaced by one without our fields: a new UIDVALIDITY, all expunged") {
    REQUIRE(atomicWrite(h.settings.inbox,
                        mboxFromLine("x", 1) + "Subject: new\n\nfresh\n\n", 0600));
    auto c = (*mb)->sync(true);
    REQUIRE(c);
    CHECK(c->expunged.size() == 3);
    CHECK((*mb)->messages().empty());
    auto st = s->status("INBOX");
    REQUIRE(st);
    CHECK(st->uidValidity != validity);
    CHECK(st->messages == 1);
  }
  SECTION("UIDs out of order on disk are given new ones above the rest") {
    std::string disk = slurp(h.settings.inbox);
    size_t at = disk.find("X-UID: 3\n");
    REQUIRE(at != std::string::npos);
    disk.replace(at, 9, "X-UID: 1\n");
    REQUIRE(atomicWrite(h.settings.inbox, disk, 0600));
    auto c = (*mb)->sync(true);
    REQUIRE(c);
    CHECK(c->expunged == std::vector<uint32_t>{3});
    CHECK(test::uids(**mb) == std::vector<uint32_t>{1, 2, 4});
  }
}

TEST_CASE("MboxStore: a rewrite that fails midway leaves the mailbox as it was") {
  test::FaultyFs fs;
  MboxHarness h(&fs);
  auto s = h.open();
  for (int i = 0; i < 4; ++i) appendTo(*s, "INBOX", "Subject: " + std::to_string(i) + "\n\nbody\n");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  const std::string before = slurp(h.settings.inbox);

  SECTION("disk full while writing the new file") {
    fs.writeBudget = 100;
    CHECK_FALSE((*mb)->expunge({1}));
  }
  SECTION("fsync of the new file fails") {
    fs.failFsyncAt = fs.fsyncCalls + 1;
    CHECK_FALSE((*mb)->setFlags({0}, FlagOp::Add, {kFlagSeen, {}}));
  }
  SECTION("rename fails (killed before the switch)") {
    fs.renameErr = EIO;
    CHECK_FALSE((*mb)->expunge({0, 1, 2, 3}));
  }
  fs = test::FaultyFs{};
  CHECK(slurp(h.settings.inbox) == before);
  // No temporary file left behind.
  for (const auto& n : listDir(h.tmp.path())) CHECK(n.find(".yubin-") == std::string::npos);
  auto c = (*mb)->sync(true);
  REQUIRE(c);
  CHECK(c->expunged.empty());
  CHECK((*mb)->messages().size() == 4);
  CHECK((*mb)->messages()[0].flags.system == 0);
}

TEST_CASE("MboxStore: Dovecot's and UW-IMAP's files are read as they are") {
  MboxHarness h;
  std::string dovecot = mboxFromLine("a@b", 1600000000) +
                        "X-IMAPbase: 1234567890 0000000010 Junk $Label1\n"
                        "Subject: one\nStatus: RO\nX-Status: F\nX-Keywords: Junk\nX-UID: 7\n"
                        "Content-Length: 3\n\nabc\n\n" +
                        mboxFromLine("a@b", 1600000001) +
                        "Subject: two\nX-Keywords: $label1\nX-UID: 8\n\nxyz\n\n";
  REQUIRE(atomicWrite(h.settings.inbox, dovecot, 0600));
  auto s = h.open();
  auto st = s->status("INBOX");
  REQUIRE(st);
  CHECK(st->uidValidity == 1234567890);
  CHECK(st->uidNext == 10);
  CHECK(st->messages == 2);
  CHECK(st->recent == 1);
  CHECK(st->unseen == 1);
  auto mb = s->select("INBOX", true);
  REQUIRE(mb);
  CHECK(test::uids(**mb) == std::vector<uint32_t>{7, 8});
  CHECK((*mb)->messages()[0].flags == Flags{kFlagSeen | kFlagFlagged, {"Junk"}});
  CHECK((*mb)->messages()[1].flags == Flags{0, {"$Label1"}});
  CHECK((*mb)->messages()[0].internalDate == 1600000000);
  CHECK(readAll(**mb, 0) == "Subject: one\nContent-Length: 3\n\nabc\n");
  CHECK((*mb)->keywords() == std::vector<std::string>{"Junk", "$Label1"});

  // UW-IMAP's pseudo message.
  std::string uw = mboxFromLine("MAILER-DAEMON", 1600000000) +
                   "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
                   "X-IMAP: 1111111111 0000000005 Work\nStatus: RO\n\ninternal\n\n" +
                   mboxFromLine("a@b", 1600000001) + "Subject: real\nX-UID: 4\n\nhi\n\n";
  REQUIRE(atomicWrite(h.settings.inbox, uw, 0600));
  auto st2 = s->status("INBOX");
  REQUIRE(st2);
  CHECK(st2->uidValidity == 1111111111);
  CHECK(st2->messages == 1);
  CHECK(st2->uidNext == 5);
  auto f = MboxFolder::open(h.settings.inbox);
  REQUIRE(f);
  CHECK((*f)->messages().size() == 1);
}

TEST_CASE("MboxStore: keywords and flags over many messages, one rewrite each") {
  MboxHarness h;
  auto s = h.open();
  for (int i = 0; i < 200; ++i) h.deliver("INBOX", "Subject: " + std::to_string(i) + "\n\nx\n");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  REQUIRE((*mb)->messages().size() == 200);
  CHECK((*mb)->messages()[199].uid == 200);
  std::vector<size_t> all(200);
  for (size_t i = 0; i < 200; ++i) all[i] = i;
  REQUIRE((*mb)->setFlags(all, FlagOp::Add, {kFlagDeleted, {"Old"}}));
  REQUIRE((*mb)->expunge(all));
  auto c = (*mb)->sync(true);
  REQUIRE(c);
  CHECK(c->expunged.size() == 200);
  CHECK(s->status("INBOX")->uidNext == 201);
}

TEST_CASE("MboxStore: odd headers keep their bytes through rewrites (fuzz findings)") {
  const std::vector<std::string> files = {
      // A first line that is a continuation: our fields must not adopt it.
      mboxFromLine("a", 1) + "\tStatus: O\nSubject: s\n\nbody\n\n",
      // No From_ line, no empty line, a lone CR at the very end.
      "x\nX-UID: 1\nSubject: s\n\r",
      // An X-IMAP field after X-IMAPbase: a pseudo message for both sides.
      mboxFromLine("a", 1) + "X-IMAPbase: 5 0000000009\nX-IMAP: 5 0000000009\n\ni\n\n" +
          mboxFromLine("b", 2) + "Subject: real\nX-UID: 3\n\nhi\n\n",
      // "Status :" is not the Status field (and stays visible).
      mboxFromLine("a", 1) + "Status : R\nX-UID: 1\n\nb\n",
  };
  for (const auto& file : files) {
    INFO(file);
    MboxHarness h;
    REQUIRE(atomicWrite(h.settings.inbox, file, 0600));
    auto s = h.open();
    auto mb = s->select("INBOX", false);
    REQUIRE(mb);
    std::vector<std::string> before;
    for (size_t i = 0; i < (*mb)->messages().size(); ++i) {
      before.push_back(readAll(**mb, i));
      CHECK(crlfSize(before.back()) == (*mb)->messages()[i].size);
    }
    std::vector<size_t> all(before.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    REQUIRE((*mb)->setFlags(all, FlagOp::Add, {kFlagFlagged, {"K"}}));
    auto again = h.open()->select("INBOX", true);
    REQUIRE(again);
    REQUIRE((*again)->messages().size() == before.size());
    for (size_t i = 0; i < before.size(); ++i) {
      CHECK(readAll(**again, i) == before[i]);
      CHECK((*again)->messages()[i].flags.system == kFlagFlagged);
    }
    auto pop = MboxFolder::open(h.settings.inbox);
    REQUIRE(pop);
    CHECK((*pop)->messages().size() == before.size());
  }
}

TEST_CASE("MboxStore: a base with no UIDs left starts over under a new UIDVALIDITY (fuzz finding)") {
  // UIDNEXT 4294967295 and messages without X-UID: no UID is left for
  // them. SELECT failed, so the mailbox could never be opened again.
  const std::string file =
      "From MAILER-DAEMON Thu Jan  1 00:00:00 2020\n"
      "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
      "X-IMAP: 111 4294967295\n\nx\n\n" +
      mboxFromLine("a", 1) + "Subject: one\n\nhi\n\n" + mboxFromLine("b", 2) +
      "Subject: two\nX-UID: 7\n\nho\n";
  MboxHarness h;
  REQUIRE(atomicWrite(h.settings.inbox, file, 0600));
  auto s = h.open();
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  REQUIRE((*mb)->messages().size() == 2);
  CHECK((*mb)->messages()[0].uid == 1);
  CHECK((*mb)->messages()[1].uid == 2);
  CHECK((*mb)->uidNext() == 3);
  CHECK((*mb)->uidValidity() != 111);
  CHECK((*mb)->uidValidity() != 0);
  CHECK(readAll(**mb, 0).find("Subject: one") != std::string::npos);
  // Written back: another session sees the same numbering.
  auto again = h.open()->select("INBOX", true);
  REQUIRE(again);
  CHECK((*again)->uidValidity() == (*mb)->uidValidity());
  CHECK((*again)->messages()[1].uid == 2);
  // UIDNEXT one below the end, and at the end with every UID present: the
  // same, and flags can still be changed (each is a rewrite).
  for (const std::string next : {"4294967294", "4294967295"}) {
    INFO(next);
    MboxHarness h2;
    const std::string f2 =
        "From MAILER-DAEMON Thu Jan  1 00:00:00 2020\n"
        "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
        "X-IMAP: 111 " + next + "\n\nx\n\n" + mboxFromLine("a", 1) +
        "Subject: one\nX-UID: 7\n\nhi\n\n" + mboxFromLine("b", 2) + "Subject: two\n\nho\n";
    REQUIRE(atomicWrite(h2.settings.inbox, f2, 0600));
    auto s2 = h2.open();
    auto m2 = s2->select("INBOX", false);
    REQUIRE(m2);
    REQUIRE((*m2)->messages().size() == 2);
    CHECK((*m2)->uidNext() < 0xffffffffU);
    REQUIRE((*m2)->setFlags({0, 1}, FlagOp::Add, {kFlagFlagged, {}}));
    auto m3 = h2.open()->select("INBOX", true);
    REQUIRE(m3);
    CHECK((*m3)->messages()[1].flags.system == kFlagFlagged);
  }
}

TEST_CASE("MboxMetaFilter: fields hidden in the header only, in any piece size") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Status: RO\nSubject: a\n\nStatus: body\n", "Subject: a\n\nStatus: body\n"},
      {"X-UID: 5\n  folded\nX-Keywords: a b\nTo: x\n\n", "To: x\n\n"},
      {"x-imapbase: 1 2\r\nSubject: c\r\n\r\nX-UID: 1\r\n", "Subject: c\r\n\r\nX-UID: 1\r\n"},
      {"X-Statusbar: kept\nX-UIDL: kept\n\n", "X-Statusbar: kept\nX-UIDL: kept\n\n"},
      {"no colon line\nStatus: R\n", "no colon line\n"},
      {"\nStatus: R\n", "\nStatus: R\n"},
      {"X-UID", "X-UID"},
      {"Subject: s\n X-UID: 3\n\n", "Subject: s\n X-UID: 3\n\n"},
      {"AVeryLongHeaderName: v\nStatus: O\n", "AVeryLongHeaderName: v\n"},
  };
  for (const auto& [in, want] : cases) {
    INFO(in);
    CHECK(mboxVisible(in) == want);
    for (size_t piece : {1, 2, 3, 7}) {
      MboxMetaFilter f;
      std::string out;
      for (size_t i = 0; i < in.size(); i += piece) f.feed(in.substr(i, piece), out);
      f.finish(out);
      CHECK(out == want);
    }
  }
  CHECK(mboxIsPseudoMessage("Subject: x\nX-IMAP: 1 2\n\nbody"));
  CHECK_FALSE(mboxIsPseudoMessage("Subject: x\nX-IMAPbase: 1 2\n\nbody"));
  CHECK_FALSE(mboxIsPseudoMessage("Subject: x\n\nX-IMAP: 1 2\n"));
}

}  // namespace
}  // namespace yubin::store
