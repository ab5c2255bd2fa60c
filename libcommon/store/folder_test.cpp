// Tests of the retrieval side of the store: CrlfCounter, uids, MboxUnquoter
// (whole and byte at a time), MaildirFolder (snapshot order, sizes from
// ,W= / cache / counting, markSeen, expunge, files renamed meanwhile) and
// MboxFolder (uids, un-quoting, expunge keeping appended mail, refusing a
// mailbox rewritten by someone else), plus the same conformance checks
// against every backend.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "base/fs.hpp"
#include "store/folder.hpp"
#include "store/maildir_folder.hpp"
#include "store/mbox.hpp"
#include "store/mbox_folder.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::store;
using yubin::store::test::listDir;
using yubin::store::test::TempDir;

namespace {

void writeFile(const std::string& path, const std::string& data) {
  REQUIRE(atomicWrite(path, data, 0600));
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string readMessage(Folder& f, size_t i, size_t chunk = 3) {
  auto r = f.open(i);
  REQUIRE(r);
  std::string out;
  for (;;) {
    auto n = (*r)->read(out, chunk);
    REQUIRE(n);
    if (*n == 0) break;
  }
  return out;
}

void makeMaildir(const TempDir& t) {
  for (const char* d : {"cur", "new", "tmp"}) REQUIRE(::mkdir((t / d).c_str(), 0700) == 0);
}

std::string mboxOf(const std::vector<std::pair<std::string, std::string>>& msgs) {
  std::string out;
  for (auto& [from, data] : msgs) out += "From " + from + " Thu Jan  1 00:00:00 1970\n" + data + "\n";
  return out;
}

}  // namespace

TEST_CASE("CrlfCounter counts bare LF twice, CRLF once, across pieces") {
  struct Case {
    std::string in;
    uint64_t want;
  };
  auto c = GENERATE(Case{"", 0}, Case{"a\n", 3}, Case{"a\r\n", 3}, Case{"\n\n", 4},
                    Case{"a\rb", 3}, Case{"x\r\n\ny", 6}, Case{"\r", 1});
  CHECK(crlfSize(c.in) == c.want);
  CrlfCounter bytes;
  for (char ch : c.in) bytes.feed(std::string_view(&ch, 1));
  CHECK(bytes.total() == c.want);
}

TEST_CASE("validUid and uidDigest") {
  CHECK(validUid("abc"));
  CHECK(validUid(std::string(70, 'x')));
  CHECK_FALSE(validUid(std::string(71, 'x')));
  CHECK_FALSE(validUid(""));
  CHECK_FALSE(validUid("a b"));
  CHECK_FALSE(validUid("a\x7f"));
  CHECK_FALSE(validUid("caf\xc3\xa9"));
  CHECK(uidDigest("x").size() == 32);
  CHECK(validUid(uidDigest("x")));
  CHECK(uidDigest("x") == uidDigest("x"));
  CHECK(uidDigest("x") != uidDigest("y"));
}

TEST_CASE("MboxUnquoter takes one '>' off >From lines, whole and byte at a time") {
  struct Case {
    std::string in, want;
  };
  auto c = GENERATE(Case{"a\n>From x\n", "a\nFrom x\n"}, Case{">>From x\n", ">From x\n"},
                    Case{">Fro\n", ">Fro\n"}, Case{"x>From y\n", "x>From y\n"},
                    Case{">", ">"}, Case{">>>", ">>>"}, Case{">From", ">From"},
                    Case{">From ", "From "}, Case{"\n>From \n>x\n", "\nFrom \n>x\n"},
                    Case{"From a\n", "From a\n"}, Case{">>From>\n", ">>From>\n"});
  std::string whole;
  MboxUnquoter u1;
  u1.feed(c.in, whole);
  u1.finish(whole);
  CHECK(whole == c.want);
  std::string bytes;
  MboxUnquoter u2;
  for (char ch : c.in) u2.feed(std::string_view(&ch, 1), bytes);
  u2.finish(bytes);
  CHECK(bytes == c.want);
}

TEST_CASE("MaildirFolder: snapshot order, sizes, uids, seen flags") {
  TempDir t;
  makeMaildir(t);
  writeFile(t / "new/1000.M2P1Q2.host,S=6", "b\nc\nd\n");      // 3 LFs -> 9 (from counting)
  writeFile(t / "cur/1000.M1P1Q1.host,S=4:2,S", "a\r\nb");     // already CRLF: 4
  writeFile(t / "new/1000.M10P1Q3.host,S=2,W=99", "x\n");      // W= wins
  writeFile(t / "cur/" + std::string(80, 'z') + ":2,", "q\n");  // long name -> digest uid
  writeFile(t / "new/.hidden", "skip");
  REQUIRE(::mkdir((t / "new/adir").c_str(), 0700) == 0);

  auto f = MaildirFolder::open(t.path());
  REQUIRE(f);
  const auto& m = (*f)->messages();
  REQUIRE(m.size() == 4);
  CHECK(m[0].uid == "1000.M1P1Q1.host");
  CHECK(m[0].size == 4);
  CHECK(m[0].seen);
  CHECK(m[1].uid == "1000.M2P1Q2.host");
  CHECK(m[1].size == 9);
  CHECK_FALSE(m[1].seen);
  CHECK(m[2].uid == "1000.M10P1Q3.host");
  CHECK(m[2].size == 99);
  CHECK(m[3].uid == uidDigest(std::string(80, 'z')));
  CHECK(readMessage(**f, 1) == "b\nc\nd\n");

  // The cache now holds the counted sizes; a second open uses it (we prove
  // it by editing the cache: the cached value is what is reported).
  std::string cache = slurp(t / kMaildirSizeCache);
  CHECK(cache.find("1000.M2P1Q2.host 6 9\n") != std::string::npos);
  writeFile(t / kMaildirSizeCache, "1000.M2P1Q2.host 6 12\ngarbage line\n1000.M1P1Q1.host x 1\n");
  auto g = MaildirFolder::open(t.path());
  REQUIRE(g);
  CHECK((*g)->messages()[1].size == 12);
  CHECK((*g)->messages()[0].size == 4);
  // A cache entry for another raw size is ignored.
  writeFile(t / kMaildirSizeCache, "1000.M2P1Q2.host 7 12\n");
  auto h = MaildirFolder::open(t.path());
  REQUIRE(h);
  CHECK((*h)->messages()[1].size == 9);
}

TEST_CASE("MaildirFolder: markSeen moves to cur with S; expunge removes; renames are followed") {
  TempDir t;
  makeMaildir(t);
  writeFile(t / "new/1.M1P1Q1.h,S=2", "a\n");
  writeFile(t / "cur/2.M1P1Q1.h,S=2:2,F", "b\n");
  writeFile(t / "new/3.M1P1Q1.h,S=2", "c\n");
  auto f = MaildirFolder::open(t.path());
  REQUIRE(f);
  REQUIRE((*f)->markSeen(0));
  REQUIRE((*f)->markSeen(1));
  CHECK(listDir(t / "cur") ==
        std::vector<std::string>{"1.M1P1Q1.h,S=2:2,S", "2.M1P1Q1.h,S=2:2,FS"});
  // Another process (an IMAP client) renames message 3 meanwhile.
  REQUIRE(::rename((t / "new/3.M1P1Q1.h,S=2").c_str(), (t / "cur/3.M1P1Q1.h,S=2:2,T").c_str()) ==
          0);
  CHECK(readMessage(**f, 2) == "c\n");
  REQUIRE((*f)->markSeen(2));
  CHECK((*f)->fileName(2) == "cur/3.M1P1Q1.h,S=2:2,ST");
  // One already deleted by someone else: not an error.
  REQUIRE(::unlink((t / "cur/2.M1P1Q1.h,S=2:2,FS").c_str()) == 0);
  REQUIRE((*f)->expunge({1, 2}));
  CHECK(listDir(t / "cur") == std::vector<std::string>{"1.M1P1Q1.h,S=2:2,S"});
  CHECK_FALSE((*f)->open(7));
  CHECK_FALSE((*f)->expunge({7}));
}

TEST_CASE("MaildirFolder: a message removed by another client after the snapshot") {
  TempDir t;
  makeMaildir(t);
  writeFile(t / "new/1.M1P1Q1.h,S=2", "a\n");
  writeFile(t / "new/2.M1P1Q1.h,S=2", "b\n");
  writeFile(t / "new/3.M1P1Q1.h,S=2", "c\n");
  auto f = MaildirFolder::open(t.path());
  REQUIRE(f);
  REQUIRE((*f)->messages().size() == 3);
  // Another POP3 or IMAP session expunges message 2; an IMAP client flags
  // the other two meanwhile (one rescan finds both new names).
  REQUIRE(::unlink((t / "new/2.M1P1Q1.h,S=2").c_str()) == 0);
  REQUIRE(::rename((t / "new/1.M1P1Q1.h,S=2").c_str(), (t / "cur/1.M1P1Q1.h,S=2:2,F").c_str()) ==
          0);
  REQUIRE(::rename((t / "new/3.M1P1Q1.h,S=2").c_str(), (t / "cur/3.M1P1Q1.h,S=2:2,R").c_str()) ==
          0);
  auto gone = (*f)->open(1);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().errnum == ENOENT);
  CHECK(gone.error().message.find("2.M1P1Q1.h is gone") != std::string::npos);
  CHECK((*f)->fileName(0) == "cur/1.M1P1Q1.h,S=2:2,F");
  CHECK((*f)->fileName(2) == "cur/3.M1P1Q1.h,S=2:2,R");
  auto seen = (*f)->markSeen(1);
  REQUIRE_FALSE(seen);
  CHECK(seen.error().errnum == ENOENT);
  // The snapshot is unchanged; the others still read and mark.
  CHECK((*f)->messages().size() == 3);
  CHECK(readMessage(**f, 0) == "a\n");
  CHECK(readMessage(**f, 2) == "c\n");
  REQUIRE((*f)->markSeen(2));
  CHECK(listDir(t / "cur") ==
        std::vector<std::string>{"1.M1P1Q1.h,S=2:2,F", "3.M1P1Q1.h,S=2:2,RS"});
  // Expunging it with another is fine: the other goes, nothing else.
  REQUIRE((*f)->expunge({0, 1}));
  CHECK(listDir(t / "cur") == std::vector<std::string>{"3.M1P1Q1.h,S=2:2,RS"});
  CHECK(listDir(t / "new").empty());
}

