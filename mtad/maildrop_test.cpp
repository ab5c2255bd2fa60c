// Tests of the maildrop file format (maildrop.hpp): round trip, the writer
// (temp name, final mode, no half files), and hostile files: truncated at
// every offset, bad and repeated fields, huge values, NUL/CR, size lies.
#include "mtad/maildrop.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"

using namespace yubin::mtad;
using yubin::Status;
using yubin::UniqueFd;

namespace {

std::string sample(std::string_view message = "Subject: x\r\n\r\nhi\r\n") {
  DropHeader h;
  h.sender = "me@x.example";
  h.fullName = "Me Myself";
  h.recipients = {"a@x.example", "b@y.example"};
  h.size = message.size();
  auto head = encodeDropHeader(h);
  REQUIRE(head);
  return *head + std::string(message);
}

}  // namespace

TEST_CASE("maildrop: round trip") {
  std::string file = sample();
  CHECK(file.substr(0, 17) == "YUBIN-MAILDROP 1\n");
  auto p = parseDrop(file);
  REQUIRE(p);
  CHECK(p->header.sender == "me@x.example");
  CHECK(p->header.fullName == "Me Myself");
  CHECK(p->header.recipients == std::vector<std::string>{"a@x.example", "b@y.example"});
  CHECK(file.substr(p->messageOffset) == "Subject: x\r\n\r\nhi\r\n");

  DropHeader bare;
  bare.recipients = {"r@x.example"};
  auto head = encodeDropHeader(bare);
  REQUIRE(head);
  CHECK(*head == "YUBIN-MAILDROP 1\nrcpt r@x.example\nsize 0\n\n");
  auto q = parseDrop(*head);
  REQUIRE(q);
  CHECK_FALSE(q->header.sender);
  CHECK_FALSE(q->header.fullName);
}

TEST_CASE("maildrop: the encoder refuses what the parser would") {
  DropHeader h;
  CHECK_FALSE(encodeDropHeader(h));  // no recipient
  h.recipients = {"a@x.example\nrcpt evil@x.example"};
  CHECK_FALSE(encodeDropHeader(h));
  h.recipients = {""};
  CHECK_FALSE(encodeDropHeader(h));
  h.recipients = {"a@x.example"};
  h.fullName = std::string("a\0b", 3);
  CHECK_FALSE(encodeDropHeader(h));
  h.fullName = std::string(2000, 'n');
  CHECK_FALSE(encodeDropHeader(h));
  h.fullName.reset();
  h.recipients.assign(kMaxDropRecipients + 1, "a@x.example");
  CHECK_FALSE(encodeDropHeader(h));
}

TEST_CASE("maildrop: every truncation of a file is refused") {
  std::string file = sample();
  for (size_t n = 0; n < file.size(); ++n) {
    INFO(n);
    auto p = parseDrop(std::string_view(file).substr(0, n));
    REQUIRE_FALSE(p);
    CHECK(p.error().errnum == EBADMSG);
  }
  CHECK(parseDrop(file));
  auto longer = parseDrop(file + "x");
  REQUIRE_FALSE(longer);
  CHECK(longer.error().message == "maildrop file: bytes after the message");
}

