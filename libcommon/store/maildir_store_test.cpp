// MaildirStore and the uid list: the shared MailStore cases
// (mail_store_cases.hpp) on a temporary Maildir, then what is particular to
// the disk: the layout and mUTF-7 names, default mailboxes, flags and
// keywords in file names, the Dovecot uid list import, crash safety of the
// uid list, path escapes, the size cache, and a 10,000-message mailbox.
#include "store/maildir_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <set>

#include "base/fs.hpp"
#include "store/mail_store_cases.hpp"
#include "store/maildir.hpp"
#include "store/mailbox.hpp"  // naturalLess
#include "store/test_util.hpp"
#include "store/uid_list.hpp"

namespace yubin::store {
namespace {

using test::appendTo;
using test::listDir;
using test::listNames;
using test::readable;
using test::TempDir;

int gDelivery = 0;

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// A file as a delivery agent writes it: tmp/, then renamed into new/.
std::string deliverFile(const std::string& dir, const std::string& bytes,
                        const std::string& suffix = "") {
  std::string base = std::to_string(1700000000 + gDelivery) + ".M" + std::to_string(gDelivery) +
                     "P" + std::to_string(::getpid()) + ".test";
  ++gDelivery;
  std::string name = base + ",S=" + std::to_string(bytes.size()) + suffix;
  std::string tmp = dir + "/tmp/" + base;
  REQUIRE(atomicWrite(tmp, bytes, 0600));
  std::string to = dir + (suffix.empty() ? "/new/" : "/cur/") + name;
  REQUIRE(::rename(tmp.c_str(), to.c_str()) == 0);
  return name;
}

void markOpened(const std::string& root) {
  REQUIRE(makeDirs(root, 0700));
  REQUIRE(atomicWrite(root + "/" + kStoreMarkerFile, "1\n", 0600));
}

struct MaildirHarness : test::StoreHarness {
  TempDir tmp;
  std::string root = tmp / "Maildir";
  // Set: the stores opened are sessions of one process (one state per
  // folder); unset: each is a process of its own.
  std::shared_ptr<MaildirFolderStates> states;
  MaildirHarness() { markOpened(root); }
  std::unique_ptr<MailStore> open() override {
    auto s = openMaildirStore(root, states);
    REQUIRE(s);
    return std::move(*s);
  }
  void deliver(const std::string& mailbox, const std::string& bytes) override {
    auto dir = maildirStorePath(root, mailbox);
    REQUIRE(dir);
    deliverFile(*dir, bytes);
  }
};

std::unique_ptr<MailStore> openStore(const std::string& root) {
  auto s = openMaildirStore(root);
  REQUIRE(s);
  return std::move(*s);
}

// Sessions of one process: stores opened with one MaildirFolderStates.
struct SharedHarness : MaildirHarness {
  SharedHarness() { states = makeMaildirFolderStates(); }
};

// The shared cases run both ways: every store a process of its own, and
// the stores as sessions of one process sharing one state per folder.
template <typename Cases>
void bothWays(const Cases& cases) {
  SECTION("each store a process of its own") {
    MaildirHarness h;
    cases(h);
  }
  SECTION("sessions sharing one folder state") {
    SharedHarness h;
    cases(h);
  }
}

TEST_CASE("MaildirStore: the MailStore cases") {
  bothWays([](MaildirHarness& h) { test::mailStoreCases(h); });
}

TEST_CASE("MaildirStore: the mod-sequence cases (CONDSTORE)") {
  bothWays([](MaildirHarness& h) { test::modSeqCases(h); });
}

TEST_CASE("MaildirStore: layout on disk, mUTF-7 names") {
  MaildirHarness h;
  auto s = h.open();
  REQUIRE(s->create("Entwürfe.日本", ""));
  REQUIRE(s->create("a&b", ""));
  auto names = listDir(h.root);
  CHECK(std::count(names.begin(), names.end(), ".Entw&APw-rfe") == 1);
  CHECK(std::count(names.begin(), names.end(), ".Entw&APw-rfe.&ZeVnLA-") == 1);
  CHECK(std::count(names.begin(), names.end(), ".a&-b") == 1);
  for (const char* sub : {"cur", "new", "tmp", "maildirfolder", kUidListFile})
    CHECK(exists(h.root + "/.a&-b/" + sub));
  CHECK(*maildirStorePath(h.root, "inbox") == h.root);
  CHECK(*maildirStorePath(h.root, "Sent") == h.root + "/.Sent");
  // A directory made by Dovecot with an mUTF-7 name is listed decoded.
  REQUIRE(makeDirs(h.root + "/.&AMk-t&AOk-/cur", 0700));
  REQUIRE(makeDirs(h.root + "/.&AMk-t&AOk-/new", 0700));
  CHECK(listNames(*s) ==
        std::vector<std::string>{"INBOX", "Entwürfe+", "Entwürfe.日本", "a&b", "Été"});
}

TEST_CASE("MaildirStore: hostile names, on the wire and on disk") {
  MaildirHarness h;
  auto s = h.open();
  for (const char* bad : {"..", "../x", "A/../../etc", "~user", "a.~b", "A..B", "x/y", ".hidden"}) {
    INFO(bad);
    CHECK(maildirStorePath(h.root, bad).error().errnum == EINVAL);
    CHECK(s->create(bad, "").error().errnum == EINVAL);
    CHECK(s->rename("INBOX", bad).error().errnum == EINVAL);
    CHECK(s->subscribe(bad, true).error().errnum == EINVAL);
  }
  // Nothing was created outside the root.
  CHECK(listDir(h.tmp.path()) == std::vector<std::string>{"Maildir"});
  // Directories that do not decode to an acceptable name are not mailboxes.
  for (const char* odd : {"..DOVECOT-TRASH", ".&Jjo", ".a..b", ".x\x01", ".~x", ".INBOX"})
    REQUIRE(makeDirs(h.root + "/" + odd + "/cur", 0700));
  CHECK(listNames(*s) == std::vector<std::string>{"INBOX"});
  // A file where a folder should be is not a mailbox either.
  REQUIRE(atomicWrite(h.root + "/.plainfile", "x", 0600));
  CHECK(listNames(*s) == std::vector<std::string>{"INBOX"});
  // Nor a symlink to a directory elsewhere.
  REQUIRE(makeDirs(h.tmp / "elsewhere/cur", 0700));
  REQUIRE(makeDirs(h.tmp / "elsewhere/new", 0700));
  REQUIRE(::symlink((h.tmp / "elsewhere").c_str(), (h.root + "/.Link").c_str()) == 0);
  CHECK(listNames(*s) == std::vector<std::string>{"INBOX"});
  CHECK(s->select("Link", false).error().errnum == ENOENT);
  CHECK(s->status("Link").error().errnum == ENOENT);
  CHECK(s->beginAppend("Link").error().errnum == ENOENT);
}

TEST_CASE("MaildirStore: default special-use mailboxes, once") {
  TempDir tmp;
  const std::string root = tmp / "Maildir";
  {
    auto s = openStore(root);
    CHECK(listNames(*s) == std::vector<std::string>{"INBOX", "Archive \\Archive", "Drafts \\Drafts",
                                                    "Junk \\Junk", "Sent \\Sent", "Trash \\Trash"});
    auto subs = s->subscriptions();
    REQUIRE(subs);
    CHECK(subs->size() == 5);
    REQUIRE(s->remove("Junk"));
  }
  auto s = openStore(root);
  CHECK(listNames(*s) == std::vector<std::string>{"INBOX", "Archive \\Archive", "Drafts \\Drafts",
                                                  "Sent \\Sent", "Trash \\Trash"});
  // Special-use follows a rename.
  REQUIRE(s->rename("Sent", "Old.Sent"));
  CHECK(listNames(*s) == std::vector<std::string>{"INBOX", "Archive \\Archive", "Drafts \\Drafts",
                                                  "Old+", "Old.Sent \\Sent", "Trash \\Trash"});

  // An existing tree (Dovecot's) gets none.
  TempDir tmp2;
  const std::string root2 = tmp2 / "Maildir";
  REQUIRE(makeDirs(root2 + "/.Mine/cur", 0700));
  REQUIRE(makeDirs(root2 + "/.Mine/new", 0700));
  auto s2 = openStore(root2);
  CHECK(listNames(*s2) == std::vector<std::string>{"INBOX", "Mine"});
}

TEST_CASE("MaildirStore: subscriptions file in Dovecot's formats") {
  MaildirHarness h;
  auto s = h.open();
  REQUIRE(s->subscribe("Entwürfe", true));
  REQUIRE(s->subscribe("INBOX", true));
  CHECK(*readFile(h.root + "/subscriptions") == "Entw&APw-rfe\nINBOX\n");
  REQUIRE(atomicWrite(h.root + "/subscriptions", "V\t2\n\nA\tB\nÉté\n../x\n", 0600));
  auto subs = s->subscriptions();
  REQUIRE(subs);
  CHECK(*subs == std::vector<std::string>{"A.B", "Été"});
}

TEST_CASE("MaildirStore: flags and keywords in file names, Dovecot's letters") {
  MaildirHarness h;
  auto s = h.open();
  // A message Dovecot flagged: keyword letters mapped by dovecot-keywords,
  // and a P (passed) flag we keep.
  REQUIRE(atomicWrite(h.root + "/dovecot-keywords", "0 $Forwarded\n1 Work\n", 0600));
  std::string name = deliverFile(h.root, "Subject: a\n\nb\n", ":2,PSb");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  REQUIRE((*mb)->messages().size() == 1);
  CHECK((*mb)->messages()[0].flags == Flags{kFlagSeen, {"Work"}});
  REQUIRE((*mb)->setFlags({0}, FlagOp::Add, {kFlagDeleted | kFlagAnswered, {"$forwarded", "New"}}));
  auto cur = listDir(h.root + "/cur");
  REQUIRE(cur.size() == 1);
  CHECK(cur[0] == std::string(maildirBase(name)) + ":2,PRSTabc");
  CHECK(*readFile(h.root + "/dovecot-keywords") == "0 $Forwarded\n1 Work\n2 New\n");
  REQUIRE((*mb)->setFlags({0}, FlagOp::Replace, {kFlagFlagged, {}}));
  cur = listDir(h.root + "/cur");
  CHECK(cur[0] == std::string(maildirBase(name)) + ":2,FP");
  CHECK(s->status("INBOX")->unseen == 1);
}

TEST_CASE("MaildirStore: the first read-write select moves new/ to cur/") {
  MaildirHarness h;
  auto s = h.open();
  std::string name = deliverFile(h.root, "x\n");
  {
    auto ro = s->select("INBOX", true);
    REQUIRE(ro);
    CHECK(listDir(h.root + "/new") == std::vector<std::string>{name});
    CHECK((*ro)->messages()[0].recent);
  }
  auto rw = s->select("INBOX", false);
  REQUIRE(rw);
  CHECK(listDir(h.root + "/new").empty());
  CHECK(listDir(h.root + "/cur") == std::vector<std::string>{name + ":2,"});
  CHECK((*rw)->messages()[0].recent);
  CHECK(test::readAll(**rw, 0) == "x\n");
}

TEST_CASE("MaildirStore: APPEND writes a complete file with its date, sizes and flags") {
  MaildirHarness h;
  auto s = h.open();
  uint32_t uid = appendTo(*s, "INBOX", "A: b\n\nc\n", {kFlagSeen | kFlagDraft, {}}, 1600000000);
  CHECK(uid == 1);
  CHECK(listDir(h.root + "/tmp").empty());
  auto cur = listDir(h.root + "/cur");
  REQUIRE(cur.size() == 1);
  CHECK(maildirNameField(cur[0], 'S') == 8u);
  CHECK(maildirNameField(cur[0], 'W') == 11u);
  CHECK(maildirFlags(cur[0]) == "DS");
  struct stat st;
  REQUIRE(::stat((h.root + "/cur/" + cur[0]).c_str(), &st) == 0);
  CHECK(st.st_mtime == 1600000000);
  // An APPEND given up leaves nothing behind either: a small message was
  // only held in memory, a large one (past 128 KiB) had its file in tmp/.
  {
    auto t = s->beginAppend("INBOX");
    REQUIRE(t);
    REQUIRE((*t)->write("partial"));
    CHECK(listDir(h.root + "/tmp").empty());
    REQUIRE((*t)->write(std::string(128 * 1024, 'x')));
    CHECK(listDir(h.root + "/tmp").size() == 1);
  }
  CHECK(listDir(h.root + "/tmp").empty());
  // A small message's file is made at commit: a failure there (tmp/ gone
  // here; a full disk in test_enospc_imap.py) fails the commit and leaves
  // no file and no UID behind.
  {
    auto t = s->beginAppend("INBOX");
    REQUIRE(t);
    REQUIRE((*t)->write("Subject: lost\n\nx\n"));
    REQUIRE(::rmdir((h.root + "/tmp").c_str()) == 0);
    auto r = (*t)->commit({}, 0);
    REQUIRE_FALSE(r);
    CHECK(r.error().errnum == ENOENT);
    CHECK(r.error().message.find("/tmp/") != std::string::npos);
    REQUIRE(::mkdir((h.root + "/tmp").c_str(), 0700) == 0);
  }
  CHECK(listDir(h.root + "/cur").size() == 1);
  CHECK(listDir(h.root + "/tmp").empty());
  // A large message committed: the held start and the rest, in order.
  const std::string big = "Subject: big\n\n" + std::string(200 * 1024, 'y') + "\nend\n";
  const uint32_t bigUid = appendTo(*s, "INBOX", big, {}, 0);
  auto box = s->select("INBOX", false);
  REQUIRE(box);
  REQUIRE((*box)->messages().size() == 2);
  CHECK((*box)->messages()[1].uid == bigUid);
  CHECK(test::readAll(**box, 1) == big);
  CHECK(listDir(h.root + "/tmp").empty());
}

TEST_CASE("MaildirStore: CRLF sizes come from the name, the cache, or one count") {
  MaildirHarness h;
  auto s = h.open();
  deliverFile(h.root, "a\nb\n");
  deliverFile(h.root, "c\r\n", ",W=3:2,S");
  auto st = s->status("INBOX");
  REQUIRE(st);
  CHECK(st->size == 6 + 3);
  auto cache = readFile(h.root + "/yubin-sizes");
  REQUIRE(cache);
  CHECK(cache->find(" 4 6\n") != std::string::npos);
  // The cache is believed when the raw size matches (here it lies, on purpose).
  std::string text = *cache;
  text.replace(text.find(" 4 6\n"), 5, " 4 9\n");
  REQUIRE(atomicWrite(h.root + "/yubin-sizes", text, 0600));
  CHECK(s->status("INBOX")->size == 9 + 3);
}

TEST_CASE("uid list: format, strict parse, every truncation refused") {
  UidList l;
  l.uidValidity = 1234;
  l.uidNext = 10;
  l.firstRecent = 8;
  l.highestModSeq = 7;
  l.entries = {{1, "100.M1P1.h", 1, "FS"}, {5, "200.M2P1.h", 7, ""}, {9, "300.M3P1.h", 4, "F"}};
  std::string text = formatUidList(l);
  CHECK(text ==
        "yubin-uidlist 2 V1234 N10 R8 M7\n1 1 FS 100.M1P1.h\n5 7 ? 200.M2P1.h\n"
        "9 4 F 300.M3P1.h\nend 3\n");
  auto back = parseUidList(text);
  REQUIRE(back);
  CHECK(back->uidValidity == 1234);
  CHECK(back->uidNext == 10);
  CHECK(back->firstRecent == 8);
  CHECK(back->highestModSeq == 7);
  CHECK(back->entries == l.entries);
  for (size_t n = 0; n < text.size(); ++n) {
    INFO(n);
    CHECK_FALSE(parseUidList(text.substr(0, n)));
  }
  for (const char* bad : {
           "yubin-uidlist 1 V1234 N10 R8\n5 a\n1 b\nend 2\n",  // not ascending
           "yubin-uidlist 1 V1234 N10 R8\n1 a\n2 a\nend 2\n",  // same id twice
           "yubin-uidlist 1 V1234 N10 R8\n10 a\nend 1\n",      // not below N
           "yubin-uidlist 1 V1234 N10 R11\nend 0\n",           // R past N
           "yubin-uidlist 1 V0 N10 R1\nend 0\n",               // no UIDVALIDITY
           "yubin-uidlist 3 V1 N10 R1 M1\nend 0\n",            // unknown version
           "yubin-uidlist 2 V1 N10 R1\nend 0\n",               // version 2 without M
           "yubin-uidlist 1 V1 N10 R1 M1\nend 0\n",            // version 1 with M
           "yubin-uidlist 2 V1 N10 R1 M0\nend 0\n",            // HIGHESTMODSEQ 0
           "yubin-uidlist 2 V1 N10 R1 M5\n1 6 F a\nend 1\n",   // modseq above M
           "yubin-uidlist 2 V1 N10 R1 M5\n1 0 F a\nend 1\n",   // modseq 0
           "yubin-uidlist 2 V1 N10 R1 M5\n1 2 S a\nend 1\n",   // bad token
           "yubin-uidlist 2 V1 N10 R1 M5\n1 2 a\nend 1\n",     // a column short
           "yubin-uidlist 2 V1 N10 R1 M9223372036854775808\nend 0\n",  // above 2^63-1
           "yubin-uidlist 1 V1 N10 R1\n1 a\nend 2\n",          // count
           "yubin-uidlist 1 V1 N10 R1\n1 a/b\nend 1\n",        // bad id
           "yubin-uidlist 1 V1 N10 R1\n1 \nend 1\n",           // empty id
           "yubin-uidlist 1 V1 N10 R1\nx a\nend 1\n",          // garbage
           "yubin-uidlist 1 V99999999999 N10 R1\nend 0\n",     // overflow
           "\0\0\0\0\0\0",
       }) {
    INFO(bad);
    CHECK_FALSE(parseUidList(bad));
  }
}

TEST_CASE("uid list: version 1 is read (modseq 1, token unknown)") {
  auto v1 = parseUidList("yubin-uidlist 1 V1234 N10 R8\n1 100.M1P1.h\n5 200.M2P1.h\nend 2\n");
  REQUIRE(v1);
  CHECK(v1->highestModSeq == 1);
  REQUIRE(v1->entries.size() == 2);
  CHECK(v1->entries[1] == UidEntry{5, "200.M2P1.h", 1, ""});
}

TEST_CASE("uid list: flags tokens") {
  CHECK(flagsToken("") == "F");
  CHECK(flagsToken("FSa") == "FFSa");
  std::string odd = flagsToken("S x");
  CHECK(odd.size() == 17);
  CHECK(odd[0] == '#');
  CHECK(odd != flagsToken("S y"));
  CHECK(odd == flagsToken("S x"));
}

TEST_CASE("uid list: Dovecot's dovecot-uidlist") {
  auto v3 = parseDovecotUidList(
      "3 V1500000000 N8 G0123456789abcdef\n"
      "1 :1500000001.M1P1.host,S=10:2,S\n"
      "4 W120 S118 :1500000002.M2P1.host,S=118,W=120\n"
      "7 1500000003.M3P1.host\n");
  REQUIRE(v3);
  CHECK(v3->uidValidity == 1500000000);
  CHECK(v3->uidNext == 8);
  CHECK(v3->firstRecent == 8);
  CHECK(v3->entries == std::vector<UidEntry>{{1, "1500000001.M1P1.host", 1, ""},
                                            {4, "1500000002.M2P1.host", 1, ""},
                                            {7, "1500000003.M3P1.host", 1, ""}});
  auto v1 = parseDovecotUidList("1 1400000000 3\n1 a.b.c\n2 d.e.f:2,S\n");
  REQUIRE(v1);
  CHECK(v1->uidValidity == 1400000000);
  CHECK(v1->entries.size() == 2);
  // N behind the last UID (a crash): moved past it.
  auto behind = parseDovecotUidList("3 V1 N2\n5 :x\n");
  REQUIRE(behind);
  CHECK(behind->uidNext == 6);
  for (const char* bad : {"", "2 V1 N1\n", "3 N5\n", "3 V1 N5\n2 :a\n1 :b\n", "3 V1 N5\nx :a\n",
                          "3 V1 N5\n1 :a\n2 :a\n"}) {
    INFO(bad);
    CHECK_FALSE(parseDovecotUidList(bad));
  }
}

TEST_CASE("MaildirStore: a Dovecot folder keeps its UIDs") {
  MaildirHarness h;
  const std::string dir = h.root + "/.Old";
  for (const char* sub : {"/cur", "/new", "/tmp"}) REQUIRE(makeDirs(dir + sub, 0700));
  REQUIRE(atomicWrite(dir + "/cur/1500000001.M1P1.host,S=2:2,S", "a\n", 0600));
  REQUIRE(atomicWrite(dir + "/cur/1500000002.M2P1.host,S=2,W=3:2,", "b\n", 0600));
  REQUIRE(atomicWrite(dir + "/new/1500000009.M9P1.host,S=2", "c\n", 0600));
  REQUIRE(atomicWrite(dir + "/dovecot-uidlist",
                      "3 V1500000000 N40 G0\n17 :1500000001.M1P1.host,S=2\n"
                      "33 W3 :1500000002.M2P1.host,S=2,W=3\n",
                      0600));
  auto s = h.open();
  auto st = s->status("Old");
  REQUIRE(st);
  CHECK(st->uidValidity == 1500000000);
  CHECK(st->uidNext == 41);
  CHECK(st->recent == 1);  // only the one Dovecot had not listed
  auto mb = s->select("Old", false);
  REQUIRE(mb);
  CHECK(test::uids(**mb) == std::vector<uint32_t>{17, 33, 40});
  CHECK((*mb)->uidValidity() == 1500000000);
  CHECK(exists(dir + "/" + kUidListFile));
}

TEST_CASE("MaildirStore: a damaged uid list never yields duplicate UIDs") {
  auto damage = GENERATE(as<std::string>{}, "", "garbage\n", "yubin-uidlist 1 V5 N3 R1\n1 ",
                         "truncated-at-end", "\0\0\0\0");
  INFO(damage);
  MaildirHarness h;
  auto s = h.open();
  for (int i = 0; i < 3; ++i) appendTo(*s, "INBOX", "m" + std::to_string(i) + "\n");
  uint32_t before = s->status("INBOX")->uidValidity;
  std::string text = *readFile(h.root + "/" + kUidListFile);
  if (damage == "truncated-at-end")
    text.resize(text.size() - 4);
  else
    text = damage;
  REQUIRE(atomicWrite(h.root + "/" + kUidListFile, text, 0600));
  deliverFile(h.root, "new\n");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  CHECK((*mb)->uidValidity() != before);
  auto u = test::uids(**mb);
  CHECK(u.size() == 4);
  CHECK(std::set<uint32_t>(u.begin(), u.end()).size() == 4);
  CHECK(std::is_sorted(u.begin(), u.end()));
  CHECK((*mb)->uidNext() > u.back());
  // The rebuilt list is sound and stable.
  auto again = s->select("INBOX", true);
  REQUIRE(again);
  CHECK(test::uids(**again) == u);
  CHECK((*again)->uidValidity() == (*mb)->uidValidity());
}

TEST_CASE("MaildirStore: a UID list rebuilt under a selected mailbox ends the session") {
  MaildirHarness h;
  auto s = h.open();
  appendTo(*s, "INBOX", "a\n");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  REQUIRE(atomicWrite(h.root + "/" + kUidListFile, "garbage\n", 0600));
  deliverFile(h.root, "b\n");
  auto c = (*mb)->sync(true);
  REQUIRE_FALSE(c);
  CHECK(c.error().errnum == ESTALE);
}

TEST_CASE("MaildirStore: another session's rename is followed by id") {
  MaildirHarness h;
  auto s = h.open();
  appendTo(*s, "INBOX", "hello\n");
  auto a = s->select("INBOX", false);
  auto s2 = h.open();
  auto b = s2->select("INBOX", false);
  REQUIRE((*a)->setFlags({0}, FlagOp::Add, {kFlagSeen, {}}));
  // b has not synced: open and setFlags find the file again.
  CHECK(test::readAll(**b, 0) == "hello\n");
  REQUIRE((*b)->setFlags({0}, FlagOp::Add, {kFlagFlagged, {}}));
  auto cur = listDir(h.root + "/cur");
  REQUIRE(cur.size() == 1);
  // b's view did not know of \Seen yet: its STORE +FLAGS kept what it knew.
  CHECK(maildirFlags(cur[0]).find('F') != std::string_view::npos);
  auto c = (*a)->sync(true);
  REQUIRE(c);
  CHECK(c->flagsChanged == std::vector<size_t>{0});
}

TEST_CASE("MaildirStore: copy keeps the bytes, date and flags; links when it can") {
  MaildirHarness h;
  auto s = h.open();
  REQUIRE(s->create("B", ""));
  appendTo(*s, "INBOX", "body\n", {kFlagAnswered, {"Tag"}}, 1500000000);
  auto a = s->select("INBOX", false);
  REQUIRE(a);
  auto c = (*a)->copy({0}, "B", false);
  REQUIRE(c);
  CHECK(c->destUids == std::vector<uint32_t>{1});
  auto cur = listDir(h.root + "/.B/cur");
  REQUIRE(cur.size() == 1);
  struct stat x, y;
  REQUIRE(::stat((h.root + "/.B/cur/" + cur[0]).c_str(), &x) == 0);
  REQUIRE(::stat((h.root + "/cur/" + listDir(h.root + "/cur")[0]).c_str(), &y) == 0);
  CHECK(x.st_ino == y.st_ino);
  CHECK(x.st_mtime == 1500000000);
  CHECK(*readFile(h.root + "/.B/dovecot-keywords") == "0 Tag\n");
  CHECK(maildirFlags(cur[0]) == "Ra");
  CHECK(maildirId(cur[0]) != maildirId(listDir(h.root + "/cur")[0]));
}

TEST_CASE("MaildirStore: two processes' worth of handles appending at once get distinct UIDs") {
  MaildirHarness h;
  std::vector<std::unique_ptr<MailStore>> stores;
  for (int i = 0; i < 4; ++i) stores.push_back(h.open());
  std::vector<std::unique_ptr<AppendTransaction>> open;
  for (int i = 0; i < 20; ++i) {
    auto t = stores[static_cast<size_t>(i) % 4]->beginAppend("INBOX");
    REQUIRE(t);
    REQUIRE((*t)->write("m" + std::to_string(i) + "\n"));
    open.push_back(std::move(*t));
  }
  std::set<uint32_t> seen;
  for (auto& t : open) {
    auto r = t->commit({}, 0);
    REQUIRE(r);
    CHECK(seen.insert(r->uids[0]).second);
  }
  CHECK(seen.size() == 20);
  auto mb = stores[0]->select("INBOX", true);
  REQUIRE(mb);
  auto u = test::uids(**mb);
  CHECK(std::set<uint32_t>(u.begin(), u.end()) == seen);
}

TEST_CASE("MaildirStore: forked writers never share a UID") {
  MaildirHarness h;
  constexpr int kProcs = 3, kEach = 15;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto s = openMaildirStore(h.root);
      int bad = !s;
      for (int i = 0; s && i < kEach; ++i) {
        auto t = (*s)->beginAppend("INBOX");
        if (!t || !(*t)->write("x\n") || !(*t)->commit({}, 0)) bad = 1;
        // A reader in between, as a session syncing would.
        if (i % 5 == 0) {
          auto st = (*s)->status("INBOX");
          bad |= !st;
        }
      }
      ::_exit(bad);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    REQUIRE(::waitpid(k, &status, 0) == k);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  auto s = h.open();
  auto mb = s->select("INBOX", true);
  REQUIRE(mb);
  auto u = test::uids(**mb);
  CHECK(u.size() == kProcs * kEach);
  CHECK(std::set<uint32_t>(u.begin(), u.end()).size() == u.size());
  CHECK((*mb)->uidNext() == kProcs * kEach + 1);
}

void backdate(const std::string& dir) {
  struct timespec t[2] = {{1000000000, 0}, {1000000000, 0}};
  for (const char* sub : {"/new", "/cur"})
    REQUIRE(::utimensat(AT_FDCWD, (dir + sub).c_str(), t, 0) == 0);
}

// Wall and CPU time since t0 (CPU: the figure that does not depend on how
// busy the machine is), for the report line.
struct Clock {
  std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
  double cpu = cpuMs();
  static double cpuMs() {
    struct timespec ts;
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
  }
  std::string since() const {
    char buf[64];
    std::snprintf(
        buf, sizeof buf, "%.2f ms (cpu %.2f ms)",
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall).count(),
        cpuMs() - cpu);
    return buf;
  }
};

// count messages written straight into dir (no fsync): every odd one
// seen in cur/, the others in new/.
void fillFolder(const std::string& dir, int count, const std::string& body) {
  for (int i = 0; i < count; ++i) {
    std::string name = "1600000000.M" + std::to_string(i) +
                       "P1.bench,S=" + std::to_string(body.size()) + (i % 2 ? ":2,S" : "");
    int fd = ::open((dir + (i % 2 ? "/cur/" : "/new/") + name).c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(writeAll(fd, body));
    ::close(fd);
  }
}

TEST_CASE("MaildirStore: a mailbox of 10,000 messages", "[perf]") {
  MaildirHarness h;
  constexpr int kCount = 10000;
  const std::string body = "From: a@example.org\nSubject: hello\n\nbody line\n";
  auto s = h.open();
  fillFolder(h.root, kCount, body);
  Clock t0;
  auto st = s->status("INBOX");
  std::string coldStatus = t0.since();
  REQUIRE(st);
  CHECK(st->messages == kCount);
  CHECK(st->unseen == kCount / 2);
  CHECK(st->size == kCount * (body.size() + 4));
  t0 = Clock();
  st = s->status("INBOX");
  std::string warmStatus = t0.since();
  REQUIRE(st);

  t0 = Clock();
  auto mb = s->select("INBOX", false);
  std::string selectMs = t0.since();
  REQUIRE(mb);
  REQUIRE((*mb)->messages().size() == kCount);
  CHECK((*mb)->messages().back().uid == kCount);
  backdate(h.root);
  REQUIRE((*mb)->sync(true));  // takes in the backdated times
  t0 = Clock();
  auto c = (*mb)->sync(true);
  std::string idleSync = t0.since();
  REQUIRE(c);
  CHECK_FALSE(c->existsChanged);
  CHECK(c->flagsChanged.empty());

  deliverFile(h.root, body);
  t0 = Clock();
  c = (*mb)->sync(true);
  std::string newSync = t0.since();
  REQUIRE(c);
  CHECK(c->existsChanged);
  CHECK((*mb)->messages().size() == kCount + 1);
  CHECK((*mb)->messages().back().uid == kCount + 1);
  // A STORE on one message: rename plus the uid list rewritten (CONDSTORE).
  const uint64_t before = (*mb)->highestModSeq();
  t0 = Clock();
  REQUIRE((*mb)->setFlags({5}, FlagOp::Add, {kFlagFlagged, {}}));
  std::string storeMs = t0.since();
  CHECK((*mb)->messages()[5].modSeq == before + 1);
  CHECK((*mb)->highestModSeq() == before + 1);
  std::fprintf(stderr,
               "10k messages: status cold %s, warm %s; select %s; sync unchanged %s; sync with "
               "one new message %s; STORE of one message %s\n",
               coldStatus.c_str(), warmStatus.c_str(), selectMs.c_str(), idleSync.c_str(),
               newSync.c_str(), storeMs.c_str());
}

}  // namespace
}  // namespace yubin::store