TEST_CASE("MaildirFolder: a corrupt size cache is ignored and rewritten") {
  TempDir t;
  makeMaildir(t);
  writeFile(t / "new/1.M1P1Q1.h,S=4", "a\nb\n");     // 6 with CRLF
  writeFile(t / "new/2.M1P1Q1.h,S=3", "cd\n");        // 4
  std::string junk = GENERATE(as<std::string>{},
                              std::string("\0\xff\x01garbage\n\n\n", 13),
                              "1.M1P1Q1.h 4 3\n",                    // CRLF size below the raw one
                              "1.M1P1Q1.h 4 99999999999999999999\n",  // overflows
                              "1.M1P1Q1.h 4\n2.M1P1Q1.h\n",          // fields missing
                              "1.M1P1Q1.h  4 6 7\n",                  // extra field
                              "1.M1P1Q1.h -4 -6\n", "1.M1P1Q1.h 4 6");  // last: no newline, fine
  INFO(junk);
  writeFile(t / kMaildirSizeCache, junk);
  auto f = MaildirFolder::open(t.path());
  REQUIRE(f);
  REQUIRE((*f)->messages().size() == 2);
  CHECK((*f)->messages()[0].size == 6);
  CHECK((*f)->messages()[1].size == 4);
  CHECK(slurp(t / kMaildirSizeCache) == "1.M1P1Q1.h 4 6\n2.M1P1Q1.h 3 4\n");
  // A cache that is not a file: counted every time, nothing breaks.
  REQUIRE(::unlink((t / kMaildirSizeCache).c_str()) == 0);
  REQUIRE(::mkdir((t / kMaildirSizeCache).c_str(), 0700) == 0);
  auto g = MaildirFolder::open(t.path());
  REQUIRE(g);
  CHECK((*g)->messages()[0].size == 6);
  CHECK((*g)->messages()[1].size == 4);
  CHECK(listDir(t.path()) ==
        std::vector<std::string>{"cur", "new", "tmp", kMaildirSizeCache});  // no temp file left
}

