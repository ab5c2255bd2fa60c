// Unit tests for the Mailbox (Maildir) read side, quota usage and the
// mbox <-> Maildir converters, round-tripping a corpus of tricky
// messages both ways.
#include "store/convert.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "base/fs.hpp"
#include "store/mailbox.hpp"
#include "store/quota.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::store;
using yubin::store::test::FaultyFs;
using yubin::store::test::listDir;
using yubin::store::test::TempDir;

namespace {

std::string slurp(const std::string& path) {
  auto r = readFile(path, 1u << 30);
  REQUIRE(r.ok());
  return *r;
}

std::string readId(Mailbox& box, std::string_view id) {
  auto src = box.open(id);
  REQUIRE(src.ok());
  auto r = readAll(**src);
  REQUIRE(r.ok());
  return *r;
}

// A message as stored in a Maildir, with its flags and date.
struct Msg {
  std::string name;
  std::string maildirBytes;  // without Status/X-Status
  bool inCur;
  std::string flags;
  int64_t date;
};

std::vector<Msg> corpus() {
  std::string line100k(100 * 1024, 'w');
  return {
      {"plain new", "Return-Path: <a@x.example>\nSubject: plain\n\nhello\n", false, "", 1700000000},
      {"From lines",
       "Return-Path: <b@x.example>\nSubject: from\n\nFrom here\n>From there\n"
       ">>>From deep\nFrom\nFromage\n",
       true, "S", 1600000000},
      {"CRLF", "Return-Path: <c@x.example>\r\nSubject: crlf\r\n\r\nbody\r\nFrom x\r\n\r\n", true,
       "FRS", 1650000000},
      {"8-bit", std::string("Subject: \xe9t\xe9\n\n\xff\xfe\x00\x01\x80 binary\n", 27), true, "DT",
       1500000000},
      {"100 KB line", "Return-Path: <>\nSubject: long\n\n" + line100k + "\n", true, "", 1700000001},
      {"header only", "Subject: only a header\n", true, "R", 1700000002},
      {"empty", "", false, "", 1700000003},
      {"blank header", "\nbody without header\n", true, "F", 1700000004},
  };
}

}  // namespace

TEST_CASE("natural order compares digit runs as numbers") {
  CHECK(naturalLess("1.M5P1Q9.h", "1.M5P1Q10.h"));
  CHECK_FALSE(naturalLess("1.M5P1Q10.h", "1.M5P1Q9.h"));
  CHECK(naturalLess("99.x", "100.x"));
  CHECK(naturalLess("a", "b"));
  CHECK(naturalLess("a", "ab"));
  CHECK_FALSE(naturalLess("a", "a"));
  CHECK(naturalLess("x1", "x01"));
}

TEST_CASE("Maildir mailbox lists, reads, flags and removes") {
  TempDir t;
  MaildirNameGenerator names;
  MaildirDeliverer d(realFs(), names);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto r = d.deliver(t / "M", "", "", MemorySource("m" + std::to_string(i) + "\r\n"));
    REQUIRE(r.ok());
    ids.emplace_back(maildirId(r->name));
    CHECK(ids.back() + ",S=3" == r->name);
  }
  // A file without S= and an odd dot file.
  REQUIRE(atomicWrite(t / "M/cur/9999999999.legacy:2,S", "legacy!").ok());
  REQUIRE(atomicWrite(t / "M/cur/.hidden", "x").ok());
  MaildirMailbox box(t / "M");
  auto l = box.list();
  REQUIRE(l.ok());
  REQUIRE(l->size() == 4);
  for (int i = 0; i < 3; ++i) {
    CHECK((*l)[i].id == ids[i]);
    CHECK((*l)[i].isNew);
    CHECK((*l)[i].size == 3);
    CHECK(readId(box, ids[i]) == "m" + std::to_string(i) + "\n");
  }
  CHECK((*l)[3].id == "9999999999.legacy");
  CHECK((*l)[3].size == 7);
  CHECK((*l)[3].flags == "S");

  REQUIRE(box.setFlags(ids[0], "SF").ok());
  CHECK(listDir(t / "M/cur").size() == 3);  // legacy, .hidden, moved one
  auto l2 = box.list();
  REQUIRE(l2.ok());
  CHECK_FALSE((*l2)[0].isNew);
  CHECK((*l2)[0].flags == "FS");
  CHECK((*l2)[0].fileName == "cur/" + ids[0] + ",S=3:2,FS");
  CHECK(readId(box, ids[0]) == "m0\n");

  // Another process renamed it behind our back: found again by rescan.
  MaildirMailbox other(t / "M");
  REQUIRE(other.setFlags(ids[0], "S").ok());
  CHECK(readId(box, ids[0]) == "m0\n");
  REQUIRE(box.setFlags(ids[0], "").ok());
  auto cur = listDir(t / "M/cur");
  CHECK(std::find(cur.begin(), cur.end(), ids[0] + ",S=3:2,") != cur.end());

  REQUIRE(box.remove(ids[1]).ok());
  auto gone = box.remove(ids[1]);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().errnum == ENOENT);
  CHECK(box.list()->size() == 3);
  CHECK(box.open("../../etc/passwd").error().errnum == EINVAL);
  CHECK(box.setFlags(".hidden", "S").error().errnum == EINVAL);

  FaultyFs broken;
  broken.renameErr = EIO;
  MaildirMailbox failing(t / "M", broken);
  CHECK(failing.setFlags(ids[2], "S").error().errnum == EIO);
  CHECK(box.list()->at(1).isNew);  // unchanged
}

