// Unit tests for mbox: From_ lines, the parser on hostile input (also fed
// one byte at a time), appending with locks, rollback on injected
// failures, stale dot-locks and concurrent appenders.
#include "store/mbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "base/fs.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::store;
using yubin::store::test::FaultyFs;
using yubin::store::test::listDir;
using yubin::store::test::TempDir;

namespace {

struct Parsed {
  bool hasFromLine;
  std::string sender;
  std::optional<int64_t> date;
  std::string data;
  uint64_t offset, dataOffset, endOffset;
};

std::vector<Parsed> parse(std::string_view in, size_t piece, bool keepData = true) {
  std::vector<Parsed> out;
  MboxParser p(
      [&](MboxMessage&& m) -> Status {
        out.push_back({m.hasFromLine, m.from.sender, m.from.date, m.data, m.offset, m.dataOffset,
                       m.endOffset});
        return {};
      },
      keepData);
  if (piece == 0) piece = in.size() + 1;
  for (size_t i = 0; i < in.size(); i += piece) REQUIRE(p.feed(in.substr(i, piece)).ok());
  REQUIRE(p.finish().ok());
  return out;
}

std::vector<Parsed> parseFile(const std::string& path) {
  std::vector<Parsed> out;
  auto st = readMbox(path, [&](MboxMessage&& m) -> Status {
    out.push_back(
        {m.hasFromLine, m.from.sender, m.from.date, m.data, m.offset, m.dataOffset, m.endOffset});
    return {};
  });
  REQUIRE(st.ok());
  return out;
}

std::string slurp(const std::string& path) {
  auto r = readFile(path, 1u << 30);
  REQUIRE(r.ok());
  return *r;
}

MboxLockSettings fastLocks() {
  MboxLockSettings s;
  s.timeout = std::chrono::milliseconds(20000);
  return s;
}

}  // namespace

TEST_CASE("From_ line dates format and parse") {
  CHECK(mboxFormatDate(0) == "Thu Jan  1 00:00:00 1970");
  CHECK(mboxFormatDate(1700000000) == "Tue Nov 14 22:13:20 2023");
  CHECK(mboxFromLine("", 0) == "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
  CHECK(mboxFromLine("a b\t@x", 0) == "From a_b_@x Thu Jan  1 00:00:00 1970\n");

  struct Case {
    std::string line, sender;
    std::optional<int64_t> date;
  };
  auto c = GENERATE(values<Case>({
      {"From a@b Tue Nov 14 22:13:20 2023\n", "a@b", 1700000000},
      {"From a@b Tue Nov 14 22:13:20 2023\r\n", "a@b", 1700000000},
      {"From a@b  Tue Nov 14 22:13 2023", "a@b", 1699999980},
      {"From a@b Tue Nov 14 22:13:20 PST 2023", "a@b", 1700000000},
      {"From a@b Wed Nov 15 00:13:20 2023 +0200", "a@b", 1700000000},
      {"From \"john doe\"@x Tue Nov 14 22:13:20 2023", "\"john doe\"@x", 1700000000},
      {"From MAILER-DAEMON Thu Jan  1 00:00:00 1970", "MAILER-DAEMON", 0},
      {"From a@b", "a@b", std::nullopt},
      {"From a@b garbage here", "a@b", std::nullopt},
      {"From a@b Tue Nov 99 22:13:20 2023", "a@b", std::nullopt},
      {"From a@b Tue Nov 14 25:13:20 2023", "a@b", std::nullopt},
      {"From a@b Tue Nov 14 :: 2023", "a@b", std::nullopt},
      {"From ", "", std::nullopt},
  }));
  INFO(c.line);
  auto f = mboxParseFromLine(c.line);
  CHECK(f.sender == c.sender);
  CHECK(f.date == c.date);
}

TEST_CASE("mbox parser table, in any piece size") {
  struct Want {
    bool hasFromLine;
    std::string sender;
    std::string data;
  };
  struct Case {
    const char* name;
    std::string in;
    std::vector<Want> want;
  };
  const std::string F = "From a@b Thu Jan  1 00:00:00 1970\n";
  auto c = GENERATE_COPY(values<Case>({
      {"empty", "", {}},
      {"one", F + "x\n\n", {{true, "a@b", "x\n"}}},
      {"two",
       F + "x\n\n" + "From c@d Thu Jan  1 00:00:00 1970\ny\n\n",
       {{true, "a@b", "x\n"}, {true, "c@d", "y\n"}}},
      {"unquote",
       F + ">From x\n>>From y\n>Fromage\nFrom z\n\n",
       {{true, "a@b", "From x\n>From y\n>Fromage\nFrom z\n"}}},
      {"From_ needs a blank line before it",
       F + "x\nFrom c@d Thu Jan  1 00:00:00 1970\n\n",
       {{true, "a@b", "x\nFrom c@d Thu Jan  1 00:00:00 1970\n"}}},
      {"no separator at all", "just text\nmore\n", {{false, "", "just text\nmore\n"}}},
      {"garbage then a message",
       "junk\n\n" + F + "x\n\n",
       {{false, "", "junk\n"}, {true, "a@b", "x\n"}}},
      {"no final newline", F + "x", {{true, "a@b", "x"}}},
      {"no final blank line", F + "x\n", {{true, "a@b", "x\n"}}},
      {"empty message", F + "\n" + F + "\n", {{true, "a@b", ""}, {true, "a@b", ""}}},
      {"From_ lines back to back", F + F, {{true, "a@b", F}}},
      {"CRLF blank separator",
       F + "x\r\n\r\n" + F + "y\r\n",
       {{true, "a@b", "x\r\n"}, {true, "a@b", "y\r\n"}}},
      {"ends in a bare From_", F + "x\n\nFrom", {{true, "a@b", "x\n\nFrom"}}},
      {"ends in an unfinished From_ line",
       F + "x\n\nFrom q",
       {{true, "a@b", "x\n"}, {true, "q", ""}}},
      {"binary",
       F + std::string("\0\xff\r\x80\n\0\n\n", 8),
       {{true, "a@b", std::string("\0\xff\r\x80\n\0\n", 7)}}},
      {"only newlines", "\n\n\n", {{false, "", "\n\n"}}},
  }));
  size_t piece = GENERATE(0, 1, 2, 7);
  INFO(c.name << " piece=" << piece);
  auto got = parse(c.in, piece);
  REQUIRE(got.size() == c.want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].hasFromLine == c.want[i].hasFromLine);
    CHECK(got[i].sender == c.want[i].sender);
    CHECK(got[i].data == c.want[i].data);
  }
  // The same parse without data gives the same messages and offsets.
  auto light = parse(c.in, piece, false);
  REQUIRE(light.size() == got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(light[i].data.empty());
    CHECK(light[i].offset == got[i].offset);
    CHECK(light[i].endOffset == got[i].endOffset);
    CHECK(light[i].sender == got[i].sender);
  }
}