TEST_CASE("MaildirFolder: a missing folder is empty") {
  TempDir t;
  auto f = MaildirFolder::open(t / "nothing");
  REQUIRE(f);
  CHECK((*f)->messages().empty());
  CHECK((*f)->expunge({}));
}

TEST_CASE("MboxFolder: uids, sizes, un-quoting") {
  TempDir t;
  std::string path = t / "box";
  std::string m1 = "Subject: one\n\nbody\n>From quoted\n";
  std::string m2 = "X-UIDL: custom-1\nSubject: two\n\n.dot\n";
  std::string m3 = "Subject: one\n\nbody\n>From quoted\n";  // same as m1, same From_
  writeFile(path, mboxOf({{"a@x", m1}, {"b@x", m2}, {"a@x", m3}}));
  auto f = MboxFolder::open(path);
  REQUIRE(f);
  const auto& m = (*f)->messages();
  REQUIRE(m.size() == 3);
  CHECK(m[1].uid == "custom-1");
  CHECK(m[0].uid.size() == 32);
  CHECK(m[2].uid == m[0].uid + "-2");
  CHECK(readMessage(**f, 0) == "Subject: one\n\nbody\nFrom quoted\n");
  CHECK(m[0].size == crlfSize("Subject: one\n\nbody\nFrom quoted\n"));
  CHECK(readMessage(**f, 1, 1) == m2);
  // The same uids in a later session.
  auto g = MboxFolder::open(path);
  REQUIRE(g);
  CHECK((*g)->messages()[0].uid == m[0].uid);
  CHECK((*g)->messages()[2].uid == m[2].uid);
}