TEST_CASE("quota usage and arithmetic") {
  TempDir t;
  CHECK(maildirUsage(t / "none")->messages == 0);
  CHECK(mboxUsage(t / "none")->bytes == 0);
  MaildirNameGenerator names;
  MaildirDeliverer d(realFs(), names);
  REQUIRE(d.deliver(t / "M", "", "", MemorySource("12345")).ok());
  REQUIRE(d.deliver(t / "M", "Sent", "", MemorySource("1234567890")).ok());
  REQUIRE(d.deliver(t / "M", "A/B", "", MemorySource("x")).ok());
  REQUIRE(atomicWrite(t / "M/cur/1.nosize:2,S", "abc").ok());
  REQUIRE(atomicWrite(t / "M/tmp/ignored", "1234567").ok());
  REQUIRE(atomicWrite(t / "M/cur/2.claims,S=1000", "tiny").ok());  // S= wins over stat
  auto u = maildirUsage(t / "M");
  REQUIRE(u.ok());
  CHECK(u->messages == 5);
  CHECK(u->bytes == 5 + 10 + 1 + 3 + 1000);

  REQUIRE(appendToMbox(t / "mbox", "a", 0, "", MemorySource("one\n")).ok());
  REQUIRE(appendToMbox(t / "mbox", "a", 0, "", MemorySource("From two\n")).ok());
  auto mu = mboxUsage(t / "mbox");
  REQUIRE(mu.ok());
  CHECK(mu->messages == 2);
  CHECK(mu->bytes == slurp(t / "mbox").size());

  struct Case {
    Usage u;
    uint64_t qb, qm, in;
    bool want;
  };
  const uint64_t max = UINT64_MAX;
  auto c = GENERATE_COPY(values<Case>({
      {{100, 1}, 0, 0, 1000000, false},
      {{100, 1}, 200, 0, 100, false},  // exactly at the limit
      {{100, 1}, 200, 0, 101, true},
      {{100, 1}, 0, 2, 5, false},
      {{100, 2}, 0, 2, 5, true},
      {{max - 1, 0}, max, 0, 5, true},  // no overflow
      {{0, max}, 0, max, 1, true},
  }));
  CHECK(wouldExceed(c.u, c.qb, c.qm, c.in) == c.want);
}

TEST_CASE("Status headers strip, insert and map to flags") {
  std::string st, xs;
  CHECK(stripStatusHeaders("A: 1\nStatus: RO\nX-Status: AF\n folded\nB: 2\n\nStatus: body\n", &st,
                           &xs) == "A: 1\nB: 2\n\nStatus: body\n");
  CHECK(st == "RO");
  CHECK(xs == "AF");
  CHECK(insertStatusHeaders("A: 1\r\n\r\nbody", "RO", "") == "A: 1\r\nStatus: RO\r\n\r\nbody");
  CHECK(insertStatusHeaders("A: 1", "O", "F") == "A: 1\nStatus: O\nX-Status: F\n");
  CHECK(insertStatusHeaders("\nbody\n", "O", "") == "Status: O\n\nbody\n");
  CHECK(insertStatusHeaders("x\n", "", "") == "x\n");

  struct Case {
    std::string status, xstatus, flags;
    bool cur;
  };
  auto c = GENERATE(values<Case>({
      {"", "", "", false},
      {"O", "", "", true},
      {"RO", "", "S", true},
      {"RO", "AFTD", "DFRST", true},
      {"O", "F", "F", true},
  }));
  auto p = maildirFlagsFromMbox(c.status, c.xstatus);
  CHECK(p.flags == c.flags);
  CHECK(p.intoCur == c.cur);
  auto back = mboxStatusFromMaildir(p.flags, p.intoCur);
  CHECK(back.first == c.status);
  CHECK(back.second == c.xstatus);
  // Unknown letters and R without O.
  CHECK(maildirFlagsFromMbox("R", "Z").intoCur);
  CHECK(mboxStatusFromMaildir("PSa", true) == std::pair<std::string, std::string>{"RO", ""});
  CHECK(returnPathOf("Return-Path: <a@b>\nReturn-Path: <c@d>\n\n") == "a@b");
  CHECK(returnPathOf("Return-Path: <>\n\n").empty());
  CHECK(returnPathOf("Subject: x\n\nReturn-Path: <a@b>\n").empty());
}

