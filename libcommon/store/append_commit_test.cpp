// The APPEND commit in steps (append_commit.hpp, MaildirAppend's five
// steps): a runner the test drives by hand runs each Blocking step on a
// real thread when the test says so, so what every other session sees
// between the steps is checked without any timing: nothing before the
// log's sync, no relisting of the folder for the file that appeared
// meanwhile, the message with its UID after it, `done` only after the
// log's sync. Also: two commits interleaved, a name already taken, a
// folder gone under a commit, a caller gone before the end, and the
// backends that do not split (mbox, the memory store).
#include "store/append_commit.hpp"
#include "store/append_commit_testing.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <optional>

#include "base/fs.hpp"
#include "store/mail_store_cases.hpp"
#include "store/maildir_store.hpp"
#include "store/mbox_store.hpp"
#include "store/memory_store.hpp"
#include "store/test_util.hpp"
#include "store/uid_list.hpp"

namespace yubin::store {
namespace {

using test::listDir;
using test::ManualRunner;
using test::TempDir;

struct Outcome {
  int calls = 0;
  std::optional<Result<AppendedUids>> result;
  CommitDone done() {
    return [this](Result<AppendedUids> r) {
      ++calls;
      result = std::move(r);
    };
  }
  uint32_t uid() const {
    REQUIRE(result);
    REQUIRE(*result);
    REQUIRE((*result)->uids.size() == 1);
    return (*result)->uids[0];
  }
};

std::shared_ptr<AppendTransaction> begin(MailStore& s, const std::string& box,
                                         const std::string& bytes) {
  auto t = s.beginAppend(box);
  REQUIRE(t);
  REQUIRE((*t)->write(bytes));
  return std::shared_ptr<AppendTransaction>(std::move(*t));
}

// The UIDs the uid list (with its log) gives, as another process reads it.
std::vector<UidEntry> listed(const std::string& dir) {
  auto r = readUidList(dir);
  REQUIRE(r);
  REQUIRE(r->state == UidListState::Ok);
  return r->list.entries;
}

struct Sessions {
  TempDir tmp;
  std::string root = tmp / "Maildir";
  std::shared_ptr<MaildirFolderStates> states = makeMaildirFolderStates();
  std::unique_ptr<MailStore> open() {
    auto s = openMaildirStore(root, states);
    REQUIRE(s);
    return std::move(*s);
  }
};

TEST_CASE("append commit (Maildir): the steps, and what other sessions see between them") {
  Sessions h;
  auto writer = h.open();
  auto reader = h.open();
  test::appendTo(*writer, "INBOX", "first\n");
  auto box = reader->select("INBOX", false);
  REQUIRE(box);
  REQUIRE((*box)->sync(true));
  const auto before = listed(h.root);
  REQUIRE(before.size() == 1);

  ManualRunner runner;
  Outcome out;
  const std::string body = "Subject: async\n\nbody line\n";
  auto tx = begin(*writer, "INBOX", body);
  CHECK(listDir(h.root + "/tmp").empty());  // held in memory: the file comes in step 2
  commitAppend(tx, {kFlagSeen | kFlagFlagged, {"$Work"}}, 1600000000, &runner, out.done());
  tx.reset();  // the job keeps it
  // Step 1 (prepare, on this thread) ran; step 2 waits for a thread.
  REQUIRE(runner.waiting() == 1);
  CHECK(out.calls == 0);
  CHECK(listDir(h.root + "/cur").size() == 1);
  // Step 2 on its thread: the file is in cur/, fsync'd, the tmp/ name gone.
  runner.work();
  CHECK(listDir(h.root + "/tmp").empty());
  auto cur = listDir(h.root + "/cur");
  REQUIRE(cur.size() == 2);
  // Another session of the process syncs before the publish step: it
  // reports nothing, and it did not list the folder again for the new file
  // (which would have given it a UID in the list).
  auto ch = (*box)->sync(true);
  REQUIRE(ch);
  CHECK_FALSE(ch->existsChanged);
  CHECK((*box)->messages().size() == 1);
  CHECK(listed(h.root) == before);
  // Step 3 (publish, here): the UID is in the uid list; step 4 (the log's
  // sync) waits for a thread. No answer yet, and the other sessions do not
  // see the message before its UID is on disk.
  runner.then();
  REQUIRE(runner.waiting() == 1);
  CHECK(out.calls == 0);
  const auto after = listed(h.root);
  REQUIRE(after.size() == 2);
  ch = (*box)->sync(true);
  REQUIRE(ch);
  CHECK_FALSE(ch->existsChanged);
  // Step 4, then step 5 (announce, here): the caller hears of it, once, and
  // the other sessions see it.
  runner.step();
  CHECK(runner.waiting() == 0);
  CHECK(out.calls == 1);
  ch = (*box)->sync(true);
  REQUIRE(ch);
  CHECK(ch->existsChanged);
  REQUIRE((*box)->messages().size() == 2);
  const MessageInfo m = (*box)->messages()[1];
  CHECK(m.uid == after[1].uid);
  CHECK(out.uid() == m.uid);
  CHECK((*out.result)->uidValidity == (*box)->uidValidity());
  CHECK(m.internalDate == 1600000000);
  CHECK(m.flags.system == (kFlagSeen | kFlagFlagged));
  CHECK(m.flags.keywords == std::vector<std::string>{"$Work"});
  CHECK(m.size == body.size() + 3);  // CRLF size
  CHECK(test::readAll(**box, 1) == body);
  // Another process (its own states) finds the message under that UID.
  auto other = openMaildirStore(h.root);
  REQUIRE(other);
  auto ob = (*other)->select("INBOX", true);
  REQUIRE(ob);
  CHECK(test::uids(**ob) == std::vector<uint32_t>{before[0].uid, m.uid});
}

TEST_CASE("append commit (Maildir): two commits interleaved get distinct UIDs in publish order") {
  Sessions h;
  auto s1 = h.open();
  auto s2 = h.open();
  auto s3 = h.open();
  auto box = s3->select("Archive", false);
  REQUIRE(box);
  ManualRunner r1, r2;
  Outcome o1, o2;
  commitAppend(begin(*s1, "Archive", "one\n"), {}, 0, &r1, o1.done());
  commitAppend(begin(*s2, "Archive", "two\n"), {}, 0, &r2, o2.done());
  r2.step();  // two placed and published
  r1.step();  // one placed and published
  r1.step();
  r2.step();
  REQUIRE(o1.calls == 1);
  REQUIRE(o2.calls == 1);
  CHECK(o2.uid() == 1);
  CHECK(o1.uid() == 2);
  auto ch = (*box)->sync(true);
  REQUIRE(ch);
  CHECK(ch->existsChanged);
  CHECK(test::uids(**box) == std::vector<uint32_t>{1, 2});
  CHECK(test::readAll(**box, 0) == "two\n");
  CHECK(test::readAll(**box, 1) == "one\n");
  auto dir = maildirStorePath(h.root, "Archive");
  REQUIRE(dir);
  CHECK(listed(*dir).size() == 2);
}

TEST_CASE("append commit (Maildir): a file name already taken sends it back for another") {
  Sessions h;
  auto s = h.open();
  auto box = s->select("INBOX", false);
  REQUIRE(box);
  ManualRunner runner;
  Outcome out;
  // Past the size held in memory, so that the file (and its name) is in
  // tmp/ before the commit.
  std::string body;
  while (body.size() <= 128 * 1024) body += "hello\n";
  auto tx = begin(*s, "INBOX", body);
  const auto tmpNames = listDir(h.root + "/tmp");
  REQUIRE(tmpNames.size() == 1);
  // What step 2 will link to, taken first by someone else.
  const std::string taken = h.root + "/cur/" + tmpNames[0] + ",S=" + std::to_string(body.size()) +
                            ",W=" + std::to_string(body.size() / 6 * 7) + ":2,S";
  REQUIRE(atomicWrite(taken, "not ours\n", 0600));
  commitAppend(tx, {kFlagSeen, {}}, 0, &runner, out.done());
  tx.reset();
  runner.step();  // EEXIST: back to step 1, a new name, step 2 again
  REQUIRE(runner.waiting() == 1);
  runner.step();  // placed, published
  runner.step();  // log synced
  REQUIRE(out.calls == 1);
  REQUIRE(*out.result);
  CHECK(listDir(h.root + "/cur").size() == 2);
  CHECK(listDir(h.root + "/tmp").empty());
  REQUIRE((*box)->sync(true));
  // The one taken came in as another writer's message: both have UIDs.
  REQUIRE((*box)->messages().size() == 2);
  bool found = false;
  for (size_t i = 0; i < 2; ++i)
    if ((*box)->messages()[i].uid == out.uid()) {
      found = true;
      CHECK(test::readAll(**box, i) == body);
    }
  CHECK(found);
}

TEST_CASE("append commit (Maildir): errors end the commit and leave nothing behind") {
  Sessions h;
  auto s = h.open();
  auto dir = maildirStorePath(h.root, "Junk");
  REQUIRE(dir);
  ManualRunner runner;
  Outcome out;
  SECTION("the folder is gone before step 1") {
    auto tx = begin(*s, "Junk", "x\n");
    REQUIRE(s->remove("Junk"));
    commitAppend(tx, {}, 0, &runner, out.done());
    // Refused on this thread: done already ran.
    CHECK(runner.waiting() == 0);
    REQUIRE(out.calls == 1);
    REQUIRE_FALSE(*out.result);
    CHECK(out.result->error().errnum == ENOENT);
  }
  SECTION("cur/ is gone before step 2") {
    auto tx = begin(*s, "Junk", "x\n");
    commitAppend(tx, {}, 0, &runner, out.done());
    REQUIRE(runner.waiting() == 1);
    REQUIRE(::rename((*dir + "/cur").c_str(), (*dir + "/cur.away").c_str()) == 0);
    runner.step();
    REQUIRE(out.calls == 1);
    REQUIRE_FALSE(*out.result);
    CHECK(out.result->error().errnum == ENOENT);
    tx.reset();
    CHECK(listDir(*dir + "/tmp").empty());
    CHECK(listDir(*dir + "/cur.away").empty());
  }
  SECTION("a transaction committed twice") {
    auto tx = begin(*s, "Junk", "x\n");
    commitAppend(tx, {}, 0, nullptr, out.done());
    REQUIRE(out.calls == 1);
    REQUIRE(*out.result);
    commitAppend(tx, {}, 0, nullptr, out.done());
    REQUIRE(out.calls == 2);
    CHECK_FALSE(*out.result);
    CHECK_FALSE(tx->write("more"));
  }
}

TEST_CASE("append commit (Maildir): the commit ends even when its caller is gone") {
  Sessions h;
  ManualRunner runner;
  bool called = false;
  {
    auto s = h.open();
    auto box = s->select("INBOX", false);  // a state that expects the file
    REQUIRE(box);
    commitAppend(begin(*s, "INBOX", "orphan\n"), {}, 0, &runner, [&](Result<AppendedUids> r) {
      called = true;
      CHECK(r);
    });
  }  // the session and its store are gone
  runner.step();
  runner.step();
  CHECK(called);
  auto s = h.open();
  auto box = s->select("INBOX", false);
  REQUIRE(box);
  REQUIRE((*box)->messages().size() == 1);
  CHECK(test::readAll(**box, 0) == "orphan\n");
  CHECK(listed(h.root).size() == 1);
}

TEST_CASE("append commit (Maildir): a runner that goes away leaves no temporary file") {
  Sessions h;
  auto s = h.open();
  Outcome out;
  {
    ManualRunner runner;
    commitAppend(begin(*s, "INBOX", "never\n"), {}, 0, &runner, out.done());
    REQUIRE(runner.waiting() == 1);
    runner.drop();  // as a pool stopping: work and continuation destroyed unrun
  }
  CHECK(out.calls == 0);
  CHECK(listDir(h.root + "/tmp").empty());
  CHECK(listDir(h.root + "/cur").empty());
}

TEST_CASE("append commit (Maildir): without a runner every step runs here") {
  Sessions h;
  auto s = h.open();
  Outcome out;
  commitAppend(begin(*s, "INBOX", "sync\n"), {kFlagDraft, {}}, 0, nullptr, out.done());
  REQUIRE(out.calls == 1);
  CHECK(out.uid() == 1);
  CHECK(listed(h.root).size() == 1);
}

TEST_CASE("append commit: backends that do not split commit in one Loop step") {
  TempDir tmp;
  ManualRunner runner;
  Outcome out;
  SECTION("mbox") {
    MboxStoreSettings st;
    st.inbox = tmp / "mbox";
    auto s = openMboxStore(st);
    REQUIRE(s);
    commitAppend(begin(**s, "INBOX", "From: a\n\nmbox body\n"), {kFlagSeen, {}}, 0, &runner,
                 out.done());
    CHECK(runner.waiting() == 0);
    REQUIRE(out.calls == 1);
    CHECK(out.uid() == 1);
    auto box = (*s)->select("INBOX", true);
    REQUIRE(box);
    REQUIRE((*box)->messages().size() == 1);
    CHECK((*box)->messages()[0].flags.system == kFlagSeen);
  }
  SECTION("memory") {
    MemoryStore s;
    commitAppend(begin(s, "INBOX", "mem\n"), {}, 0, &runner, out.done());
    CHECK(runner.waiting() == 0);
    REQUIRE(out.calls == 1);
    CHECK(out.uid() == 1);
  }
}

}  // namespace
}  // namespace yubin::store