TEST_CASE("MboxFolder: expunge rewrites, keeps what mdad appended meanwhile") {
  TempDir t;
  std::string path = t / "box";
  std::string before = mboxOf({{"a@x", "1\n"}, {"b@x", "2\n>From q\n"}, {"c@x", "3\n"}});
  writeFile(path, before);
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  auto f = MboxFolder::open(path);
  REQUIRE(f);
  REQUIRE((*f)->messages().size() == 3);
  // Delivered during the session.
  REQUIRE(appendToMbox(path, "d@x", 0, "", MemorySource("4\nFrom x\n")));
  REQUIRE((*f)->expunge({0, 2}));
  CHECK(slurp(path) == mboxOf({{"b@x", "2\n>From q\n"}, {"d@x", "4\n>From x\n"}}));
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(listDir(t.path()) == std::vector<std::string>{"box"});  // no temp file, no lock left
}

TEST_CASE("MboxFolder: expunge refuses a mailbox another program changed") {
  TempDir t;
  std::string path = t / "box";
  std::string before = mboxOf({{"a@x", "1\n"}, {"b@x", "2\n"}});
  writeFile(path, before);
  SECTION("bytes changed in place") {
    auto f = MboxFolder::open(path);
    REQUIRE(f);
    int fd = ::open(path.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, "X", 1, 0) == 1);
    ::close(fd);
    auto st = (*f)->expunge({0});
    REQUIRE_FALSE(st);
    CHECK(st.error().message.find("changed") != std::string::npos);
    std::string want = before;
    want[0] = 'X';
    CHECK(slurp(path) == want);
  }
  SECTION("file replaced") {
    auto f = MboxFolder::open(path);
    REQUIRE(f);
    writeFile(path, before);  // atomicWrite: a new inode
    auto st = (*f)->expunge({0});
    REQUIRE_FALSE(st);
    CHECK(st.error().message.find("replaced") != std::string::npos);
  }
  SECTION("truncated") {
    auto f = MboxFolder::open(path);
    REQUIRE(f);
    REQUIRE(::truncate(path.c_str(), 5) == 0);
    REQUIRE_FALSE((*f)->expunge({0}));
  }
}

