// Unit tests for the shared delivery path: Maildir and mbox copies (content
// byte for byte, From_ quoting), the loop check, quotas, aliases and the
// one-copy-per-user rule, unknown and remote-only recipients, injected
// ENOSPC/EDQUOT, an mbox lock that is never released, the message checks
// (also fed one byte at a time), the nameless spool file and the message
// buffer (memory, then spool).
#include "mdad/delivery.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "base/fs.hpp"
#include "config/config.hpp"
#include "mdad/spool.hpp"
#include "store/mbox.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::mdad;
using store::test::listDir;
using store::test::TempDir;

namespace {

struct Fixture {
  TempDir dir;
  std::string mail = dir / "mail";
  std::string users = dir / "users";
  std::string aliases = dir / "aliases";
  std::unique_ptr<auth::Directory> directory;

  explicit Fixture(const std::string& extraUsers = "") {
    REQUIRE(atomicWrite(users,
                        "bob@example.org:*:::maildir\n"
                        "carol@example.org:*:::mbox\n"
                        "full@example.org:*:::maildir:300\n"
                        "one@example.org:*:::maildir:0,1\n"
                        "fullbox@example.org:*:::mbox:300\n"
                        "onebox@example.org:*:::mbox:0,1\n"
                        "deep@example.org:*::sub/dir/deep.mbox:mbox\n" +
                            extraUsers,
                        0640)
                .ok());
    REQUIRE(atomicWrite(aliases,
                        "info@example.org: bob@example.org, carol@example.org\n"
                        "away@example.org: someone@remote.example\n"
                        "mixed@example.org: someone@remote.example, bob@example.org\n"
                        "broken@example.org: ghost@example.org\n",
                        0640)
                .ok());
    auto cfg = config::Config::parse(
        "version = 1\n[global]\ndomains = example.org\nusers_file = " + users +
            "\naliases_file = " + aliases + "\nmail_root = " + mail + "\n",
        "test.conf");
    REQUIRE(cfg.ok());
    directory = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(*cfg));
    REQUIRE(directory->reload().ok());
  }

  std::string maildir(const std::string& local) const {
    return mail + "/example.org/" + local + "/Maildir";
  }
  std::string mbox(const std::string& local) const {
    return mail + "/example.org/" + local + ".mbox";
  }
  auth::User user(const std::string& address) const {
    auto u = directory->findUser(address);
    REQUIRE(u);
    return *u;
  }
  std::vector<std::string> maildirFiles(const std::string& local) const {
    return listDir(maildir(local) + "/new");
  }
  std::string onlyMaildirFile(const std::string& local) const {
    auto files = maildirFiles(local);
    REQUIRE(files.size() == 1);
    auto text = readFile(maildir(local) + "/new/" + files[0]);
    REQUIRE(text.ok());
    return *text;
  }
  std::vector<store::MboxMessage> mboxMessages(const std::string& path) const {
    std::vector<store::MboxMessage> out;
    auto st = store::readMbox(path, [&](store::MboxMessage&& m) -> Status {
      out.push_back(std::move(m));
      return {};
    });
    REQUIRE(st.ok());
    return out;
  }
};

DeliverySettings fastSettings() {
  DeliverySettings s;
  s.lockTimeout = std::chrono::milliseconds(200);
  return s;
}

// Yields its content one byte per call, like the slowest possible reader.
class ByteSource final : public store::MessageSource {
 public:
  explicit ByteSource(std::string d) : data_(std::move(d)) {}
  Status forEachChunk(const ChunkFn& fn) const override {
    for (char c : data_)
      if (auto st = fn(std::string_view(&c, 1)); !st) return st;
    return {};
  }
  uint64_t size() const override { return data_.size(); }

 private:
  std::string data_;
};

const std::string kMessage =
    "From: x@example.net\r\nSubject: test\r\n\r\nline one\r\nFrom the start\r\n>From quoted\r\n";
const std::string kMessageLf =
    "From: x@example.net\nSubject: test\n\nline one\nFrom the start\n>From quoted\n";

}  // namespace

TEST_CASE("trace prefix") {
  CHECK(tracePrefix("s@example.net", "bob@example.org") ==
        "Return-Path: <s@example.net>\r\nDelivered-To: bob@example.org\r\n");
  CHECK(tracePrefix("", "bob@example.org") ==
        "Return-Path: <>\r\nDelivered-To: bob@example.org\r\n");
}