TEST_CASE("parser offsets point into the file") {
  const std::string F = "From a@b Thu Jan  1 00:00:00 1970\n";
  std::string in = F + ">From x\n\n" + F + "y\n\n";
  auto got = parse(in, 0);
  REQUIRE(got.size() == 2);
  CHECK(got[0].offset == 0);
  CHECK(got[0].dataOffset == F.size());
  CHECK(in.substr(got[0].dataOffset, got[0].endOffset - got[0].dataOffset) == ">From x\n");
  CHECK(got[1].offset == F.size() + 9);
  CHECK(in.substr(got[1].dataOffset, got[1].endOffset - got[1].dataOffset) == "y\n");
  CHECK(got[1].endOffset + 1 == in.size());
}

TEST_CASE("parser survives hostile sizes in linear time") {
  std::string huge = "From x Thu Jan  1 00:00:00 1970\n" + std::string(5u << 20, '>') + "From\n";
  auto got = parse(huge, 65536);
  REQUIRE(got.size() == 1);
  CHECK(got[0].data.size() == (5u << 20) + 5);
  std::string noNewline(3u << 20, 'F');
  auto g2 = parse(noNewline, 1000);
  REQUIRE(g2.size() == 1);
  CHECK_FALSE(g2[0].hasFromLine);
  CHECK(g2[0].data == noNewline);
  std::string manyFrom;
  for (int i = 0; i < 100000; ++i) manyFrom += "From \n\n";
  CHECK(parse(manyFrom, 0).size() == 100000);
}