TEST_CASE("MboxFolder: an expunge that fails (full disk, fsync, rename) leaves the mbox as it was") {
  TempDir t;
  std::string path = t / "box";
  std::string before = mboxOf({{"a@x", "1\n"}, {"b@x", std::string(3000, 'x') + "\n"}, {"c@x", "3\n"}});
  writeFile(path, before);
  struct Case {
    const char* name;
    long long writeBudget;
    int failFsyncAt;
    int renameErr;
    bool failCreate;
    int want;
  };
  auto c = GENERATE(Case{"disk full mid-copy", 100, 0, 0, false, ENOSPC},
                    Case{"disk full at once", 0, 0, 0, false, ENOSPC},
                    Case{"fsync fails", -1, 1, 0, false, EIO},
                    Case{"rename fails", -1, 0, EIO, false, EIO},
                    Case{"temp file cannot be made", -1, 0, 0, true, ENOSPC});
  INFO(c.name);
  test::FaultyFs fs;
  MboxLockSettings lock;
  lock.dotLock = DotLock::Off;  // the temp file is the only thing written
  auto f = MboxFolder::open(path, lock, fs);
  REQUIRE(f);
  fs.writeBudget = c.writeBudget;
  if (c.failFsyncAt) fs.failFsyncAt = fs.fsyncCalls + c.failFsyncAt;
  fs.renameErr = c.renameErr;
  if (c.failCreate) {
    fs.openFailSuffix = ".yubin-" + std::to_string(::getpid());
    fs.openErr = ENOSPC;
  }
  auto st = (*f)->expunge({0, 2});
  REQUIRE_FALSE(st);
  CHECK(st.error().errnum == c.want);
  CHECK(slurp(path) == before);
  CHECK(listDir(t.path()) == std::vector<std::string>{"box"});  // no temp file left
  // The locks were released and the snapshot still holds: once there is
  // room again the same session expunges.
  fs.writeBudget = -1;
  fs.failFsyncAt = 0;
  fs.renameErr = 0;
  fs.openFailSuffix.clear();
  REQUIRE((*f)->expunge({0, 2}));
  CHECK(slurp(path) == mboxOf({{"b@x", std::string(3000, 'x') + "\n"}}));
}

TEST_CASE("MboxFolder: missing file is empty; lock held elsewhere times out") {
  TempDir t;
  auto f = MboxFolder::open(t / "none");
  REQUIRE(f);
  CHECK((*f)->messages().empty());
  CHECK((*f)->expunge({}));
  std::string path = t / "box";
  writeFile(path, mboxOf({{"a@x", "1\n"}}));
  writeFile(path + ".lock", std::to_string(::getpid()) + " " + "otherhost\n");
  MboxLockSettings lock;
  lock.timeout = std::chrono::milliseconds(50);
  CHECK_FALSE(MboxFolder::open(path, lock));
}

