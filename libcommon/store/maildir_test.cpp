// Unit tests for Maildir names, folders and delivery, including injected
// failures (nothing may be left in tmp/ or new/).
#include "store/maildir.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "base/fs.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::store;
using yubin::store::test::FaultyFs;
using yubin::store::test::listDir;
using yubin::store::test::TempDir;

namespace {

MaildirNameGenerator fixedGenerator(int64_t sec = 1700000000, uint32_t usec = 42) {
  return MaildirNameGenerator(
      [=] {
        return MaildirNameGenerator::Time{sec, usec};
      },
      777, std::string("mx.example"));
}

std::string slurp(const std::string& path) {
  auto r = readFile(path);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("maildir unique names are built from clock, pid, counter and host") {
  struct Case {
    MaildirNameParts parts;
    uint64_t size;
    std::string want;
  };
  auto c = GENERATE(values<Case>({
      {{1700000000, 5, 123, 0, "host"}, 10, "1700000000.M5P123Q0.host,S=10"},
      {{1, 999999, 1, 18, "a/b:c,d"}, 0, "1.M999999P1Q18.a\\057b\\072c\\054d,S=0"},
      {{0, 0, 0, 0, ""}, 7, "0.M0P0Q0.,S=7"},
  }));
  CHECK(maildirUniqueName(c.parts, c.size) == c.want);
  CHECK(maildirSizeFromName(c.want) == c.size);
  CHECK(maildirBase(c.want + ":2,S") == c.want);
}

TEST_CASE("name generator counts per call and uses the injected clock") {
  uint32_t usec = 1;
  MaildirNameGenerator g(
      [&] {
        return MaildirNameGenerator::Time{100, usec++};
      },
      9, std::string("h:1"));
  CHECK(g.next() == "100.M1P9Q0.h\\0721");
  CHECK(g.next() == "100.M2P9Q1.h\\0721");
}

TEST_CASE("S= and info parsing") {
  CHECK(maildirSizeFromName("1.M2P3Q4.h,S=1234,W=1300:2,RS") == 1234u);
  CHECK(maildirSizeFromName("1.M2P3Q4.h,W=1300,S=99") == 99u);
  CHECK_FALSE(maildirSizeFromName("1.M2P3Q4.h"));
  CHECK_FALSE(maildirSizeFromName("1.M2P3Q4.h,S="));
  CHECK_FALSE(maildirSizeFromName("1.M2P3Q4.h,S=12x"));
  CHECK_FALSE(maildirSizeFromName("1.h:2,S=5"));  // S= inside the info is not a size
  CHECK(maildirNameField("1.M2P3Q4.h,S=1234,W=1300:2,RS", 'W') == 1300u);
  CHECK_FALSE(maildirNameField("1.M2P3Q4.h,S=1234:2,W=5", 'W'));
  CHECK_FALSE(maildirNameField("1.M2P3Q4.h,SW=5", 'W'));
  CHECK(maildirFlags("x:2,FRS") == "FRS");
  CHECK(maildirFlags("x:1,FRS").empty());
  CHECK(maildirFlags("x").empty());
  CHECK(maildirNormaliseFlags("SRFSa,") == "FRSa");
}

TEST_CASE("folder paths follow Maildir++ and reject bad names") {
  CHECK(*maildirFolderPath("/m", "") == "/m");
  CHECK(*maildirFolderPath("/m", "inbox") == "/m");
  CHECK(*maildirFolderPath("/m", "Sent") == "/m/.Sent");
  CHECK(*maildirFolderPath("/m", "Folder/Sub") == "/m/.Folder.Sub");
  CHECK(*maildirFolderPath("/m", "Folder.Sub", '.') == "/m/.Folder.Sub");
  for (const char* bad : {"..", "a/../b", "a.b", "a//b", "/a", "a/", "x\ny", "."}) {
    INFO(bad);
    auto r = maildirFolderPath("/m", bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().errnum == EINVAL);
  }
}

TEST_CASE("deliver creates the Maildir and reads back byte for byte") {
  TempDir t;
  auto names = fixedGenerator();
  MaildirDeliverer d(realFs(), names);
  std::string body("Subject: hi\r\n\r\nline1\r\nbare\rcr\nFrom x\n\xff\x00\x80 end", 44);
  std::string prefix = "Return-Path: <a@b.example>\r\nDelivered-To: u@example\r\n";
  auto r = d.deliver(t / "Maildir", "", prefix, MemorySource(body));
  REQUIRE(r.ok());
  std::string want = "Return-Path: <a@b.example>\nDelivered-To: u@example\n" +
                     std::string("Subject: hi\n\nline1\nbare\rcr\nFrom x\n\xff\x00\x80 end", 41);
  CHECK(slurp(r->path) == want);
  CHECK(r->size == want.size());
  CHECK(r->name == "1700000000.M42P777Q0.mx.example,S=" + std::to_string(want.size()));
  CHECK(r->path == t / "Maildir/new/" + r->name);
  CHECK(listDir(t / "Maildir") == std::vector<std::string>{"cur", "new", "tmp"});
  CHECK(listDir(t / "Maildir/tmp").empty());
  struct stat st;
  REQUIRE(stat((t / "Maildir/new").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(stat(r->path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0077) == 0);
}

TEST_CASE("deliver into a subfolder creates it with its marker") {
  TempDir t;
  auto names = fixedGenerator();
  MaildirDeliverer d(realFs(), names);
  auto r = d.deliver(t / "M", "Folder/Sub", "", MemorySource("x\n"));
  REQUIRE(r.ok());
  CHECK(listDir(t / "M") == std::vector<std::string>{".Folder.Sub", "cur", "new", "tmp"});
  CHECK(listDir(t / "M/.Folder.Sub") ==
        std::vector<std::string>{"cur", "maildirfolder", "new", "tmp"});
  CHECK(slurp(r->path) == "x\n");
  CHECK_FALSE(d.deliver(t / "M", "../etc", "", MemorySource("x\n")).ok());
}

TEST_CASE("Keep line endings, into cur with flags and mtime") {
  TempDir t;
  auto names = fixedGenerator();
  MaildirDeliverer d(realFs(), names);
  MaildirDeliverOptions o;
  o.lineEndings = LineEndings::Keep;
  o.intoCur = true;
  o.flags = "SF";
  o.mtime = 1000000000;
  auto r = d.deliver(t / "M", "", "", MemorySource("a\r\nb"), o);
  REQUIRE(r.ok());
  CHECK(r->name == "1700000000.M42P777Q0.mx.example,S=4:2,FS");
  CHECK(r->path == t / "M/cur/" + r->name);
  CHECK(slurp(r->path) == "a\r\nb");
  struct stat st;
  REQUIRE(stat(r->path.c_str(), &st) == 0);
  CHECK(st.st_mtime == 1000000000);
}

TEST_CASE("a name collision in new/ draws a fresh name, never overwrites") {
  TempDir t;
  auto names = fixedGenerator();  // same clock every time: only Q differs
  MaildirDeliverer d(realFs(), names);
  REQUIRE(d.deliver(t / "M", "", "", MemorySource("first\n")).ok());
  // Plant a file where the next name will land.
  std::string planted = t / "M/new/1700000000.M42P777Q1.mx.example,S=7";
  REQUIRE(atomicWrite(planted, "planted").ok());
  auto r = d.deliver(t / "M", "", "", MemorySource("second\n"));
  REQUIRE(r.ok());
  CHECK(r->name == "1700000000.M42P777Q2.mx.example,S=7");
  CHECK(slurp(planted) == "planted");
  CHECK(slurp(r->path) == "second\n");
  CHECK(listDir(t / "M/tmp").empty());
}

TEST_CASE("injected failures leave nothing in tmp/ or new/") {
  TempDir t;
  auto names = fixedGenerator();
  std::string big(200000, 'x');
  struct Case {
    const char* what;
    long long writeBudget;
    int writeErr;
    int failFsyncAt;
    int linkFailures;
    int wantErr;
  };
  // fsync #1 is the file, #2 is new/ (the folder exists already).
  auto c = GENERATE(values<Case>({
      {"ENOSPC at once", 0, ENOSPC, 0, 0, ENOSPC},
      {"ENOSPC mid-way", 70000, ENOSPC, 0, 0, ENOSPC},
      {"EDQUOT mid-way", 100, EDQUOT, 0, 0, EDQUOT},
      {"fsync file", -1, 0, 1, 0, EIO},
      {"link", -1, 0, 0, 1, EIO},
      {"fsync new/", -1, 0, 2, 0, EIO},
  }));
  INFO(c.what);
  REQUIRE(ensureMaildirFolder(realFs(), t / "M", "").ok());
  FaultyFs fs;
  fs.writeBudget = c.writeBudget;
  fs.writeErr = c.writeErr;
  fs.failFsyncAt = c.failFsyncAt;
  fs.linkFailures = c.linkFailures;
  MaildirDeliverer d(fs, names);
  auto r = d.deliver(t / "M", "", "Delivered-To: u@x\n", MemorySource(big));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().errnum == c.wantErr);
  CHECK(listDir(t / "M/new").empty());
  CHECK(listDir(t / "M/tmp").empty());
  CHECK(listDir(t / "M/cur").empty());
  if (c.wantErr == ENOSPC) CHECK(classifyDeliveryError(r.error()) == DeliveryFailure::NoSpace);
  if (c.wantErr == EDQUOT) CHECK(classifyDeliveryError(r.error()) == DeliveryFailure::OverQuota);
}

TEST_CASE("file-backed source delivers a range of a spool file") {
  TempDir t;
  REQUIRE(atomicWrite(t / "spool", "ENVELOPE\nSubject: s\r\n\r\nbody\r\n").ok());
  auto f = FileSource::open(t / "spool");
  REQUIRE(f.ok());
  CHECK(f->size() == 29u);
  FileSource range(UniqueFd(::dup(f->fd())), 9, 20);
  auto names = fixedGenerator();
  MaildirDeliverer d(realFs(), names);
  auto r = d.deliver(t / "M", "", "", range);
  REQUIRE(r.ok());
  CHECK(slurp(r->path) == "Subject: s\n\nbody\n");
  FileSource tooLong(UniqueFd(::dup(f->fd())), 9, 100);
  auto bad = d.deliver(t / "M", "", "", tooLong);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().errnum == EIO);
  CHECK(listDir(t / "M/tmp").empty());
  CHECK(listDir(t / "M/new").size() == 1);
  CHECK_FALSE(FileSource::open(t.path()).ok());  // a directory
}

TEST_CASE("delivery remakes what is missing of an existing Maildir") {
  TempDir t;
  MaildirNameGenerator names;
  MaildirDeliverer d(realFs(), names);
  REQUIRE(d.deliver(t / "M", "", "", MemorySource("one\n")));
  const std::string sub = GENERATE("new", "tmp", "cur");
  INFO(sub);
  for (const auto& f : listDir(t / "M/" + sub)) ::unlink((t / "M/" + sub + "/" + f).c_str());
  REQUIRE(::rmdir((t / "M/" + sub).c_str()) == 0);
  auto r = d.deliver(t / "M", "", "", MemorySource("two\n"));
  REQUIRE(r);
  CHECK(slurp(r->path) == "two\n");
  struct stat st;
  REQUIRE(::stat((t / "M/" + sub).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(listDir(t / "M/tmp").empty());
}