TEST_CASE("Maildir -> mbox -> Maildir keeps bytes, flags, dates and order") {
  TempDir t;
  MaildirNameGenerator names;
  MaildirDeliverer d(realFs(), names);
  auto msgs = corpus();
  msgs.push_back({"no trailing newline", "Subject: cut\n\nno newline at the end", true, "S", 1});
  for (const Msg& m : msgs) {
    MaildirDeliverOptions o;
    o.lineEndings = LineEndings::Keep;
    o.intoCur = m.inCur;
    o.flags = m.flags;
    o.mtime = m.date;
    REQUIRE(d.deliver(t / "A", "Archive/2023", "", MemorySource(m.maildirBytes), o).ok());
  }
  auto toMbox = maildirToMbox(t / "A", "Archive/2023", t / "mbox");
  REQUIRE(toMbox.ok());
  CHECK(toMbox->messages == msgs.size());
  std::string mbox = slurp(t / "mbox");
  CHECK(mbox.find("\n>From here\n>>From there\n>>>>From deep\nFrom\nFromage\n") !=
        std::string::npos);
  CHECK(mbox.find("Subject: crlf\r\nStatus: RO\r\nX-Status: AF\r\n\r\n") != std::string::npos);
  CHECK(mbox.substr(0, 45) == "From a@x.example Tue Nov 14 22:13:20 2023\nRet");

  auto back = mboxToMaildir(t / "mbox", t / "B", "", names);
  REQUIRE(back.ok());
  CHECK(back->messages == msgs.size());
  MaildirMailbox a(*maildirFolderPath(t / "A", "Archive/2023")), b(t / "B");
  auto la = a.list(), lb = b.list();
  REQUIRE(la.ok());
  REQUIRE(lb.ok());
  REQUIRE(la->size() == msgs.size());
  REQUIRE(lb->size() == msgs.size());
  for (size_t i = 0; i < msgs.size(); ++i) {
    INFO(msgs[i].name);
    const auto& ea = (*la)[i];
    const auto& eb = (*lb)[i];
    std::string want = msgs[i].maildirBytes;
    if (!want.empty() && want.back() != '\n') want += '\n';  // the one documented change
    CHECK(readId(a, ea.id) == msgs[i].maildirBytes);
    CHECK(readId(b, eb.id) == want);
    CHECK(eb.flags == maildirNormaliseFlags(msgs[i].flags));
    CHECK(eb.isNew == !msgs[i].inCur);
    CHECK(eb.mtime == msgs[i].date);
    CHECK(eb.size == want.size());
  }
}

TEST_CASE("canonical mbox -> Maildir -> mbox is byte-exact") {
  TempDir t;
  auto msgs = corpus();
  {
    auto w = MboxWriter::open(t / "orig");
    REQUIRE(w.ok());
    for (const Msg& m : msgs) {
      auto [status, xstatus] = mboxStatusFromMaildir(m.flags, m.inCur);
      std::string data = insertStatusHeaders(m.maildirBytes, status, xstatus);
      MboxAppendOptions o;
      o.lineEndings = LineEndings::Keep;
      REQUIRE(w->append(returnPathOf(data), m.date, "", MemorySource(data), o).ok());
    }
    REQUIRE(w->close().ok());
  }
  // Dates out of order in the mbox: order must come from the mbox, not mtime.
  MaildirNameGenerator names;
  auto r = mboxToMaildir(t / "orig", t / "M", "Imported", names);
  REQUIRE(r.ok());
  CHECK(r->messages == msgs.size());
  MaildirMailbox box(t / "M/.Imported");
  auto l = box.list();
  REQUIRE(l.ok());
  REQUIRE(l->size() == msgs.size());
  for (size_t i = 0; i < msgs.size(); ++i) {
    INFO(msgs[i].name);
    CHECK(readId(box, (*l)[i].id) == msgs[i].maildirBytes);
    CHECK((*l)[i].mtime == msgs[i].date);
    CHECK((*l)[i].flags == maildirNormaliseFlags(msgs[i].flags));
    CHECK((*l)[i].isNew == !msgs[i].inCur);
  }
  auto back = maildirToMbox(t / "M", "Imported", t / "copy");
  REQUIRE(back.ok());
  CHECK(slurp(t / "copy") == slurp(t / "orig"));
  CHECK(listDir(t.path()) == std::vector<std::string>{"M", "copy", "orig"});
}

TEST_CASE("converters tolerate a hostile mbox and report failures") {
  TempDir t;
  REQUIRE(atomicWrite(t / "junk", std::string("no From_ line\n\0\xff\n", 17)).ok());
  MaildirNameGenerator names;
  auto r = mboxToMaildir(t / "junk", t / "M", "", names);
  REQUIRE(r.ok());
  CHECK(r->messages == 1);
  CHECK(slurp(t / "M/new/" + listDir(t / "M/new").at(0)) ==
        std::string("no From_ line\n\0\xff\n", 17));

  FaultyFs full;
  full.writeBudget = 10;
  auto bad = maildirToMbox(t / "M", "", t / "out", {}, full);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().errnum == ENOSPC);
  CHECK(slurp(t / "out").empty());
  CHECK_FALSE(mboxToMaildir(t / "missing", t / "M", "", names).ok());
}