TEST_CASE("Folder conformance: every backend reads back, marks and expunges") {
  TempDir t;
  std::vector<std::string> data = {"Subject: a\n\none\n", "Subject: b\n\ntwo\nthree\n",
                                   "Subject: c\n\nfour\n"};
  std::unique_ptr<Folder> f;
  std::string kind = GENERATE(as<std::string>{}, "maildir", "mbox", "memory");
  MemoryFolder* mem = nullptr;
  if (kind == "maildir") {
    makeMaildir(t);
    for (size_t i = 0; i < data.size(); ++i)
      writeFile(t / ("new/" + std::to_string(100 + i) + ".M1P1Q1.h"), data[i]);
    f = std::move(MaildirFolder::open(t.path()).value());
  } else if (kind == "mbox") {
    writeFile(t / "box", mboxOf({{"a@x", data[0]}, {"b@x", data[1]}, {"c@x", data[2]}}));
    f = std::move(MboxFolder::open(t / "box").value());
  } else {
    auto m = std::make_unique<MemoryFolder>(std::vector<MemoryFolder::Item>{
        {"u1", data[0]}, {"u2", data[1]}, {"u3", data[2]}});
    mem = m.get();
    f = std::move(m);
  }
  INFO(kind);
  REQUIRE(f->messages().size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(readMessage(*f, i) == data[i]);
    CHECK(f->messages()[i].size == crlfSize(data[i]));
    CHECK(validUid(f->messages()[i].uid));
  }
  CHECK(f->messages()[0].uid != f->messages()[1].uid);
  REQUIRE(f->markSeen(1));
  CHECK(f->messages()[1].seen);
  REQUIRE(f->expunge({1}));
  if (kind == "maildir") {
    auto g = MaildirFolder::open(t.path());
    REQUIRE((*g)->messages().size() == 2);
    CHECK(readMessage(**g, 1) == data[2]);
  } else if (kind == "mbox") {
    auto g = MboxFolder::open(t / "box");
    REQUIRE((*g)->messages().size() == 2);
    CHECK(readMessage(**g, 1) == data[2]);
  } else {
    CHECK(mem->remaining() == std::vector<std::string>{data[0], data[2]});
  }
}

TEST_CASE("fileReader: a size hint ends a read at the short read; a wrong hint only costs reads") {
  TempDir t;
  const std::string data = "Subject: x\n\n.line\nlast line without end";
  writeFile(t / "m", data);
  const int64_t size = static_cast<int64_t>(data.size());
  auto hint = GENERATE_COPY(int64_t{-1}, int64_t{0}, int64_t{3}, size - 1, size, size + 1,
                            size * 5);
  auto chunk = GENERATE(size_t{1}, size_t{7}, size_t{64 * 1024});
  INFO("hint " << hint << " chunk " << chunk);
  UniqueFd fd(::open((t / "m").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  auto r = fileReader(std::move(fd), hint);
  std::string out = "kept:";
  for (;;) {
    auto n = r->read(out, chunk);
    REQUIRE(n);
    REQUIRE(*n <= chunk);
    if (*n == 0) break;
  }
  CHECK(out == "kept:" + data);
  CHECK(*r->read(out, chunk) == 0);
  CHECK(out == "kept:" + data);
}

TEST_CASE("fileReader: with the right hint the short read is the end (no read to find it)") {
  TempDir t;
  writeFile(t / "m", "0123456789");
  for (int64_t hint : {int64_t{10}, int64_t{-1}}) {
    INFO("hint " << hint);
    UniqueFd fd(::open((t / "m").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd);
    auto r = fileReader(std::move(fd), hint);
    std::string out;
    auto n = r->read(out, 64 * 1024);
    REQUIRE(n);
    CHECK(*n == 10);
    // The file grows behind the reader's back (it never does in a Maildir):
    // with the hint the reader already knew the end; without, it reads on.
    {
      std::ofstream app(t / "m", std::ios::app | std::ios::binary);
      app << "more";
    }
    auto m = r->read(out, 64 * 1024);
    REQUIRE(m);
    CHECK(*m == (hint >= 0 ? 0u : 4u));
    writeFile(t / "m", "0123456789");
  }
}

TEST_CASE("MaildirFolder: a file whose S= understates or overstates its size reads whole") {
  TempDir t;
  makeMaildir(t);
  const std::string big(100000, 'b');
  writeFile(t / "new/1.M1P1Q1.h,S=5", "0123456789\n");
  writeFile(t / "new/2.M1P1Q1.h,S=99", "short\n");
  writeFile(t / "new/3.M1P1Q1.h,S=100000", big);
  auto f = MaildirFolder::open(t.path());
  REQUIRE(f);
  REQUIRE((*f)->messages().size() == 3);
  for (size_t chunk : {size_t{3}, size_t{64 * 1024}}) {
    CHECK(readMessage(**f, 0, chunk) == "0123456789\n");
    CHECK(readMessage(**f, 1, chunk) == "short\n");
    CHECK(readMessage(**f, 2, chunk) == big);
  }
}