namespace yubin::store {
namespace {

TEST_CASE("MaildirStore: a flag change by another Maildir writer gets a new modseq") {
  MaildirHarness h;
  auto s = h.open();
  appendTo(*s, "INBOX", "a\n");
  appendTo(*s, "INBOX", "b\n");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  const uint64_t before = (*mb)->highestModSeq();
  const uint64_t untouched = (*mb)->messages()[0].modSeq;
  // A Dovecot-style client renames the file itself; our list knows nothing.
  auto cur = listDir(h.root + "/cur");
  REQUIRE(cur.size() == 2);
  std::sort(cur.begin(), cur.end(), [](const std::string& x, const std::string& y) {
    return naturalLess(maildirId(x), maildirId(y));
  });
  const std::string from = h.root + "/cur/" + cur[1];
  const std::string to = h.root + "/cur/" + std::string(maildirBase(cur[1])) + ":2,FS";
  REQUIRE(::rename(from.c_str(), to.c_str()) == 0);
  auto c = (*mb)->sync(true);
  REQUIRE(c);
  CHECK(c->flagsChanged == std::vector<size_t>{1});
  CHECK((*mb)->messages()[1].flags.system == (kFlagFlagged | kFlagSeen));
  CHECK((*mb)->messages()[1].modSeq > before);
  CHECK((*mb)->messages()[0].modSeq == untouched);
  CHECK((*mb)->highestModSeq() == (*mb)->messages()[1].modSeq);
  // Stable: the next sync finds nothing new, and the list on disk agrees.
  c = (*mb)->sync(true);
  REQUIRE(c);
  CHECK(c->flagsChanged.empty());
  auto read = readUidList(h.root);
  REQUIRE(read);
  REQUIRE(read->state == UidListState::Ok);
  CHECK(read->list.highestModSeq == (*mb)->highestModSeq());
  CHECK(read->list.entries[1].flags == "FFS");
}

TEST_CASE("MaildirStore: a version 1 uid list is upgraded, UIDs kept") {
  MaildirHarness h;
  auto s = h.open();
  appendTo(*s, "INBOX", "a\n", {kFlagSeen, {}});
  appendTo(*s, "INBOX", "b\n");
  auto read = readUidList(h.root);
  REQUIRE(read);
  REQUIRE(read->state == UidListState::Ok);
  // Written back as an older yubin would have.
  std::string v1 = std::string(kUidListFile) + " 1 V" + std::to_string(read->list.uidValidity) +
                   " N" + std::to_string(read->list.uidNext) + " R" +
                   std::to_string(read->list.firstRecent) + "\n";
  for (const auto& e : read->list.entries) v1 += std::to_string(e.uid) + " " + e.id + "\n";
  v1 += "end " + std::to_string(read->list.entries.size()) + "\n";
  REQUIRE(atomicWrite(h.root + "/" + kUidListFile, v1, 0600));
  auto mb = s->select("INBOX", true);
  REQUIRE(mb);
  CHECK((*mb)->uidValidity() == read->list.uidValidity);
  CHECK(test::uids(**mb) == std::vector<uint32_t>{1, 2});
  CHECK((*mb)->highestModSeq() == 1);
  for (const auto& m : (*mb)->messages()) CHECK(m.modSeq == 1);
  auto text = readFile(h.root + "/" + kUidListFile);
  REQUIRE(text);
  CHECK(text->rfind("yubin-uidlist 2 ", 0) == 0);
  // From now on changes count up from there.
  auto rw = s->select("INBOX", false);
  REQUIRE(rw);
  REQUIRE((*rw)->setFlags({1}, FlagOp::Add, {kFlagAnswered, {}}));
  CHECK((*rw)->messages()[1].modSeq == 2);
  CHECK((*rw)->messages()[0].modSeq == 1);
}

}  // namespace
}  // namespace yubin::store