TEST_CASE("append three messages and parse them back exactly") {
  TempDir t;
  std::string path = t / "mbox";
  std::string line100k(100 * 1024, 'L');
  std::vector<std::string> msgs = {
      "Subject: one\r\n\r\nFrom the start\r\n>From quoted\r\nend\r\n",
      "Subject: two\n\nno trailing newline",
      "Subject: three\n\n" + line100k + "\n\xff\xfe binary \x01\n\nFrom \n",
  };
  for (size_t i = 0; i < msgs.size(); ++i) {
    REQUIRE(appendToMbox(path, i == 1 ? "" : "s@x", 1700000000 + static_cast<int64_t>(i),
                         "Return-Path: <s@x>\r\n", MemorySource(msgs[i]), fastLocks())
                .ok());
  }
  CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});  // no dot-lock left
  std::string file = slurp(path);
  CHECK(file.substr(0, 40) == "From s@x Tue Nov 14 22:13:20 2023\nReturn");
  CHECK(file.find("\n>From the start\n>>From quoted\n") != std::string::npos);
  auto got = parseFile(path);
  REQUIRE(got.size() == 3);
  CHECK(got[0].data == "Return-Path: <s@x>\nSubject: one\n\nFrom the start\n>From quoted\nend\n");
  CHECK(got[1].data == "Return-Path: <s@x>\nSubject: two\n\nno trailing newline\n");
  CHECK(got[1].sender == "MAILER-DAEMON");
  CHECK(got[2].data == "Return-Path: <s@x>\n" + msgs[2]);
  for (size_t i = 0; i < 3; ++i) CHECK(got[i].date == 1700000000 + static_cast<int64_t>(i));
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("append repairs a previous message cut short") {
  TempDir t;
  std::string path = t / "mbox";
  std::string tail = GENERATE(std::string(""), std::string("\n"), std::string("\n\n"));
  REQUIRE(atomicWrite(path, "From a Thu Jan  1 00:00:00 1970\nbody" + tail).ok());
  REQUIRE(appendToMbox(path, "b", 0, "", MemorySource("next\n"), fastLocks()).ok());
  auto got = parseFile(path);
  REQUIRE(got.size() == 2);
  CHECK(got[0].data == "body\n");
  CHECK(got[1].data == "next\n");
}

TEST_CASE("a delivery drops the IMAP state fields the sender wrote, and only from the header") {
  TempDir t;
  std::string path = t / "mbox";
  const std::string msg =
      "Subject: hi\r\nStatus: RO\r\nX-UID: 7\r\nx-keywords: $Junk\r\n\tmore\r\n"
      "X-Status: AF\r\nX-IMAPbase: 1 99\r\nX-Statusbar: kept\r\n\r\nStatus: body line\r\n";
  MboxAppendOptions hide;
  hide.hideImapState = true;
  REQUIRE(appendToMbox(path, "a", 0, "X-Prefix: 1\r\n", MemorySource(msg), fastLocks(), hide)
              .ok());
  REQUIRE(appendToMbox(path, "a", 0, "", MemorySource(msg), fastLocks()).ok());  // as before
  auto got = parseFile(path);
  REQUIRE(got.size() == 2);
  CHECK(got[0].data == "X-Prefix: 1\nSubject: hi\nX-Statusbar: kept\n\nStatus: body line\n");
  CHECK(got[1].data.find("Status: RO\nX-UID: 7\n") != std::string::npos);
}

TEST_CASE("injected failures leave the mbox exactly as it was") {
  TempDir t;
  std::string path = t / "mbox";
  REQUIRE(appendToMbox(path, "a", 0, "", MemorySource("first\n"), fastLocks()).ok());
  const std::string before = slurp(path);
  std::string big(300000, 'x');
  big += "\nFrom y\n";
  struct Case {
    const char* what;
    long long budget;
    int err;
    int failFsyncAt;
  };
  auto c = GENERATE(values<Case>({
      {"ENOSPC at once", 0, ENOSPC, 0},
      {"ENOSPC after 1 byte", 1, ENOSPC, 0},
      {"ENOSPC mid-way", 100000, ENOSPC, 0},
      {"EDQUOT near the end", 300040, EDQUOT, 0},
      {"fsync", -1, 0, 1},
  }));
  INFO(c.what);
  FaultyFs fs;
  auto w = MboxWriter::open(path, fastLocks(), fs);
  REQUIRE(w.ok());
  fs.writeBudget = c.budget;
  fs.writeErr = c.err;
  fs.failFsyncAt = c.failFsyncAt;
  auto st = w->append("s", 0, "Delivered-To: u\n", MemorySource(big));
  REQUIRE_FALSE(st.ok());
  if (c.err) CHECK(st.error().errnum == c.err);
  CHECK(slurp(path) == before);
  fs.writeBudget = -1;
  REQUIRE(w->append("s", 0, "", MemorySource("after\n")).ok());
  REQUIRE(w->close().ok());
  CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});
  auto got = parseFile(path);
  REQUIRE(got.size() == 2);
  CHECK(got[1].data == "after\n");
}