TEST_CASE("a Maildir copy is the message with two header lines in front, LF line ends") {
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource msg(kMessage);
  Deliverer::Served served;
  CHECK(d.deliverToRecipient(*f.directory, "bob@example.org", msg, "s@example.net", "t", served) ==
        Outcome::Delivered);
  CHECK(f.onlyMaildirFile("bob") ==
        "Return-Path: <s@example.net>\nDelivered-To: bob@example.org\n" + kMessageLf);
  CHECK(listDir(f.maildir("bob") + "/tmp").empty());
  CHECK(served.size() == 1);
}

TEST_CASE("an mbox copy reads back un-quoted; From lines in the body survive") {
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource msg(kMessage);
  auth::User carol = f.user("carol@example.org");
  REQUIRE(d.deliverToUser(carol, msg, "s@example.net", "t") == Outcome::Delivered);
  REQUIRE(d.deliverToUser(carol, msg, "", "t") == Outcome::Delivered);
  auto raw = readFile(f.mbox("carol"));
  REQUIRE(raw.ok());
  CHECK(raw->find("\n>From the start\n") != std::string::npos);
  CHECK(raw->find("\n>>From quoted\n") != std::string::npos);
  auto msgs = f.mboxMessages(f.mbox("carol"));
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].from.sender == "s@example.net");
  CHECK(msgs[0].data ==
        "Return-Path: <s@example.net>\nDelivered-To: carol@example.org\n" + kMessageLf);
  CHECK(msgs[1].from.sender == "MAILER-DAEMON");
  CHECK(msgs[1].data == "Return-Path: <>\nDelivered-To: carol@example.org\n" + kMessageLf);
  struct stat st;
  REQUIRE(::stat(f.mbox("carol").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("an mbox in a folder that does not exist yet") {
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource msg(kMessage);
  CHECK(d.deliverToUser(f.user("deep@example.org"), msg, "", "t") == Outcome::Delivered);
  CHECK(f.mboxMessages(f.mail + "/sub/dir/deep.mbox").size() == 1);
}

TEST_CASE("Delivered-To naming the user is a loop; naming someone else is not") {
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource loop("Delivered-To: bob@Example.ORG\r\nSubject: x\r\n\r\nbody\r\n");
  Deliverer::Served served;
  // The domain compares without case, the local part exactly.
  CHECK(d.deliverToRecipient(*f.directory, "bob@example.org", loop, "", "t", served) ==
        Outcome::Loop);
  store::MemorySource loop2("Subject: x\r\nDelivered-To: <bob@example.ORG>\r\n\r\nbody\r\n");
  CHECK(d.deliverToUser(f.user("bob@example.org"), loop2, "", "t") == Outcome::Loop);
  CHECK(f.maildirFiles("bob").empty());
  store::MemorySource other(
      "Delivered-To: carol@example.org\r\nDelivered-To: BOB@example.org\r\n\r\n"
      "Delivered-To: bob@example.org\r\n");
  CHECK(d.deliverToUser(f.user("bob@example.org"), other, "", "t") == Outcome::Delivered);
}

TEST_CASE("quota: bytes and messages, Maildir and mbox") {
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource small("Subject: s\r\n\r\nx\r\n");
  store::MemorySource big("Subject: b\r\n\r\n" + std::string(400, 'x') + "\r\n");
  SECTION("Maildir bytes") {
    CHECK(d.deliverToUser(f.user("full@example.org"), big, "", "t") == Outcome::OverQuota);
    CHECK(d.deliverToUser(f.user("full@example.org"), small, "", "t") == Outcome::Delivered);
    CHECK(f.maildirFiles("full").size() == 1);
  }
  SECTION("Maildir messages") {
    CHECK(d.deliverToUser(f.user("one@example.org"), big, "", "t") == Outcome::Delivered);
    CHECK(d.deliverToUser(f.user("one@example.org"), small, "", "t") == Outcome::OverQuota);
    CHECK(f.maildirFiles("one").size() == 1);
  }
  SECTION("mbox bytes") {
    CHECK(d.deliverToUser(f.user("fullbox@example.org"), big, "", "t") == Outcome::OverQuota);
    CHECK(d.deliverToUser(f.user("fullbox@example.org"), small, "", "t") == Outcome::Delivered);
    CHECK(f.mboxMessages(f.mbox("fullbox")).size() == 1);
  }
  SECTION("mbox messages") {
    CHECK(d.deliverToUser(f.user("onebox@example.org"), small, "", "t") == Outcome::Delivered);
    CHECK(d.deliverToUser(f.user("onebox@example.org"), small, "", "t") == Outcome::OverQuota);
    CHECK(f.mboxMessages(f.mbox("onebox")).size() == 1);
  }
}

TEST_CASE("quota: the usage is cached between deliveries and a deletion makes room") {
  Fixture f("room@example.org:*:::maildir:0,3\n");
  Deliverer d(fastSettings());
  store::MemorySource msg("Subject: s\r\n\r\nx\r\n");
  const auth::User room = f.user("room@example.org");
  for (int i = 0; i < 3; ++i) CHECK(d.deliverToUser(room, msg, "", "t") == Outcome::Delivered);
  // One scan for the missing Maildir, one after it was made; none for
  // the deliveries that followed.
  CHECK(d.quotaScans() == 2);
  CHECK(d.deliverToUser(room, msg, "", "t") == Outcome::OverQuota);
  CHECK(d.quotaScans() == 2);
  // The user deletes a message (new/ gets an mtime it never had before).
  const std::string newDir = f.maildir("room") + "/new";
  struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, newDir.c_str(), old, 0) == 0);
  CHECK(d.deliverToUser(room, msg, "", "t") == Outcome::OverQuota);  // sees the old mtime
  auto files = f.maildirFiles("room");
  REQUIRE(files.size() == 3);
  REQUIRE(::unlink((newDir + "/" + files[0]).c_str()) == 0);
  CHECK(d.deliverToUser(room, msg, "", "t") == Outcome::Delivered);
  CHECK(f.maildirFiles("room").size() == 3);
}