TEST_CASE("maildrop: hostile headers") {
  struct Case {
    std::string file;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"", "truncated header"},
      {"YUBIN-MAILDROP 2\nrcpt a@x\nsize 0\n\n", "not a maildrop file (bad first line)"},
      {"yubin-maildrop 1\nrcpt a@x\nsize 0\n\n", "not a maildrop file (bad first line)"},
      {"YUBIN-MAILDROP 1\nsize 0\n\n", "no recipient"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\n\n", "no size"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 0\nrcpt b@x\n\n", "field after size"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 0\nsize 0\n\n", "field after size"},
      {"YUBIN-MAILDROP 1\nuid 0\nrcpt a@x\nsize 0\n\n", "unknown field"},
      {"YUBIN-MAILDROP 1\nrcpt\nsize 0\n\n", "field without value"},
      {"YUBIN-MAILDROP 1\nrcpt \nsize 0\n\n", "empty rcpt"},
      {"YUBIN-MAILDROP 1\nsender a@x\nsender b@x\nrcpt a@x\nsize 0\n\n", "repeated sender"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsender b@x\nsize 0\n\n", "sender after rcpt"},
      {"YUBIN-MAILDROP 1\nfullname a\nfullname b\nrcpt a@x\nsize 0\n\n", "repeated fullname"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\r\nsize 0\n\n", "CR or NUL in header"},
      {std::string("YUBIN-MAILDROP 1\nrcpt a\0@x\nsize 0\n\n", 36), "CR or NUL in header"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize -1\n\n", "bad size"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 01\n\nx", "bad size"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 1x\n\nx", "bad size"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 99999999999999999999999\n\n", "bad size"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 18446744073709551615\n\n", "message truncated"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 5\n\nabc", "message truncated"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 1\n\nabc", "bytes after the message"},
      {"YUBIN-MAILDROP 1\nrcpt " + std::string(2000, 'a') + "\nsize 0\n\n", "header line too long"},
      {"YUBIN-MAILDROP 1\nrcpt a@x\nsize 0", "truncated header"},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    auto p = parseDrop(c.file);
    REQUIRE_FALSE(p);
    CHECK(p.error().errnum == EBADMSG);
    CHECK(p.error().message == "maildrop file: " + c.why);
  }
  // Too many recipients.
  std::string many = "YUBIN-MAILDROP 1\n";
  for (size_t i = 0; i <= kMaxDropRecipients; ++i) many += "rcpt a@x\n";
  many += "size 0\n\n";
  auto p = parseDrop(many);
  REQUIRE_FALSE(p);
  CHECK(p.error().message == "maildrop file: too many recipients");
  // Random bytes never crash the parser.
  srand(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = sample();
    for (int k = 0; k < 3; ++k)
      junk[static_cast<size_t>(rand()) % junk.size()] = static_cast<char>(rand());
    (void)parseDrop(junk);
  }
}

TEST_CASE("maildrop: names the pickup considers") {
  CHECK(isDropName("18c0a1b2c3d40001a2b3c4d5e6f7a8b9"));
  CHECK(isDropName("bad1"));
  for (std::string bad :
       std::vector<std::string>{"", ".tmp", ".18c0", "a/b", "a b", std::string(65, 'a'), "ü"}) {
    INFO(bad);
    CHECK_FALSE(isDropName(bad));
  }
}

TEST_CASE("maildrop: the writer leaves one complete 0644 file") {
  char tmpl[] = "/tmp/maildrop-test-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string dir = tmpl;
  std::string file = sample();
  auto name = writeDropFile(dir, file);
  REQUIRE(name);
  CHECK(isDropName(*name));
  std::string path = dir + "/" + *name;
  struct stat st;
  REQUIRE(lstat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str() == file);
  auto second = writeDropFile(dir, file);
  REQUIRE(second);
  CHECK(*second != *name);
  // Nothing else (no temp file) is left.
  int entries = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.')
      ++entries;
    else
      CHECK((std::string(e->d_name) == "." || std::string(e->d_name) == ".."));
  closedir(d);
  CHECK(entries == 2);
  // A folder that is not there: an error, no crash.
  auto missing = writeDropFile(dir + "/nope", file);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().errnum == ENOENT);
  unlink(path.c_str());
  unlink((dir + "/" + *second).c_str());
  rmdir(dir.c_str());
}

namespace {

// Records the durability calls in order; the call named `failOn` fails.
class RecordingSync : public DropSync {
 public:
  explicit RecordingSync(std::string failOn = "") : failOn_(std::move(failOn)) {}
  std::vector<std::string> calls;
  Status fsyncFile(int fd, const std::string& path) override {
    calls.push_back("fsync " + baseName(path));
    if (failOn_ == "fsync") return yubin::Error{"fsync failed", EIO};
    return DropSync::fsyncFile(fd, path);
  }
  Status rename(const std::string& from, const std::string& to) override {
    calls.push_back("rename " + baseName(from) + " " + baseName(to));
    if (failOn_ == "rename") return yubin::Error{"rename failed", ENOSPC};
    return DropSync::rename(from, to);
  }
  Status syncDir(const std::string& dir, int fd) override {
    // By now the final name exists and the temp name is gone.
    calls.push_back("syncdir " + std::to_string(countEntries(dir)));
    if (failOn_ == "syncdir") return yubin::Error{"syncfs failed", EIO};
    return DropSync::syncDir(dir, fd);
  }
  static int countEntries(const std::string& dir) {
    int n = 0;
    DIR* d = opendir(dir.c_str());
    if (!d) return -1;  // a folder this process may not read
    while (dirent* e = readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") ++n;
    closedir(d);
    return n;
  }

 private:
  static std::string baseName(const std::string& p) { return p.substr(p.rfind('/') + 1); }
  std::string failOn_;
};

}  // namespace

TEST_CASE("maildrop: the file, then its name, are on stable storage before success") {
  char tmpl[] = "/tmp/maildrop-sync-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string dir = tmpl;
  std::string file = sample();
  {
    RecordingSync sync;
    auto name = writeDropFile(dir, file, sync);
    REQUIRE(name);
    REQUIRE(sync.calls.size() == 3);
    CHECK(sync.calls[0] == "fsync ." + *name);
    CHECK(sync.calls[1] == "rename ." + *name + " " + *name);
    CHECK(sync.calls[2] == "syncdir 1");
    unlink((dir + "/" + *name).c_str());
  }
  struct Case {
    std::string failOn;
    int errnum;
    int left;  // files left in the folder
  };
  auto c = GENERATE(Case{"fsync", EIO, 0}, Case{"rename", ENOSPC, 0}, Case{"syncdir", EIO, 1});
  INFO(c.failOn);
  RecordingSync sync(c.failOn);
  auto name = writeDropFile(dir, file, sync);
  REQUIRE_FALSE(name);
  CHECK(name.error().errnum == c.errnum);
  // No temp file stays behind; after a failed final sync the complete
  // file does (the caller reports a failure: a duplicate at worst).
  CHECK(RecordingSync::countEntries(dir) == c.left);
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    CHECK(isDropName(n));
    std::ifstream in(dir + "/" + n, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str() == file);
    unlink((dir + "/" + n).c_str());
  }
  closedir(d);
  rmdir(dir.c_str());
}

TEST_CASE("maildrop: the real folder sync works on a folder this process may open") {
  char tmpl[] = "/tmp/maildrop-real-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string dir = tmpl;
  auto name = writeDropFile(dir, sample());
  REQUIRE(name);
  UniqueFd fd(open((dir + "/" + *name).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd.valid());
  CHECK(realDropSync().syncDir(dir, fd.get()));
  // A folder that vanished: an error other than EACCES is reported as is.
  CHECK(realDropSync().syncDir(dir + "/gone", fd.get()).error().errnum == ENOENT);
  unlink((dir + "/" + *name).c_str());
  rmdir(dir.c_str());
}

TEST_CASE("maildrop: a writer that may not read the folder still syncs it (syncfs)") {
  if (geteuid() != 0) {
    WARN("not run: needs root to become another user");
    return;
  }
  char tmpl[] = "/tmp/maildrop-noread-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string dir = tmpl;
  // As yubin-postdrop sees the maildrop: write and search, no read.
  REQUIRE(chmod(dir.c_str(), 01733) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    if (open(dir.c_str(), O_RDONLY | O_DIRECTORY) >= 0 || errno != EACCES) _exit(11);
    RecordingSync sync;
    auto name = writeDropFile(dir, sample(), sync);
    if (!name) _exit(12);
    _exit(sync.calls.size() == 3 && sync.calls[2] == "syncdir -1" ? 0 : 13);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(RecordingSync::countEntries(dir) == 1);
  std::filesystem::remove_all(dir);
}