TEST_CASE("a failing dot-lock write leaves no lock file and no change") {
  TempDir t;
  std::string path = t / "mbox";
  FaultyFs fs;
  fs.writeBudget = 0;
  auto w = MboxWriter::open(path, fastLocks(), fs);
  REQUIRE_FALSE(w.ok());
  CHECK(w.error().errnum == ENOSPC);
  CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});
}

TEST_CASE("stale dot-locks are removed, live ones respected") {
  TempDir t;
  std::string path = t / "mbox";
  std::string lock = path + ".lock";
  MboxLockSettings s = fastLocks();
  s.hostName = "thishost";

  SECTION("dead pid on this host") {
    pid_t child = fork();
    if (child == 0) _exit(0);
    REQUIRE(waitpid(child, nullptr, 0) == child);
    REQUIRE(atomicWrite(lock, std::to_string(child) + " thishost\n").ok());
    REQUIRE(appendToMbox(path, "a", 0, "", MemorySource("m\n"), s).ok());
    CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});
  }
  SECTION("dead pid, pid-only lock file") {
    pid_t child = fork();
    if (child == 0) _exit(0);
    REQUIRE(waitpid(child, nullptr, 0) == child);
    REQUIRE(atomicWrite(lock, std::to_string(child)).ok());
    REQUIRE(appendToMbox(path, "a", 0, "", MemorySource("m\n"), s).ok());
    CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});
  }
  SECTION("older than five minutes, even with a live pid") {
    REQUIRE(atomicWrite(lock, std::to_string(getpid()) + " thishost\n").ok());
    struct timespec old[2] = {{time(nullptr) - 301, 0}, {time(nullptr) - 301, 0}};
    REQUIRE(utimensat(AT_FDCWD, lock.c_str(), old, 0) == 0);
    REQUIRE(appendToMbox(path, "a", 0, "", MemorySource("m\n"), s).ok());
    CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});
  }
  SECTION("live pid: wait, then time out, mbox untouched") {
    REQUIRE(atomicWrite(lock, std::to_string(getpid()) + " thishost\n").ok());
    s.timeout = std::chrono::milliseconds(30);
    auto st = appendToMbox(path, "a", 0, "", MemorySource("m\n"), s);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().errnum == ETIMEDOUT);
    CHECK(slurp(lock) == std::to_string(getpid()) + " thishost\n");
    CHECK(slurp(path).empty());
    // The waiter's own lock file (written, then linked) is gone too.
    CHECK(listDir(t.path()) == std::vector<std::string>{"mbox", "mbox.lock"});
  }
  SECTION("the lock appears whole: linked from a written file, never created empty") {
    // A second process that finds the lock sees its pid at once (no window
    // in which a kill leaves an empty lock only its age can clear).
    FaultyFs fs;
    auto w = MboxWriter::open(path, s, fs);
    REQUIRE(w.ok());
    CHECK(slurp(lock) == std::to_string(getpid()) + " thishost\n");
    CHECK(fs.linkCalls == 1);
    CHECK(listDir(t.path()) == std::vector<std::string>{"mbox", "mbox.lock"});
    REQUIRE(w->close().ok());
    CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});
  }
  SECTION("a link that fails leaves neither lock file") {
    FaultyFs fs;
    fs.linkFailures = 1;
    auto st = appendToMbox(path, "a", 0, "", MemorySource("m\n"), s, {}, fs);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().errnum == EIO);
    CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});
    CHECK(slurp(path).empty());
  }
  SECTION("dead pid on another host is not judged") {
    REQUIRE(atomicWrite(lock, "999999999 otherhost\n").ok());
    s.timeout = std::chrono::milliseconds(30);
    CHECK_FALSE(appendToMbox(path, "a", 0, "", MemorySource("m\n"), s).ok());
  }
  SECTION("Try skips a dot-lock the directory refuses") {
    FaultyFs fs;
    fs.openFailSuffix = ".lock";
    auto st = appendToMbox(path, "a", 0, "", MemorySource("m\n"), s, {}, fs);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().errnum == EACCES);
    s.dotLock = DotLock::Try;
    CHECK(appendToMbox(path, "a", 0, "", MemorySource("m\n"), s, {}, fs).ok());
    fs.openErr = EIO;  // only refusals are skipped
    CHECK_FALSE(appendToMbox(path, "a", 0, "", MemorySource("m\n"), s, {}, fs).ok());
    s.dotLock = DotLock::Off;
    CHECK(appendToMbox(path, "a", 0, "", MemorySource("m\n"), s, {}, fs).ok());
    CHECK(parseFile(path).size() == 2);
  }
}