TEST_CASE("an alias reaches each user once, across recipients of one message") {
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource msg(kMessage);
  Deliverer::Served served;
  CHECK(d.deliverToRecipient(*f.directory, "bob@example.org", msg, "", "t", served) ==
        Outcome::Delivered);
  CHECK(d.deliverToRecipient(*f.directory, "info@example.org", msg, "", "t", served) ==
        Outcome::Delivered);
  CHECK(f.maildirFiles("bob").size() == 1);
  auto msgs = f.mboxMessages(f.mbox("carol"));
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].data.find("Return-Path: <>\nDelivered-To: carol@example.org\n") == 0);
  CHECK(served.size() == 2);
  // A second message (a fresh Served) gets fresh copies.
  Deliverer::Served next;
  CHECK(d.deliverToRecipient(*f.directory, "info@example.org", msg, "", "t", next) ==
        Outcome::Delivered);
  CHECK(f.maildirFiles("bob").size() == 2);
}

TEST_CASE("recipients that reach no local user") {
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource msg(kMessage);
  Deliverer::Served served;
  CHECK(d.deliverToRecipient(*f.directory, "nobody@example.org", msg, "", "t", served) ==
        Outcome::UnknownUser);
  CHECK(d.deliverToRecipient(*f.directory, "away@example.org", msg, "", "t", served) ==
        Outcome::NotLocal);
  CHECK(d.deliverToRecipient(*f.directory, "x@remote.example", msg, "", "t", served) ==
        Outcome::NotLocal);
  CHECK(d.deliverToRecipient(*f.directory, "broken@example.org", msg, "", "t", served) ==
        Outcome::TempFail);
  CHECK(d.deliverToRecipient(*f.directory, "not an address", msg, "", "t", served) ==
        Outcome::UnknownUser);
  // Local users of a mixed alias get it; the remote target is only logged.
  CHECK(d.deliverToRecipient(*f.directory, "mixed@example.org", msg, "", "t", served) ==
        Outcome::Delivered);
  CHECK(f.maildirFiles("bob").size() == 1);
}