// ---- the change log and the shared folder state ----

namespace yubin::store {
namespace {

UidList sampleList() {
  UidList l;
  l.uidValidity = 1234;
  l.uidNext = 10;
  l.firstRecent = 8;
  l.highestModSeq = 7;
  l.entries = {{1, "100.M1P1.h", 1, "FS"}, {5, "200.M2P1.h", 7, ""}, {9, "300.M3P1.h", 4, "F"}};
  return l;
}

TEST_CASE("uid log: batches replay over their list; a torn last batch is ignored") {
  const UidList base = sampleList();
  // Batch 1: uid 5 gets modseq 8 and a token, uid 10 is new.
  UidList one = base;
  one.entries[1].modSeq = 8;
  one.entries[1].flags = "FR";
  one.entries.push_back({10, "400.M4P1.h", 8, "F"});
  one.uidNext = 11;
  one.highestModSeq = 8;
  // Batch 2: uid 1 is expunged, \Recent taken.
  UidList two = one;
  two.entries.erase(two.entries.begin());
  two.highestModSeq = 9;
  two.firstRecent = 11;
  const std::string head = std::string(kUidLogMagic) + " V1234 B7\n";
  const std::string b1 = formatUidLogBatch(one, {5, 10}, {});
  const std::string b2 = formatUidLogBatch(two, {}, {1});
  CHECK(b1 == "E 5 8 FR 200.M2P1.h\nE 10 8 F 400.M4P1.h\nH 11 8 8\n");
  CHECK(b2 == "X 1\nH 11 11 9\n");
  const std::string log = head + b1 + b2;
  auto replay = [&](std::string_view text) {
    UidList l = base;
    bool ok = applyUidLog(l, text);
    return std::pair{ok, l};
  };
  auto [ok, all] = replay(log);
  REQUIRE(ok);
  CHECK(all.entries == two.entries);
  CHECK(all.uidNext == 11);
  CHECK(all.firstRecent == 11);
  CHECK(all.highestModSeq == 9);
  CHECK(all.logBase == 7);
  // Every cut: the state of the last complete batch (or the list itself).
  for (size_t n = 0; n <= log.size(); ++n) {
    INFO(n);
    auto [cutOk, l] = replay(log.substr(0, n));
    if (n < head.size()) {
      CHECK_FALSE(cutOk);  // no header: not this list's log
      continue;
    }
    REQUIRE(cutOk);
    const UidList& want = n < head.size() + b1.size() ? base
                          : n < log.size()            ? one
                                                      : two;
    CHECK(l.entries == want.entries);
    CHECK(l.uidNext == want.uidNext);
    CHECK(l.highestModSeq == want.highestModSeq);
    CHECK(l.firstRecent == want.firstRecent);
  }
  // Fed to parse one byte at a time makes no sense for a file read whole;
  // garbage in a batch ends the replay there.
  auto [gOk, g] = replay(head + b1 + "E 5 x FR 200.M2P1.h\nH 11 8 9\n");
  REQUIRE(gOk);
  CHECK(g.entries == one.entries);
  // Bound to its list: another base or UIDVALIDITY, or an id that does not
  // match, and nothing is taken.
  for (const std::string& bad :
       {std::string(kUidLogMagic) + " V1234 B6\n" + b1, std::string(kUidLogMagic) + " V1 B7\n" + b1,
        head + "E 5 8 FR 999.M9P1.h\nH 10 8 8\n", head + "E 3 8 F 999.M9P1.h\nH 10 8 8\n"}) {
    INFO(bad);
    CHECK_FALSE(replay(bad).first);
  }
}

TEST_CASE("uid log: a STORE appends to the log; the list is rewritten only past the bound") {
  MaildirHarness h;
  auto s = h.open();
  for (int i = 0; i < 3; ++i) appendTo(*s, "INBOX", "m" + std::to_string(i) + "\n");
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  struct stat before;
  REQUIRE(::stat((h.root + "/" + kUidListFile).c_str(), &before) == 0);
  REQUIRE((*mb)->setFlags({1}, FlagOp::Add, {kFlagFlagged, {}}));
  REQUIRE((*mb)->expunge({0}) );
  struct stat after;
  REQUIRE(::stat((h.root + "/" + kUidListFile).c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);  // not replaced
  auto log = readFile(h.root + "/" + kUidLogFile);
  REQUIRE(log);
  CHECK(log->find("E 2 ") != std::string::npos);
  CHECK(log->find("X 1\n") != std::string::npos);
  // Another process reads list + log.
  auto read = readUidList(h.root);
  REQUIRE(read);
  REQUIRE(read->state == UidListState::Ok);
  REQUIRE(read->list.entries.size() == 2);
  CHECK(read->list.entries[0].uid == 2);
  CHECK(read->list.entries[0].flags == "FF");
  CHECK(read->list.highestModSeq == (*mb)->highestModSeq());
  // Many changes: the log is folded in once past its bound, and stays small.
  REQUIRE((*mb)->sync(true));
  for (int i = 0; i < 2500; ++i)
    REQUIRE((*mb)->setFlags({0}, i % 2 ? FlagOp::Remove : FlagOp::Add, {kFlagSeen, {}}));
  struct stat logSt;
  REQUIRE(::stat((h.root + "/" + kUidLogFile).c_str(), &logSt) == 0);
  CHECK(static_cast<uint64_t>(logSt.st_size) <= kUidLogMinBound + 64);
  read = readUidList(h.root);
  REQUIRE(read);
  REQUIRE(read->state == UidListState::Ok);
  CHECK(read->list.highestModSeq == (*mb)->highestModSeq());
  CHECK(read->list.entries[0].modSeq == (*mb)->messages()[0].modSeq);
  // A fresh store (another process) agrees on everything.
  auto other = openStore(h.root)->select("INBOX", true);
  REQUIRE(other);
  CHECK((*other)->highestModSeq() == (*mb)->highestModSeq());
  CHECK((*other)->messages()[0].modSeq == (*mb)->messages()[0].modSeq);
  CHECK((*other)->messages()[0].flags == (*mb)->messages()[0].flags);
}

TEST_CASE("MaildirStore: two sessions on one state see each other; an outside writer too") {
  SharedHarness h;
  auto s1 = h.open();
  auto s2 = h.open();
  for (int i = 0; i < 3; ++i) appendTo(*s1, "INBOX", "m" + std::to_string(i) + "\n");
  auto a = s1->select("INBOX", false);
  auto b = s2->select("INBOX", false);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(test::uids(**a) == std::vector<uint32_t>{1, 2, 3});
  CHECK(test::uids(**b) == std::vector<uint32_t>{1, 2, 3});
  // A's STORE: B hears of it at its next sync, A does not hear it again.
  REQUIRE((*a)->setFlags({1}, FlagOp::Add, {kFlagAnswered, {"$Work"}}));
  auto cb = (*b)->sync(true);
  REQUIRE(cb);
  CHECK(cb->flagsChanged == std::vector<size_t>{1});
  CHECK((*b)->messages()[1].flags == (*a)->messages()[1].flags);
  CHECK((*b)->messages()[1].modSeq == (*a)->messages()[1].modSeq);
  auto ca = (*a)->sync(true);
  REQUIRE(ca);
  CHECK(ca->flagsChanged.empty());
  // A's APPEND: B sees EXISTS with the same UID, size and date.
  uint32_t uid = appendTo(*s1, "INBOX", "new one\n", {kFlagSeen, {}}, 1600000000);
  cb = (*b)->sync(false);
  REQUIRE(cb);
  CHECK(cb->existsChanged);
  REQUIRE((*b)->messages().size() == 4);
  CHECK((*b)->messages()[3].uid == uid);
  CHECK((*b)->messages()[3].size == 9);
  CHECK((*b)->messages()[3].internalDate == 1600000000);
  CHECK((*b)->messages()[3].flags.system == kFlagSeen);
  // A's EXPUNGE: B keeps the message (and its data) until it may expunge.
  REQUIRE((*a)->setFlags({0}, FlagOp::Add, {kFlagDeleted, {}}));
  REQUIRE((*a)->expunge({0}));
  cb = (*b)->sync(false);
  REQUIRE(cb);
  CHECK(cb->expunged.empty());
  REQUIRE((*b)->messages().size() == 4);
  CHECK((*b)->messages()[0].expunged);
  CHECK((*b)->messages()[0].uid == 1);  // its data kept for FETCH
  CHECK((*b)->open(0).error().errnum == ENOENT);
  CHECK(test::readAll(**b, 1) == "m1\n");
  cb = (*b)->sync(true);
  REQUIRE(cb);
  CHECK(cb->expunged == std::vector<uint32_t>{1});
  CHECK(test::uids(**b) == std::vector<uint32_t>{2, 3, 4});
  // An outside writer (another process: a store with its own states)
  // renames a file and delivers one; both sessions see both.
  auto outside = openStore(h.root);
  auto c = outside->select("INBOX", false);
  REQUIRE(c);
  REQUIRE((*c)->setFlags({0}, FlagOp::Add, {kFlagFlagged, {}}));
  h.deliver("INBOX", "from outside\n");
  for (auto* mb : {&*a, &*b}) {
    auto ch = (*mb)->sync(true);
    REQUIRE(ch);
    CHECK(ch->existsChanged);
    CHECK(ch->flagsChanged == std::vector<size_t>{0});
    CHECK(test::uids(**mb) == std::vector<uint32_t>{2, 3, 4, 5});
    CHECK((*mb)->messages()[0].flags.system == (kFlagFlagged | kFlagAnswered));
    CHECK((*mb)->messages()[0].modSeq == (*c)->messages()[0].modSeq);
  }
  // \Recent of the delivered message went to exactly one of them.
  CHECK((*a)->messages()[3].recent + (*b)->messages()[3].recent == 1);
  // STATUS answers from the shared state, and agrees with the other process.
  auto st = s2->status("INBOX");
  auto st2 = outside->status("INBOX");
  REQUIRE(st);
  REQUIRE(st2);
  CHECK(st->messages == 4);
  CHECK(st->messages == st2->messages);
  CHECK(st->size == st2->size);
  CHECK(st->unseen == st2->unseen);
  CHECK(st->highestModSeq == st2->highestModSeq);
  CHECK(st->uidNext == st2->uidNext);
}

TEST_CASE("MaildirStore: N sessions on a 10,000-message folder hold 4 octets a message each") {
  SharedHarness h;
  constexpr int kCount = 10000;
  constexpr size_t kSessions = 20;
  const std::string body = "From: a@example.org\nSubject: hello\n\nbody line\n";
  std::vector<std::unique_ptr<MailStore>> stores;
  stores.push_back(h.open());  // creates the Maildir
  fillFolder(h.root, kCount, body);
  std::vector<std::unique_ptr<ImapMailbox>> boxes;
  Clock t0;
  for (size_t i = 0; i < kSessions; ++i) {
    if (i > 0) stores.push_back(h.open());
    auto mb = stores.back()->select("INBOX", i % 2 == 1);
    REQUIRE(mb);
    boxes.push_back(std::move(*mb));
    if (i == 0) WARN("first SELECT " << t0.since());
  }
  WARN(kSessions - 1 << " more SELECTs of the loaded folder " << t0.since());
  size_t total = 0;
  for (const auto& mb : boxes) {
    REQUIRE(mb->messages().size() == kCount);
    // The sequence-number map and a few hundred octets, no MessageInfo copy
    // (80 octets a message before).
    CHECK(mb->sessionBytes() <= kCount * sizeof(uint32_t) + 1024);
    total += mb->sessionBytes();
  }
  WARN(kSessions << " sessions: " << total / kSessions << " octets each");
  // What they read is the shared state's, correct for each.
  for (size_t i : {size_t{0}, size_t{1}, size_t{4999}, size_t{9999}}) {
    const MessageInfo a = boxes[0]->messages()[i];
    const MessageInfo b = boxes[kSessions - 1]->messages()[i];
    CHECK(a.uid == i + 1);
    CHECK(b.uid == a.uid);
    CHECK(a.flags.system == kFlagSeen * (i % 2));
    CHECK(b.flags == a.flags);
    CHECK(a.size == body.size() + 4);
    CHECK(b.internalDate == a.internalDate);
    CHECK(boxes[0]->messages().brief(i).system == a.flags.system);
  }
  // \Recent: the first read-write session took the 5,000 in new/ (and the
  // rest: nothing was \Recent-claimed before), the later ones none.
  size_t recent0 = 0, recent2 = 0;
  for (size_t i = 0; i < kCount; ++i) {
    recent0 += boxes[0]->messages().brief(i).recent;
    recent2 += boxes[2]->messages().brief(i).recent;
  }
  CHECK(recent0 == kCount);
  CHECK(recent2 == 0);
  CHECK(boxes[0]->recentCount() == kCount);
  CHECK(boxes[2]->recentCount() == 0);
  // One expunge: the others keep their numbers until they sync(true), and
  // their footprint does not grow with it.
  REQUIRE(boxes[0]->setFlags({10}, FlagOp::Add, {kFlagDeleted, {}}));
  REQUIRE(boxes[0]->expunge({10}));
  for (size_t k = 1; k < kSessions; ++k) {
    CHECK(boxes[k]->messages()[10].expunged);
    CHECK(boxes[k]->messages()[10].flags.system == kFlagDeleted);
    CHECK(boxes[k]->messages()[11].uid == 12);
  }
  for (auto& mb : boxes) {
    auto ch = mb->sync(true);
    REQUIRE(ch);
    CHECK(ch->expunged == std::vector<uint32_t>{11});
    CHECK(mb->messages().size() == kCount - 1);
    CHECK(mb->messages()[10].uid == 12);
  }
  // The last session gone, the state lingers: a new SELECT finds it.
  boxes.clear();
  REQUIRE(h.states);
  CHECK(lingeringFolderStates(*h.states) == 1);
  t0 = Clock();
  auto again = stores[0]->select("INBOX", false);
  WARN("SELECT after the last session left " << t0.since());
  REQUIRE(again);
  CHECK((*again)->messages().size() == kCount - 1);
  CHECK(lingeringFolderStates(*h.states) == 0);
  // A folder deleted and created again is not served from a lingering state.
  again->reset();
  CHECK(lingeringFolderStates(*h.states) == 1);
  auto s = h.open();
  REQUIRE(s->create("Other", ""));
  appendTo(*s, "Other", "one\n");
  auto o = s->select("Other", false);
  REQUIRE(o);
  CHECK((*o)->messages().size() == 1);
  o->reset();
  REQUIRE(s->remove("Other"));
  REQUIRE(s->create("Other", ""));
  o = s->select("Other", false);
  REQUIRE(o);
  CHECK((*o)->messages().empty());
}

TEST_CASE("MaildirStore: SELECT again reuses the change descriptor, which still wakes; "
          "a replaced folder's wakes too") {
  SharedHarness h;
  auto s = h.open();
  appendTo(*s, "INBOX", "m0\n");
  int kept = -1;
  {
    auto a = s->select("INBOX", false);
    REQUIRE(a);
    kept = (*a)->changeFd();
    REQUIRE(kept >= 0);
  }
  h.deliver("INBOX", "while closed\n");  // queued on the kept descriptor
  {
    auto a = s->select("INBOX", false);
    REQUIRE(a);
    CHECK((*a)->changeFd() == kept);
    CHECK((*a)->messages().size() == 2);
    (*a)->drainChangeFd();  // its own new/ -> cur/ move
    CHECK_FALSE(readable(kept));
    h.deliver("INBOX", "after\n");
    CHECK(readable(kept));
    (*a)->drainChangeFd();
    CHECK_FALSE(readable(kept));
  }
  // A folder deleted and created again while its descriptor is kept: the
  // old watches went with the old directories, the new SELECT watches the
  // new ones.
  REQUIRE(s->create("Work", ""));
  { REQUIRE(s->select("Work", false)); }
  REQUIRE(s->remove("Work"));
  REQUIRE(s->create("Work", ""));
  auto w = s->select("Work", false);
  REQUIRE(w);
  REQUIRE((*w)->changeFd() >= 0);
  (*w)->drainChangeFd();
  CHECK_FALSE(readable((*w)->changeFd()));
  h.deliver("Work", "to the new folder\n");
  CHECK(readable((*w)->changeFd()));
}

TEST_CASE("MaildirStore: RECENT counts stay right through appends and expunges of others") {
  // recentCount() is kept by each sync; it must equal the messages flagged
  // \Recent in the view, however appends, deliveries and expunges of
  // other sessions interleave.
  SharedHarness h;
  auto s1 = h.open();
  auto s2 = h.open();
  auto a = s1->select("INBOX", false);
  auto b = s2->select("INBOX", false);
  REQUIRE(a);
  REQUIRE(b);
  uint32_t seed = 12345;
  auto rnd = [&seed](uint32_t n) {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) % n;
  };
  auto counted = [](ImapMailbox& m) {
    uint32_t n = 0;
    for (size_t i = 0; i < m.messages().size(); ++i) n += m.messages()[i].recent ? 1 : 0;
    return n;
  };
  for (int step = 0; step < 300; ++step) {
    ImapMailbox& who = rnd(2) ? **a : **b;
    switch (rnd(4)) {
      case 0: appendTo(*s1, "INBOX", "m" + std::to_string(step) + "\n"); break;
      case 1: h.deliver("INBOX", "d" + std::to_string(step) + "\n"); break;
      case 2:
        if (who.messages().size() > 0) {
          std::vector<size_t> del{rnd(static_cast<uint32_t>(who.messages().size()))};
          if (!who.messages()[del[0]].expunged) {
            REQUIRE(who.setFlags(del, FlagOp::Add, {kFlagDeleted, {}}));
            REQUIRE(who.expunge(del));
          }
        }
        break;
      default: break;
    }
    REQUIRE(who.sync(rnd(3) != 0));
    CHECK(who.recentCount() == counted(who));
  }
  REQUIRE((*a)->sync(true));
  REQUIRE((*b)->sync(true));
  CHECK((*a)->recentCount() == counted(**a));
  CHECK((*b)->recentCount() == counted(**b));
  CHECK((*a)->recentCount() + (*b)->recentCount() > 0);
}

}  // namespace
}  // namespace yubin::store