TEST_CASE("mbox refuses symlinks and non-regular files") {
  TempDir t;
  REQUIRE(symlink("/dev/null", (t / "link").c_str()) == 0);
  CHECK_FALSE(appendToMbox(t / "link", "a", 0, "", MemorySource("m\n")).ok());
  REQUIRE(mkfifo((t / "fifo").c_str(), 0600) == 0);
  auto st = appendToMbox(t / "fifo", "a", 0, "", MemorySource("m\n"));
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().errnum == EINVAL);
  CHECK_FALSE(readMbox(t / "fifo", [](MboxMessage&&) -> Status { return {}; }).ok());
}

TEST_CASE("concurrent appenders never interleave") {
  TempDir t;
  std::string path = t / "mbox";
  constexpr int kProcs = 4, kEach = 50;
  auto body = [](int p, int i) {
    std::string b = "Subject: p" + std::to_string(p) + " m" + std::to_string(i) + "\n\n";
    b += "From the body of " + std::to_string(p) + "/" + std::to_string(i) + "\n";
    // Some messages are larger than one write buffer (64 KiB).
    size_t pad = (i % 10 == 0) ? 150000 : static_cast<size_t>(i * 97 + p);
    for (size_t k = 0; k < pad; k += 100) b += std::string(99, static_cast<char>('a' + p)) + "\n";
    return b;
  };
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (int i = 0; i < kEach; ++i) {
        if (!appendToMbox(path, "p" + std::to_string(p), i, "", MemorySource(body(p, i)),
                          fastLocks())
                 .ok())
          _exit(1);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    REQUIRE(waitpid(k, &status, 0) == k);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  auto got = parseFile(path);
  REQUIRE(got.size() == kProcs * kEach);
  std::map<std::string, int> seen;
  std::vector<int> nextIndex(kProcs, 0);
  for (const auto& m : got) {
    int p = std::stoi(m.sender.substr(1));
    REQUIRE(p >= 0);
    REQUIRE(p < kProcs);
    int i = static_cast<int>(*m.date);
    CHECK(i == nextIndex[p]++);  // each process's messages in its order
    CHECK(m.data == body(p, i));
    ++seen[m.sender + "/" + std::to_string(i)];
  }
  CHECK(seen.size() == static_cast<size_t>(kProcs * kEach));
  CHECK(listDir(t.path()) == std::vector<std::string>{"mbox"});
}

namespace {
// Counts open() calls, so a test knows another thread has its descriptor.
class CountingFs : public Fs {
 public:
  std::atomic<int> opens{0};
  int open(const char* path, int flags, mode_t mode) override {
    int fd = Fs::open(path, flags, mode);
    ++opens;
    return fd;
  }
};
}  // namespace

TEST_CASE("a writer waiting for the lock follows a rewrite that renamed a new mbox over the path") {
  // A POP3/IMAP expunge rewrites the mbox into a temp file and renames it
  // over the path while a delivery waits for the lock on the old inode:
  // the delivery must land in the new file, not in the unlinked old one.
  TempDir t;
  std::string path = t / "mbox";
  REQUIRE(appendToMbox(path, "a", 0, "", MemorySource("old\n"), fastLocks()).ok());
  auto holder = MboxWriter::open(path, fastLocks(), realFs());
  REQUIRE(holder.ok());

  CountingFs fs;
  Status waiting;
  std::thread writer([&] {
    waiting = appendToMbox(path, "b", 0, "", MemorySource("delivered\n"), fastLocks(), {}, fs);
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fs.opens.load() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(fs.opens.load() > 0);

  std::string tmp = t / "mbox.rewrite";
  REQUIRE(appendToMbox(tmp, "c", 0, "", MemorySource("kept\n"), fastLocks()).ok());
  REQUIRE(::rename(tmp.c_str(), path.c_str()) == 0);
  REQUIRE(holder->close().ok());
  writer.join();

  REQUIRE(waiting.ok());
  auto msgs = parseFile(path);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].data.find("kept") != std::string::npos);
  CHECK(msgs[1].data.find("delivered") != std::string::npos);
  CHECK(fs.opens.load() >= 2);
}