TEST_CASE("resolution outcomes") {
  auth::Resolution r;
  r.status = auth::Resolution::Status::Ok;
  CHECK(resolutionOutcome(r) == Outcome::UnknownUser);
  r.remote = {"a@remote.example"};
  CHECK(resolutionOutcome(r) == Outcome::NotLocal);
  r.users.push_back(auth::User{});
  CHECK_FALSE(resolutionOutcome(r));
  for (auto [st, want] : {std::pair{auth::Resolution::Status::BadAddress, Outcome::UnknownUser},
                          std::pair{auth::Resolution::Status::UnknownUser, Outcome::UnknownUser},
                          std::pair{auth::Resolution::Status::AliasError, Outcome::TempFail},
                          std::pair{auth::Resolution::Status::TempFail, Outcome::TempFail}}) {
    auth::Resolution e;
    e.status = st;
    CHECK(resolutionOutcome(e) == want);
  }
}

TEST_CASE("injected write errors: ENOSPC and EDQUOT leave nothing behind") {
  Fixture f;
  store::test::FaultyFs fs;
  Deliverer d(fastSettings(), fs);
  store::MemorySource msg(kMessage);
  // Make the Maildir first, so only the message write fails.
  REQUIRE(Deliverer(fastSettings()).deliverToUser(f.user("bob@example.org"), msg, "", "t") ==
          Outcome::Delivered);
  SECTION("Maildir, ENOSPC") {
    fs.writeBudget = 10;
    CHECK(d.deliverToUser(f.user("bob@example.org"), msg, "", "t") == Outcome::NoSpace);
    CHECK(f.maildirFiles("bob").size() == 1);
    CHECK(listDir(f.maildir("bob") + "/tmp").empty());
  }
  SECTION("mbox, EDQUOT") {
    REQUIRE(d.deliverToUser(f.user("carol@example.org"), msg, "", "t") == Outcome::Delivered);
    auto before = readFile(f.mbox("carol"));
    fs.writeBudget = 10;
    fs.writeErr = EDQUOT;
    CHECK(d.deliverToUser(f.user("carol@example.org"), msg, "", "t") == Outcome::OverQuota);
    CHECK(readFile(f.mbox("carol")).value() == before.value());  // rolled back
  }
  SECTION("fsync fails") {
    fs.failFsyncAt = 1;
    CHECK(d.deliverToUser(f.user("bob@example.org"), msg, "", "t") == Outcome::Error);
    CHECK(f.maildirFiles("bob").size() == 1);
  }
}

TEST_CASE("an mbox lock held by a live process is a temporary failure after lock_timeout") {
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource msg(kMessage);
  REQUIRE(makeDirs(f.mail + "/example.org").ok());
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  REQUIRE(
      atomicWrite(f.mbox("carol") + ".lock", std::to_string(::getpid()) + " " + host + "\n").ok());
  auto t0 = std::chrono::steady_clock::now();
  CHECK(d.deliverToUser(f.user("carol@example.org"), msg, "", "t") == Outcome::MailboxBusy);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  ::unlink((f.mbox("carol") + ".lock").c_str());
  CHECK(d.deliverToUser(f.user("carol@example.org"), msg, "", "t") == Outcome::Delivered);
}

TEST_CASE("an unwritable mailbox is a temporary error") {
  if (::geteuid() == 0) return;  // root writes anywhere; the integration tests cover it
  Fixture f;
  Deliverer d(fastSettings());
  store::MemorySource msg(kMessage);
  REQUIRE(makeDirs(f.mail + "/example.org", 0500).ok());
  CHECK(d.deliverToUser(f.user("carol@example.org"), msg, "", "t") == Outcome::Error);
  ::chmod((f.mail + "/example.org").c_str(), 0700);
}

TEST_CASE("message checks, whole and one byte at a time") {
  struct Row {
    const char* name;
    std::string msg;
    bool bad;
  };
  const Row rows[] = {
      {"normal", "Subject: x\r\n\r\nbody\r\n", false},
      {"LF", "Subject: x\n\nbody\n", false},
      {"empty", "", true},
      {"NUL in a header", std::string("Subject: a\0b\r\n\r\nbody\r\n", 21), true},
      {"NUL in the first byte", std::string("\0", 1), true},
      {"NUL in the body", std::string("Subject: x\r\n\r\nbo\0dy\r\n", 21), false},
      {"NUL in the body, LF", std::string("Subject: x\n\nbo\0dy\n", 18), false},
      {"NUL after a CR-only line", std::string("A: b\r\n\r\n\0", 9), false},
      {"no header", std::string("\r\n\0", 3), false},
      {"no empty line", std::string("A: b\r\nC: \0", 10), true},
      {"header CR not at line start", std::string("A: b\r\r\nC:\0\n", 11), true},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    CHECK(checkMessage(store::MemorySource(r.msg)).has_value() == r.bad);
    CHECK(checkMessage(ByteSource(r.msg)).has_value() == r.bad);
    if (r.bad) CHECK(*checkMessage(ByteSource(r.msg)) == Outcome::BadMessage);
  }
}

TEST_CASE("the spool file has no name and gives back what was written") {
  TempDir dir;
  auto s = SpoolFile::create(dir.path());
  REQUIRE(s.ok());
  CHECK(s->active());
  std::string expect;
  for (int i = 0; i < 5000; ++i) {
    std::string piece = "line " + std::to_string(i) + " " + std::string(i % 97, 'x') + "\r\n";
    s->append(piece);
    expect += piece;
  }
  CHECK(listDir(dir.path()).empty());
  CHECK(s->size() == expect.size());
  auto src = s->finish();
  REQUIRE(src.ok());
  CHECK(src->size() == expect.size());
  CHECK(store::readAll(*src).value() == expect);
  CHECK(listDir(dir.path()).empty());
  CHECK_FALSE(s->active());

  auto bad = SpoolFile::create(dir / "missing");
  CHECK_FALSE(bad.ok());
  auto d = SpoolFile::create(dir.path());
  REQUIRE(d.ok());
  d->append("abc");
  d->discard();
  CHECK_FALSE(d->active());
  CHECK_FALSE(d->finish().ok());
}

TEST_CASE("message buffer: in memory up to the limit, then a spool file") {
  TempDir dir;
  struct Case {
    const char* what;
    size_t total;
    size_t piece;
    bool spooled;
  };
  auto c = GENERATE(values<Case>({
      {"empty", 0, 1, false},
      {"small, one byte at a time", 300, 1, false},
      {"exactly the limit", 1000, 7, false},
      {"one byte past the limit", 1001, 1, true},
      {"past it in one piece", 5000, 5000, true},
      {"big, in pieces", 300000, 4096, true},
  }));
  INFO(c.what);
  MessageBuffer b(dir.path(), 1000);
  std::string expect;
  for (size_t i = 0; i < c.total; ++i) expect += static_cast<char>('a' + (i * 7) % 26);
  for (size_t at = 0; at < c.total; at += c.piece)
    b.append(std::string_view(expect).substr(at, c.piece));
  CHECK(b.size() == c.total);
  CHECK(b.spooled() == c.spooled);
  CHECK(listDir(dir.path()).empty());  // a spool file has no name
  auto src = b.finish();
  REQUIRE(src.ok());
  CHECK(bool(dynamic_cast<const store::MemorySource*>(src->get())) == !c.spooled);
  CHECK((*src)->size() == c.total);
  CHECK(store::readAll(**src).value() == expect);
  CHECK(b.size() == 0);
  CHECK_FALSE(b.spooled());
}

TEST_CASE("message buffer: a spool folder that is gone fails at finish, the next message is fine") {
  TempDir dir;
  MessageBuffer b(dir / "missing", 10);
  b.append("0123456789");
  b.append("more than ten bytes");  // the spool file cannot be made
  b.append("dropped");
  CHECK(b.size() == 36);
  auto src = b.finish();
  REQUIRE_FALSE(src.ok());
  CHECK(src.error().errnum == ENOENT);
  b.append("short");
  auto again = b.finish();
  REQUIRE(again.ok());
  CHECK(store::readAll(**again).value() == "short");
  b.append("discarded");
  b.discard();
  CHECK(b.size() == 0);
}

TEST_CASE("ensurePrivateDir makes a 0700 folder and refuses a file") {
  TempDir dir;
  REQUIRE(ensurePrivateDir(dir / "a/b").ok());
  struct stat st;
  REQUIRE(::stat((dir / "a/b").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(atomicWrite(dir / "f", "x").ok());
  CHECK_FALSE(ensurePrivateDir(dir / "f").ok());
}
