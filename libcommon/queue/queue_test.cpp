// Unit tests for the queue: write + commit + scan + read back, group commit
// on an event loop, injected ENOSPC/EIO at every step, restart recovery,
// quarantine of corrupt files, state files, remove, hold and release.
#include "queue/queue.hpp"

#include <event2/event.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "base/fs.hpp"
#include "base/unique_fd.hpp"
#include "queue/test_util.hpp"

using namespace yubin;
using namespace yubin::queue;
using namespace yubin::queue::testing;

namespace {

Envelope envelope(const std::string& sender = "alice@example.org", int rcpts = 1) {
  Envelope env;
  env.sender = sender;
  env.nullSender = sender.empty();
  for (int i = 0; i < rcpts; ++i)
    env.recipients.push_back({"rcpt" + std::to_string(i) + "@example.net", 0, "", ""});
  env.arrivalTime = 1700000000;
  env.clientAddress = "192.0.2.7";
  env.heloName = "client.example";
  return env;
}

std::unique_ptr<Queue> openQueue(const std::string& dir, Fs* fs = nullptr, size_t writeBuffer = 0) {
  QueueOptions o;
  o.spoolDir = dir;
  o.fs = fs;
  if (writeBuffer) o.writeBuffer = writeBuffer;
  auto q = Queue::open(o);
  REQUIRE(q.ok());
  return std::move(*q);
}

std::string randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string slurp(const std::string& path) {
  auto r = readFile(path, 1u << 30);
  REQUIRE(r.ok());
  return *r;
}

void writeRaw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Runs base until done() or a generous deadline (a failure, not a sleep).
void runUntil(event_base* base, const std::function<bool()>& done) {
  bool timedOut = false;
  auto onTimeout = [](evutil_socket_t, short, void* arg) { *static_cast<bool*>(arg) = true; };
  CPtr<struct event, event_free> timer(evtimer_new(base, onTimeout, &timedOut));
  timeval tv{60, 0};
  evtimer_add(timer.get(), &tv);
  while (!done() && !timedOut) event_base_loop(base, EVLOOP_ONCE);
  REQUIRE_FALSE(timedOut);
}

using EventBasePtr = CPtr<event_base, event_base_free>;

}  // namespace

TEST_CASE("write, commitNow, scan and read back byte for byte") {
  TempDir tmp;
  auto q = openQueue(tmp.path(), nullptr, 4096);
  for (const char* d : {"tmp", "queue", "hold", "corrupt", "state"}) {
    struct stat st;
    REQUIRE(::stat((tmp.path() + "/" + d).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
  }

  std::string big = randomBytes(1 << 20, 1);
  std::string crlf;
  for (int i = 0; i < 1000; ++i) crlf += "Line " + std::to_string(i) + " \xe2\x82\xac\r\n";
  std::vector<std::string> bodies = {"", "x", crlf, big};
  std::vector<QueueId> ids;
  for (const std::string& body : bodies) {
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    // Stream it in uneven pieces, some larger than the write buffer.
    size_t pos = 0, step = 1;
    while (pos < body.size()) {
      size_t n = std::min(step, body.size() - pos);
      REQUIRE(m->append(std::string_view(body).substr(pos, n)).ok());
      pos += n;
      step = step * 3 + 1;
    }
    CHECK(m->size() == body.size());
    auto id = q->commitNow(std::move(*m));
    REQUIRE(id.ok());
    ids.push_back(*id);
  }
  CHECK(listNames(tmp.path() + "/tmp").empty());
  auto scanned = q->scan();
  REQUIRE(scanned.ok());
  CHECK(*scanned == ids);  // oldest first

  for (size_t i = 0; i < bodies.size(); ++i) {
    auto f = q->openMessage(ids[i]);
    REQUIRE(f.ok());
    CHECK(f->size() == bodies[i].size());
    Envelope expect = envelope();
    expect.size = bodies[i].size();
    CHECK(f->envelope() == expect);
    auto all = f->readAll();
    REQUIRE(all.ok());
    CHECK(*all == bodies[i]);
    // Chunked, as a delivery agent would stream it.
    std::string joined;
    auto r = f->reader(10000);
    for (;;) {
      auto chunk = r.next();
      REQUIRE(chunk.ok());
      if (chunk->empty()) break;
      CHECK(chunk->size() <= 10000);
      joined += *chunk;
    }
    CHECK(joined == bodies[i]);
    // By offset.
    if (bodies[i].size() > 100) {
      auto part = f->read(50, 30);
      REQUIRE(part.ok());
      CHECK(*part == bodies[i].substr(50, 30));
      auto tail = f->read(bodies[i].size() - 5, 100);
      REQUIRE(tail.ok());
      CHECK(*tail == bodies[i].substr(bodies[i].size() - 5));
    }
    CHECK(f->read(bodies[i].size(), 10)->empty());
    // The file on disk is exactly header + envelope + message + trailer.
    std::string onDisk = slurp(tmp.path() + "/queue/" + ids[i].str());
    CHECK(onDisk.size() == f->messageOffset() + bodies[i].size() + kTrailerSize);
    CHECK(onDisk.substr(f->messageOffset(), bodies[i].size()) == bodies[i]);
    CHECK(verifyImage(onDisk).ok());
    struct stat st;
    REQUIRE(::stat((tmp.path() + "/queue/" + ids[i].str()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("abort and destruction remove the tmp file; begin validates") {
  TempDir tmp;
  auto q = openQueue(tmp.path());
  // More than the write buffer (64 KiB): tmp/<id> exists from then on.
  const std::string big(70000, 'x');
  {
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    REQUIRE(m->append("data").ok());
    REQUIRE(m->append(big).ok());
    CHECK(listNames(tmp.path() + "/tmp") == std::vector<std::string>{m->id().str()});
    m->abort();
    CHECK_FALSE(m->active());
    CHECK(listNames(tmp.path() + "/tmp").empty());
    CHECK_FALSE(m->append("more").ok());
    m->abort();  // idempotent
  }
  {
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    REQUIRE(m->append(big).ok());
    CHECK(listNames(tmp.path() + "/tmp").size() == 1);
  }
  CHECK(listNames(tmp.path() + "/tmp").empty());
  {
    // Moving over an active message aborts the old one.
    auto a = q->begin(envelope());
    auto b = q->begin(envelope());
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    REQUIRE(a->append(big).ok());
    REQUIRE(b->append(big).ok());
    CHECK(listNames(tmp.path() + "/tmp").size() == 2);
    *a = std::move(*b);
    CHECK_FALSE(b->active());
    CHECK(a->active());
    CHECK(listNames(tmp.path() + "/tmp").size() == 1);
  }
  {
    // A small message is never created if it is aborted.
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    REQUIRE(m->append("small\r\n").ok());
    PendingMessage moved = std::move(*m);
    CHECK_FALSE(m->active());
    CHECK(moved.active());
  }
  CHECK(listNames(tmp.path() + "/tmp").empty());
  Envelope bad = envelope();
  bad.recipients.clear();
  auto m = q->begin(bad);
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().errnum == EINVAL);
  CHECK(listNames(tmp.path() + "/tmp").empty());
  CHECK(listNames(tmp.path() + "/queue").empty());
}

TEST_CASE("createOnFlush: a small message costs the loop no file system call until commit") {
  bool async = GENERATE(false, true);
  bool failCreate = GENERATE(false, true);
  CAPTURE(async, failCreate);
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  QueueOptions o;
  o.spoolDir = tmp.path();
  o.fs = &fs;
  o.createOnFlush = true;
  auto opened = Queue::open(o);
  REQUIRE(opened.ok());
  auto q = std::move(*opened);
  if (async) REQUIRE(q->attachLoop(base.get()).ok());
  int opens = fs.calls(Op::Open), writes = fs.calls(Op::Write);
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  REQUIRE(m->append("Subject: small\r\n\r\nbody\r\n").ok());
  CHECK(fs.calls(Op::Open) == opens);
  CHECK(fs.calls(Op::Write) == writes);
  CHECK(listNames(tmp.path() + "/tmp").empty());
  // The disk is full when the committer creates the file.
  if (failCreate) fs.failAt(Op::Open, 1, ENOSPC);
  std::optional<Result<QueueId>> r;
  if (async) {
    q->commit(std::move(*m), [&](Result<QueueId> x) { r = std::move(x); });
    runUntil(base.get(), [&] { return r.has_value(); });
  } else {
    r = q->commitNow(std::move(*m));
  }
  if (failCreate) {
    REQUIRE_FALSE(r->ok());
    CHECK(r->error().errnum == ENOSPC);
    CHECK(listNames(tmp.path() + "/queue").empty());
  } else {
    REQUIRE(r->ok());
    CHECK(*q->openMessage(**r)->readAll() == "Subject: small\r\n\r\nbody\r\n");
  }
  CHECK(listNames(tmp.path() + "/tmp").empty());
  q.reset();
}

TEST_CASE("short writes are completed") {
  TempDir tmp;
  FaultFs fs;
  fs.setMaxWrite(7);
  auto q = openQueue(tmp.path(), &fs, 100);
  std::string body = randomBytes(5000, 2);
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  REQUIRE(m->append(body.substr(0, 2000)).ok());
  REQUIRE(m->append(body.substr(2000)).ok());
  auto id = q->commitNow(std::move(*m));
  REQUIRE(id.ok());
  CHECK(*q->openMessage(*id)->readAll() == body);
}

TEST_CASE("group commit: commits made while a directory fsync runs share the next one") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openQueue(tmp.path(), &fs);
  REQUIRE(q->attachLoop(base.get()).ok());

  const int n = 200;
  // Hold the first directory fsync, as a slow disk does, so the other
  // commits pile up behind it.
  fs.closeDirGate();
  int dirFsyncsBefore = fs.calls(Op::FsyncDir);
  std::map<std::string, std::string> expected;  // id -> body
  int done = 0;
  auto commitOne = [&](int i) {
    auto m = q->begin(envelope("s" + std::to_string(i) + "@example.org"));
    REQUIRE(m.ok());
    std::string body = "Message " + std::to_string(i) + "\r\n" +
                       randomBytes(static_cast<size_t>(i) * 37, static_cast<uint32_t>(i));
    REQUIRE(m->append(body).ok());
    expected[m->id().str()] = body;
    q->commit(std::move(*m), [&](Result<QueueId> r) {
      REQUIRE(r.ok());
      // The guarantee: when the callback runs, the file is in queue/.
      CHECK(::access((tmp.path() + "/queue/" + r->str()).c_str(), F_OK) == 0);
      ++done;
    });
  };
  commitOne(0);
  fs.waitForDirGateWaiters(1);
  for (int i = 1; i < n; ++i) commitOne(i);
  CHECK(done == 0);  // never inside commit()
  // The file steps of the others go on while the directory fsync is held:
  // every file gets fsync'd and renamed, none is reported.
  REQUIRE(fs.waitForCalls(Op::Rename, n));
  CHECK(fs.calls(Op::Fsync) == n);
  CHECK(done == 0);
  fs.openDirGate();
  runUntil(base.get(), [&] { return done == n; });

  int dirFsyncs = fs.calls(Op::FsyncDir) - dirFsyncsBefore;
  INFO("directory fsyncs: " << dirFsyncs << " for " << n << " messages");
  // The held one, then one for the 199 renamed meanwhile; a few more only
  // if threads were preempted between a rename and handing the job over
  // (the test waits for the renames, not for the hand-over).
  CHECK(dirFsyncs >= 2);
  CHECK(dirFsyncs <= 10);
  CHECK(fs.calls(Op::Fsync) == n);

  auto ids = q->scan();
  REQUIRE(ids.ok());
  REQUIRE(ids->size() == static_cast<size_t>(n));
  for (const QueueId& id : *ids) {
    auto f = q->openMessage(id);
    REQUIRE(f.ok());
    CHECK(*f->readAll() == expected[id.str()]);
  }
  CHECK(listNames(tmp.path() + "/tmp").empty());
  q.reset();  // before the event_base
}

TEST_CASE("group commit: a single-threaded committer batches what is waiting") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  QueueOptions o;
  o.spoolDir = tmp.path();
  o.fs = &fs;
  o.fsyncThreads = 1;
  auto opened = Queue::open(o);
  REQUIRE(opened.ok());
  auto q = std::move(*opened);
  REQUIRE(q->attachLoop(base.get()).ok());
  const int n = 50;
  int dirFsyncsBefore = fs.calls(Op::FsyncDir);
  // The first file fsync is held; the other 49 wait, then go as one batch.
  fs.closeGate();
  int done = 0;
  for (int i = 0; i < n; ++i) {
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    REQUIRE(m->append("message " + std::to_string(i) + "\r\n").ok());
    q->commit(std::move(*m), [&](Result<QueueId> r) {
      REQUIRE(r.ok());
      ++done;
    });
    if (i == 0) fs.waitForGateWaiters(1);
  }
  fs.openGate();
  runUntil(base.get(), [&] { return done == n; });
  CHECK(fs.calls(Op::FsyncDir) - dirFsyncsBefore == 1);
  CHECK(fs.maxConcurrentFsyncs() == 1);
  CHECK(q->scan()->size() == static_cast<size_t>(n));
  q.reset();
}

TEST_CASE("group commit: sessions that commit again from their callbacks") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openQueue(tmp.path(), &fs);
  REQUIRE(q->attachLoop(base.get()).ok());
  const int sessions = 8, perSession = 25;
  int done = 0;
  std::function<void(int, int)> next = [&](int s, int k) {
    if (k == perSession) return;
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    REQUIRE(
        m->append("session " + std::to_string(s) + " message " + std::to_string(k) + "\r\n").ok());
    q->commit(std::move(*m), [&, s, k](Result<QueueId> r) {
      REQUIRE(r.ok());
      ++done;
      next(s, k + 1);
    });
  };
  for (int s = 0; s < sessions; ++s) next(s, 0);
  runUntil(base.get(), [&] { return done == sessions * perSession; });
  CHECK(q->scan()->size() == static_cast<size_t>(sessions * perSession));
  CHECK(fs.calls(Op::FsyncDir) <= sessions * perSession + 1);
  q.reset();
}

TEST_CASE("a cancelled callback does not run, the commit still happens") {
  TempDir tmp;
  EventBasePtr base(event_base_new());
  auto q = openQueue(tmp.path());
  REQUIRE(q->attachLoop(base.get()).ok());
  bool cancelledRan = false;
  int done = 0;
  auto a = q->begin(envelope());
  auto b = q->begin(envelope());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CommitTicket t = q->commit(std::move(*a), [&](Result<QueueId>) { cancelledRan = true; });
  q->commit(std::move(*b), [&](Result<QueueId> r) {
    CHECK(r.ok());
    ++done;
  });
  q->cancelCallback(t);
  q->cancelCallback(12345);  // unknown: ignored
  runUntil(base.get(), [&] { return done == 1; });
  // The committer's threads finish in any order: a's commit may still be
  // under way when b's callback runs. It completes, and its result comes
  // back to the loop (which wakes for it) and is dropped.
  runUntil(base.get(), [&] { return q->scan()->size() == 2; });
  event_base_loop(base.get(), EVLOOP_NONBLOCK);
  CHECK_FALSE(cancelledRan);
  q.reset();
}

TEST_CASE("injected errors at each step: error callback, nothing left in queue/ or tmp/") {
  struct Case {
    const char* name;
    Op op;
    int nth;
    size_t bodySize;  // > write buffer: the error shows at append
    bool failsAtAppend;
  };
  auto c = GENERATE(Case{"write at commit", Op::Write, 1, 10, false},
                    Case{"write at append", Op::Write, 1, 300000, true},
                    Case{"second write at append", Op::Write, 2, 300000, true},
                    Case{"header patch", Op::Pwrite, 1, 10, false},
                    Case{"file fsync", Op::Fsync, 1, 10, false},
                    Case{"rename", Op::Rename, 1, 10, false},
                    Case{"directory fsync", Op::FsyncDir, 1, 10, false});
  auto err = GENERATE(ENOSPC, EIO);
  bool async = GENERATE(false, true);
  CAPTURE(c.name, err, async);

  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openQueue(tmp.path(), &fs);
  if (async) REQUIRE(q->attachLoop(base.get()).ok());
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  fs.failAt(c.op, c.nth, err);
  std::string body(c.bodySize, 'a');
  // Append in two halves so "second write" is reached.
  auto st1 = m->append(std::string_view(body).substr(0, body.size() / 2));
  auto st2 = m->append(std::string_view(body).substr(body.size() / 2));
  if (c.failsAtAppend) {
    CHECK_FALSE((st1.ok() && st2.ok()));
    // The error sticks.
    CHECK_FALSE(m->append("more").ok());
  } else {
    CHECK(st1.ok());
    CHECK(st2.ok());
  }
  std::optional<Result<QueueId>> result;
  if (async) {
    q->commit(std::move(*m), [&](Result<QueueId> r) { result = std::move(r); });
    runUntil(base.get(), [&] { return result.has_value(); });
  } else {
    result = q->commitNow(std::move(*m));
  }
  REQUIRE_FALSE(result->ok());
  CHECK(result->error().errnum == err);
  CHECK(listNames(tmp.path() + "/queue").empty());
  CHECK(listNames(tmp.path() + "/tmp").empty());

  // The queue still works once the disk does.
  fs.clearFaults();
  auto m2 = q->begin(envelope());
  REQUIRE(m2.ok());
  REQUIRE(m2->append("ok\r\n").ok());
  REQUIRE(q->commitNow(std::move(*m2)).ok());
  CHECK(listNames(tmp.path() + "/queue").size() == 1);
  q.reset();
}

TEST_CASE("a failed directory fsync fails the whole batch and removes its files") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openQueue(tmp.path(), &fs);
  REQUIRE(q->attachLoop(base.get()).ok());
  bool sticky = GENERATE(false, true);
  CAPTURE(sticky);
  fs.closeGate();
  // The first batch (however many messages it got) fails; with sticky, all.
  fs.failAt(Op::FsyncDir, 1, EIO, sticky);
  int ok = 0, failed = 0;
  for (int i = 0; i < 10; ++i) {
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    q->commit(std::move(*m), [&](Result<QueueId> r) { r.ok() ? ++ok : ++failed; });
  }
  fs.openGate();
  runUntil(base.get(), [&] { return ok + failed == 10; });
  CHECK(failed >= 1);
  if (sticky) CHECK(failed == 10);
  CHECK(q->scan()->size() == static_cast<size_t>(ok));
  CHECK(listNames(tmp.path() + "/tmp").empty());
  q.reset();
}

namespace {

// A queue whose committer syncs files on `threads` threads, attached to base.
std::unique_ptr<Queue> openParallelQueue(const std::string& dir, FaultFs& fs, event_base* base,
                                         size_t threads) {
  QueueOptions o;
  o.spoolDir = dir;
  o.fs = &fs;
  o.fsyncThreads = threads;
  auto q = Queue::open(o);
  REQUIRE(q.ok());
  REQUIRE((*q)->attachLoop(base).ok());
  return std::move(*q);
}

}  // namespace

TEST_CASE("parallel committer: files committed together are fsync'd at the same time") {
  size_t threads = GENERATE(1, 2, 4, 8);
  CAPTURE(threads);
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openParallelQueue(tmp.path(), fs, base.get(), threads);

  const int n = 40;
  std::map<std::string, std::string> expected;  // id -> body
  int done = 0;
  auto commitOne = [&](int i) {
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    std::string body = "Message " + std::to_string(i) + "\r\n" +
                       randomBytes(static_cast<size_t>(i) * 101, static_cast<uint32_t>(i));
    REQUIRE(m->append(body).ok());
    expected[m->id().str()] = body;
    q->commit(std::move(*m), [&](Result<QueueId> r) {
      REQUIRE(r.ok());
      CHECK(::access((tmp.path() + "/queue/" + r->str()).c_str(), F_OK) == 0);
      ++done;
    });
  };
  // The first message is held in its fsync; each of the other threads
  // takes one of the next 39 at once, so `threads` fsyncs are under way
  // together.
  fs.closeGate();
  commitOne(0);
  fs.waitForGateWaiters(1);
  if (threads > 1) fs.armConcurrencyBarrier(static_cast<int>(threads));
  for (int i = 1; i < n; ++i) commitOne(i);
  fs.openGate();
  runUntil(base.get(), [&] { return done == n; });

  CHECK(fs.maxConcurrentFsyncs() == static_cast<int>(threads));
  CHECK(fs.calls(Op::Fsync) == n);
  auto ids = q->scan();
  REQUIRE(ids.ok());
  REQUIRE(ids->size() == static_cast<size_t>(n));
  for (const QueueId& id : *ids) CHECK(*q->openMessage(id)->readAll() == expected[id.str()]);
  CHECK(listNames(tmp.path() + "/tmp").empty());
  q.reset();
}

TEST_CASE("parallel committer: one failed file fsync among many fails that message only") {
  int failAt = GENERATE(1, 15, 29);  // fsync calls counted after the first message's
  int err = GENERATE(EIO, ENOSPC);
  CAPTURE(failAt, err);
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openParallelQueue(tmp.path(), fs, base.get(), 4);

  const int n = 30;
  std::map<std::string, std::string> expected;
  std::vector<std::string> failedIds;
  int ok = 0;
  auto commitOne = [&](int i) {
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    std::string id = m->id().str();
    std::string body =
        "Body " + std::to_string(i) + "\r\n" + randomBytes(4096, static_cast<uint32_t>(i));
    REQUIRE(m->append(body).ok());
    expected[id] = body;
    q->commit(std::move(*m), [&, id](Result<QueueId> r) {
      if (r.ok()) {
        CHECK(r->str() == id);
        ++ok;
      } else {
        CHECK(r.error().errnum == err);
        failedIds.push_back(id);
      }
    });
  };
  // The first message is held in its directory fsync; the others are
  // fsync'd meanwhile, one of them fails.
  int dirFsyncsBefore = fs.calls(Op::FsyncDir);
  fs.closeDirGate();
  commitOne(0);
  fs.waitForDirGateWaiters(1);
  fs.failAt(Op::Fsync, failAt, err);
  for (int i = 1; i < n; ++i) commitOne(i);
  REQUIRE(fs.waitForCalls(Op::Rename, n - 1));  // all but the failed one
  fs.openDirGate();
  runUntil(base.get(), [&] { return ok + static_cast<int>(failedIds.size()) == n; });

  REQUIRE(failedIds.size() == 1);
  CHECK(ok == n - 1);
  // The others were still made durable, sharing a directory fsync.
  CHECK(fs.calls(Op::FsyncDir) - dirFsyncsBefore >= 2);
  CHECK(fs.calls(Op::FsyncDir) - dirFsyncsBefore <= 10);
  CHECK(listNames(tmp.path() + "/tmp").empty());
  auto names = listNames(tmp.path() + "/queue");
  CHECK(names.size() == static_cast<size_t>(n - 1));
  CHECK(std::find(names.begin(), names.end(), failedIds[0]) == names.end());
  for (const std::string& name : names) {
    auto id = QueueId::parse(name);
    REQUIRE(id);
    CHECK(*q->openMessage(*id)->readAll() == expected[name]);
  }
  q.reset();
}

TEST_CASE("parallel committer: many sessions committing again from their callbacks") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openParallelQueue(tmp.path(), fs, base.get(), 8);
  const int sessions = 50, perSession = 10;
  int done = 0;
  std::map<std::string, std::string> expected;
  std::function<void(int, int)> next = [&](int s, int k) {
    if (k == perSession) return;
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    std::string body = "session " + std::to_string(s) + " message " + std::to_string(k) + "\r\n";
    REQUIRE(m->append(body).ok());
    expected[m->id().str()] = body;
    q->commit(std::move(*m), [&, s, k](Result<QueueId> r) {
      REQUIRE(r.ok());
      ++done;
      next(s, k + 1);
    });
  };
  for (int s = 0; s < sessions; ++s) next(s, 0);
  runUntil(base.get(), [&] { return done == sessions * perSession; });
  auto ids = q->scan();
  REQUIRE(ids.ok());
  REQUIRE(ids->size() == static_cast<size_t>(sessions * perSession));
  for (const QueueId& id : *ids) CHECK(*q->openMessage(id)->readAll() == expected[id.str()]);
  CHECK(fs.calls(Op::Fsync) == sessions * perSession);
  CHECK(fs.maxConcurrentFsyncs() <= 8);
  CHECK(listNames(tmp.path() + "/tmp").empty());
  q.reset();
}

TEST_CASE("an ID collision never overwrites a committed message") {
  TempDir tmp;
  auto q = openQueue(tmp.path());
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  std::string id = m->id().str();
  writeRaw(tmp.path() + "/queue/" + id, "precious");
  auto r = q->commitNow(std::move(*m));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().errnum == EEXIST);
  CHECK(slurp(tmp.path() + "/queue/" + id) == "precious");
  CHECK(listNames(tmp.path() + "/tmp").empty());
}

TEST_CASE("only one process (or Queue) at a time may open a spool for writing") {
  TempDir tmp;
  auto first = openQueue(tmp.path());
  auto m = first->begin(envelope());
  REQUIRE(m.ok());
  REQUIRE(m->append(std::string(70000, 'x')).ok());  // past the buffer: on disk
  auto second = Queue::open({tmp.path()});
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().errnum == EBUSY);
  // The writer's half-written file was not touched by the refused open.
  CHECK(listNames(tmp.path() + "/tmp") == std::vector<std::string>{m->id().str()});
  m->abort();
  first.reset();
  CHECK(Queue::open({tmp.path()}).ok());
}

TEST_CASE("restart recovery: tmp leftovers go, committed messages stay") {
  TempDir tmp;
  std::vector<QueueId> committed;
  {
    auto q = openQueue(tmp.path());
    for (int i = 0; i < 3; ++i) {
      auto m = q->begin(envelope());
      REQUIRE(m.ok());
      REQUIRE(m->append("msg " + std::to_string(i)).ok());
      committed.push_back(*q->commitNow(std::move(*m)));
    }
    REQUIRE(q->saveState(committed[0],
                         MessageState{{RcptState{RcptStatus::Deferred, 1, 5, 6, "451 later"}}})
                .ok());
    // A crash mid-write: the file stays in tmp/ (simulate by writing it).
    writeRaw(tmp.path() + "/tmp/0000000000000001", "yubin-queue 1 half");
    writeRaw(tmp.path() + "/tmp/garbage", "x");
    // A crash between the removal of a message and of its state.
    writeRaw(tmp.path() + "/state/0000000000000002", "yubin-state 1\nrcpts 1:0\n");
    // A crash inside atomicWrite.
    writeRaw(tmp.path() + "/state/" + committed[1].str() + ".tmp.123.456", "half");
    // Something that is not ours.
    writeRaw(tmp.path() + "/queue/README", "?");
  }
  auto q = openQueue(tmp.path());
  CHECK(listNames(tmp.path() + "/tmp").empty());
  CHECK(listNames(tmp.path() + "/state") == std::vector<std::string>{committed[0].str()});
  CHECK(listNames(tmp.path() + "/queue").size() == 3);
  CHECK(listNames(tmp.path() + "/corrupt") == std::vector<std::string>{"README"});
  CHECK(*q->scan() == committed);
  auto st = q->loadState(committed[0], 1);
  REQUIRE(st.ok());
  CHECK(st->rcpts[0].reply == "451 later");
  CHECK(*q->openMessage(committed[2])->readAll() == "msg 2");
}

TEST_CASE("corrupt files are quarantined, never crash, never come back") {
  TempDir tmp;
  auto q = openQueue(tmp.path());
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  REQUIRE(m->append("Subject: x\r\n\r\nbody\r\n").ok());
  QueueId good = *q->commitNow(std::move(*m));
  // Damage to a version 1 file (no trailer: whole by construction) is
  // quarantined when it is read; a version 2 file without its trailer is
  // not a committed message (a spare, a commit under way: ENOENT, left
  // alone) and recovery removes it at the next start.
  auto env1 = parseImage(slurp(tmp.path() + "/queue/" + good.str()));
  REQUIRE(env1.ok());
  std::string valid = encodeImage(*env1, "Subject: x\r\n\r\nbody\r\n", 1);
  {
    IdGenerator spareIds(78);
    for (std::string bytes : {std::string(), encodeImage(*env1, "x").substr(0, 300)}) {
      QueueId id = spareIds.next();
      writeRaw(tmp.path() + "/queue/" + id.str(), bytes);
      auto f = q->load(id);
      REQUIRE_FALSE(f.ok());
      CHECK(f.error().errnum == ENOENT);
      CHECK(::access((tmp.path() + "/queue/" + id.str()).c_str(), F_OK) == 0);
      REQUIRE(::unlink((tmp.path() + "/queue/" + id.str()).c_str()) == 0);
    }
  }

  std::vector<std::pair<std::string, std::string>> damaged = {
      {"truncated in header", valid.substr(0, 20)},
      {"truncated in envelope", valid.substr(0, 80)},
      {"truncated in message", valid.substr(0, valid.size() - 3)},
      {"bad magic", "X" + valid.substr(1)},
      {"wrong version", valid.substr(0, 12) + "7" + valid.substr(13)},
      {"trailing bytes", valid + "junk"},
      {"absurd envelope length", valid.substr(0, 14) + "9999999999" + valid.substr(24)},
      {"absurd message length", valid.substr(0, 25) + "09999999999999999999" + valid.substr(45)},
      {"uncommitted header", valid.substr(0, 25) + std::string(20, 'x') + valid.substr(45)},
      {"random bytes", randomBytes(300, 9)},
  };
  IdGenerator gen(77);
  for (auto& [name, bytes] : damaged) {
    CAPTURE(name);
    QueueId id = gen.next();
    writeRaw(tmp.path() + "/queue/" + id.str(), bytes);
    REQUIRE(q->saveState(id, MessageState{{RcptState{}}}).ok());
    auto f = q->load(id);
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().errnum == EBADMSG);
    CHECK(::access((tmp.path() + "/queue/" + id.str()).c_str(), F_OK) != 0);
    CHECK(slurp(tmp.path() + "/corrupt/" + id.str()) == bytes);
    CHECK(::access((tmp.path() + "/corrupt/" + id.str() + ".state").c_str(), F_OK) == 0);
    CHECK(::access((tmp.path() + "/state/" + id.str()).c_str(), F_OK) != 0);
  }
  CHECK(*q->scan() == std::vector<QueueId>{good});

  // A symlink and a FIFO are not followed or waited on.
  QueueId link = gen.next(), fifo = gen.next();
  REQUIRE(::symlink("/etc/passwd", (tmp.path() + "/queue/" + link.str()).c_str()) == 0);
  REQUIRE(::mkfifo((tmp.path() + "/queue/" + fifo.str()).c_str(), 0600) == 0);
  for (const QueueId& id : {link, fifo}) {
    auto f = q->load(id);
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().errnum == EBADMSG);
  }
  CHECK(*q->scan() == std::vector<QueueId>{good});
  CHECK(q->load(good).ok());

  // A missing message is an I/O error, not corruption: nothing is moved.
  auto missing = q->load(gen.next());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().errnum == ENOENT);

  // Quarantining the same ID twice keeps both copies.
  QueueId twice = gen.next();
  writeRaw(tmp.path() + "/queue/" + twice.str(), "one");
  REQUIRE(q->quarantine(twice).ok());
  writeRaw(tmp.path() + "/queue/" + twice.str(), "two");
  REQUIRE(q->quarantine(twice).ok());
  int copies = 0;
  for (const std::string& n : listNames(tmp.path() + "/corrupt"))
    if (n.rfind(twice.str(), 0) == 0) ++copies;
  CHECK(copies == 2);
}

TEST_CASE("an I/O error while reading is not corruption") {
  TempDir tmp;
  FaultFs fs;
  auto q = openQueue(tmp.path(), &fs);
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  QueueId id = *q->commitNow(std::move(*m));
  fs.failAt(Op::Pread, 1, EIO);
  auto f = q->load(id);
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().errnum == EIO);
  CHECK(*q->scan() == std::vector<QueueId>{id});  // still there for a retry
}

TEST_CASE("per-recipient state: save, load, missing, corrupt") {
  TempDir tmp;
  auto q = openQueue(tmp.path());
  auto m = q->begin(envelope("a@example.org", 3));
  REQUIRE(m.ok());
  QueueId id = *q->commitNow(std::move(*m));

  auto fresh = q->loadState(id, 3);
  REQUIRE(fresh.ok());
  CHECK(fresh->rcpts.size() == 3);
  for (const RcptState& r : fresh->rcpts) CHECK(r == RcptState{});

  MessageState st;
  st.rcpts = {{RcptStatus::Delivered, 1, 100, 0, "250 ok"},
              {RcptStatus::Deferred, 2, 200, 900, "421 busy"},
              {RcptStatus::Bounced, 1, 300, 0, "550 5.1.1 unknown"}};
  REQUIRE(q->saveState(id, st).ok());
  auto back = q->loadState(id, 3);
  REQUIRE(back.ok());
  CHECK(*back == st);
  st.rcpts[1] = {RcptStatus::Delivered, 3, 1000, 0, "250 finally"};
  REQUIRE(q->saveState(id, st).ok());
  CHECK(*q->loadState(id, 3) == st);
  CHECK(listNames(tmp.path() + "/state") == std::vector<std::string>{id.str()});

  auto mismatch = q->loadState(id, 2);
  REQUIRE_FALSE(mismatch.ok());
  CHECK(mismatch.error().errnum == EBADMSG);
  writeRaw(tmp.path() + "/state/" + id.str(), "yubin-state 1\nrcpts 1:3\n");
  auto bad = q->loadState(id, 3);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().errnum == EBADMSG);
}

TEST_CASE("remove deletes message then state; hold and release move between folders") {
  TempDir tmp;
  FaultFs fs;
  auto q = openQueue(tmp.path(), &fs);
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  QueueId id = *q->commitNow(std::move(*m));
  REQUIRE(q->saveState(id, MessageState{{RcptState{RcptStatus::Held, 0, 0, 0, ""}}}).ok());

  REQUIRE(q->hold(id).ok());
  CHECK(q->scan()->empty());
  CHECK(*q->scan(Area::Hold) == std::vector<QueueId>{id});
  CHECK(q->openMessage(id, Area::Hold).ok());
  CHECK_FALSE(q->hold(id).ok());
  REQUIRE(q->release(id).ok());
  CHECK(*q->scan() == std::vector<QueueId>{id});

  // If the message cannot be removed, its state stays too.
  fs.failAt(Op::Unlink, 1, EIO);
  CHECK_FALSE(q->remove(id).ok());
  CHECK(listNames(tmp.path() + "/state").size() == 1);
  CHECK(listNames(tmp.path() + "/queue").size() == 1);
  // Nor when the removal cannot be made durable.
  fs.failAt(Op::FsyncDir, 1, EIO);
  CHECK_FALSE(q->remove(id).ok());
  CHECK(listNames(tmp.path() + "/state").size() == 1);

  // Finishing the job after that crash-like failure: the state goes.
  auto again = q->remove(id);
  CHECK(again.error().errnum == ENOENT);
  CHECK(listNames(tmp.path() + "/state").empty());

  // The normal case, from hold/.
  auto m2 = q->begin(envelope());
  REQUIRE(m2.ok());
  QueueId id2 = *q->commitNow(std::move(*m2));
  REQUIRE(q->saveState(id2, MessageState{{RcptState{}}}).ok());
  REQUIRE(q->hold(id2).ok());
  REQUIRE(q->remove(id2).ok());
  CHECK(listNames(tmp.path() + "/hold").empty());
  CHECK(listNames(tmp.path() + "/state").empty());

  // A message without a state file (delivered at its first attempt): the
  // unlink is the whole removal, with no directory fsync to fail.
  auto m3 = q->begin(envelope());
  REQUIRE(m3.ok());
  QueueId id3 = *q->commitNow(std::move(*m3));
  const int dirSyncs = fs.calls(Op::FsyncDir);
  REQUIRE(q->remove(id3).ok());
  CHECK(fs.calls(Op::FsyncDir) == dirSyncs);
  CHECK(listNames(tmp.path() + "/queue").empty());
}

TEST_CASE("housekeeper: removals with a state file share one directory fsync") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openQueue(tmp.path(), &fs);
  REQUIRE(q->attachLoop(base.get()).ok());
  const int n = 100;
  std::vector<QueueId> ids;
  for (int i = 0; i < n; ++i) {
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    ids.push_back(*q->commitNow(std::move(*m)));
    // Every other message has a state file (it was deferred once).
    if (i % 2 == 0)
      REQUIRE(q->saveState(ids.back(),
                           MessageState{{RcptState{RcptStatus::Delivered, 1, 5, 0, "250 ok"}}})
                  .ok());
  }
  // Hold the first directory fsync so the others pile up behind it.
  fs.closeDirGate();
  const int dirSyncsBefore = fs.calls(Op::FsyncDir);
  int done = 0;
  q->removeLater(ids[0], [&](Status st) {
    CHECK(st.ok());
    ++done;
  });
  fs.waitForDirGateWaiters(1);
  for (int i = 1; i < n; ++i)
    q->removeLater(ids[i], [&](Status st) {
      CHECK(st.ok());
      ++done;
    });
  CHECK(done == 0);  // never inside the call
  // Every unlink of a message happens while the fsync is held; the state
  // files (after the fsync) do not.
  REQUIRE(fs.waitForCalls(Op::Unlink, n + n / 2));
  fs.openDirGate();
  runUntil(base.get(), [&] { return done == n; });
  const int dirSyncs = fs.calls(Op::FsyncDir) - dirSyncsBefore;
  INFO("directory fsyncs: " << dirSyncs << " for " << n / 2 << " removals with a state file");
  CHECK(dirSyncs >= 2);
  CHECK(dirSyncs <= 10);  // not one per message
  CHECK(listNames(tmp.path() + "/queue").empty());
  CHECK(listNames(tmp.path() + "/state").empty());

  // A removal of a message that is gone: ENOENT, from the loop.
  std::optional<Status> gone;
  q->removeLater(ids[0], [&](Status st) { gone = st; });
  runUntil(base.get(), [&] { return gone.has_value(); });
  REQUIRE_FALSE(gone->ok());
  CHECK(gone->error().errnum == ENOENT);
  q.reset();
}

TEST_CASE("housekeeper: a failed directory fsync keeps the state file of a removal") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openQueue(tmp.path(), &fs);
  REQUIRE(q->attachLoop(base.get()).ok());
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  QueueId id = *q->commitNow(std::move(*m));
  MessageState st{{RcptState{RcptStatus::Deferred, 1, 5, 60, "451 later"}}};
  REQUIRE(q->saveState(id, st).ok());
  fs.failAt(Op::FsyncDir, 1, EIO);
  std::optional<Status> r;
  q->removeLater(id, [&](Status s) { r = s; });
  runUntil(base.get(), [&] { return r.has_value(); });
  REQUIRE_FALSE(r->ok());
  CHECK(r->error().errnum == EIO);
  CHECK(listNames(tmp.path() + "/queue").empty());
  CHECK(*q->loadState(id, 1) == st);  // a crash that brings it back finds its state
  q.reset();
}

TEST_CASE("housekeeper: state saves off the loop, shared fsync, failures leave the old state") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openQueue(tmp.path(), &fs);
  REQUIRE(q->attachLoop(base.get()).ok());
  const int n = 60;
  std::vector<QueueId> ids;
  for (int i = 0; i < n; ++i) {
    auto m = q->begin(envelope("a@example.org", 2));
    REQUIRE(m.ok());
    ids.push_back(*q->commitNow(std::move(*m)));
  }
  auto stateOf = [](int i) {
    return MessageState{
        {RcptState{RcptStatus::Delivered, 1, 100 + i, 0, "250 ok " + std::to_string(i)},
         RcptState{RcptStatus::Deferred, 2, 200 + i, 900 + i, "421 busy"}}};
  };
  fs.closeDirGate();
  const int dirSyncsBefore = fs.calls(Op::FsyncDir);
  const int fsyncsBefore = fs.calls(Op::Fsync);
  int done = 0;
  auto save = [&](int i) {
    q->saveStateLater(ids[static_cast<size_t>(i)], stateOf(i), [&](Status st) {
      CHECK(st.ok());
      ++done;
    });
  };
  save(0);
  fs.waitForDirGateWaiters(1);
  for (int i = 1; i < n; ++i) save(i);
  REQUIRE(fs.waitForCalls(Op::Replace, n));
  CHECK(done == 0);
  fs.openDirGate();
  runUntil(base.get(), [&] { return done == n; });
  CHECK(fs.calls(Op::Fsync) - fsyncsBefore == n);  // every file
  const int dirSyncs = fs.calls(Op::FsyncDir) - dirSyncsBefore;
  INFO("directory fsyncs: " << dirSyncs << " for " << n << " saves");
  CHECK(dirSyncs >= 2);
  CHECK(dirSyncs <= 10);
  for (int i = 0; i < n; ++i) CHECK(*q->loadState(ids[static_cast<size_t>(i)], 2) == stateOf(i));

  // ENOSPC at each step of a save: the error comes back, the old state
  // stays as it was, no temporary file is left.
  for (Op op : {Op::Open, Op::Write, Op::Fsync, Op::Replace, Op::FsyncDir}) {
    INFO("failing op " << static_cast<int>(op));
    fs.failAt(op, 1, ENOSPC);
    std::optional<Status> r;
    MessageState newer = stateOf(999);
    q->saveStateLater(ids[1], newer, [&](Status s) { r = s; });
    runUntil(base.get(), [&] { return r.has_value(); });
    REQUIRE_FALSE(r->ok());
    CHECK(r->error().errnum == ENOSPC);
    if (op != Op::FsyncDir) CHECK(*q->loadState(ids[1], 2) == stateOf(1));
    fs.clearFaults();
    for (const auto& name : listNames(tmp.path() + "/state"))
      CHECK(name.find(".tmp.") == std::string::npos);
  }
  // The synchronous saveState goes through the same Fs.
  fs.failAt(Op::Write, 1, ENOSPC);
  auto sync = q->saveState(ids[2], stateOf(7));
  REQUIRE_FALSE(sync.ok());
  CHECK(sync.error().errnum == ENOSPC);
  CHECK(*q->loadState(ids[2], 2) == stateOf(2));

  // A cancelled callback does not run; the save is still made.
  bool ran = false;
  CommitTicket t = q->saveStateLater(ids[3], stateOf(33), [&](Status) { ran = true; });
  q->cancelCallback(t);
  std::optional<Status> after;
  q->saveStateLater(ids[4], stateOf(44), [&](Status s) { after = s; });
  runUntil(base.get(), [&] { return after.has_value(); });
  REQUIRE(fs.waitForCalls(Op::Replace, n + 3));
  q.reset();  // joins the threads: every job handed over is done
  CHECK_FALSE(ran);
  auto q2 = openQueue(tmp.path());
  CHECK(*q2->loadState(ids[3], 2) == stateOf(33));
  CHECK(*q2->loadState(ids[4], 2) == stateOf(44));
}

// ---------------------------------------------------------------- spares

namespace {

// Polls pred with a deadline (a failure, not a sleep).
bool eventually(const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::unique_ptr<Queue> openWithSpares(const std::string& dir, Fs* fs, size_t maxSpares,
                                      size_t writeBuffer = 0) {
  QueueOptions o;
  o.spoolDir = dir;
  o.fs = fs;
  o.maxSpares = maxSpares;
  o.createOnFlush = true;
  if (writeBuffer) o.writeBuffer = writeBuffer;
  auto q = Queue::open(o);
  REQUIRE(q.ok());
  return std::move(*q);
}

Result<QueueId> commitOnLoop(Queue& q, event_base* base, PendingMessage&& m) {
  std::optional<Result<QueueId>> r;
  q.commit(std::move(m), [&](Result<QueueId> x) { r = std::move(x); });
  runUntil(base, [&] { return r.has_value(); });
  return std::move(*r);
}

// Files in queue/ and their sizes.
std::map<std::string, off_t> queueSizes(const std::string& spool) {
  std::map<std::string, off_t> out;
  for (const std::string& n : listNames(spool + "/queue")) {
    struct stat st;
    if (::stat((spool + "/queue/" + n).c_str(), &st) == 0) out[n] = st.st_size;
  }
  return out;
}

}  // namespace

TEST_CASE("a commit into a spare costs one file fsync: no rename, no directory fsync") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openWithSpares(tmp.path(), &fs, 8);
  REQUIRE(q->attachLoop(base.get()).ok());
  REQUIRE(eventually([&] { return q->sparesReady() >= 4; }));
  // Spares are empty files in queue/ that nobody lists.
  CHECK(queueSizes(tmp.path()).size() >= 4);
  for (auto& [name, size] : queueSizes(tmp.path())) CHECK(size == 0);
  CHECK(q->scan()->empty());

  // Every directory fsync from now on waits: the commit must not need one.
  fs.closeDirGate();
  const int fsyncs = fs.calls(Op::Fsync), renames = fs.calls(Op::Rename),
            dirFsyncs = fs.calls(Op::FsyncDir), opens = fs.calls(Op::Open);
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  CHECK(m->inSpare());
  const QueueId id = m->id();
  CHECK(q->uncommitted(id));
  CHECK(q->hold(id).error().errnum == ENOENT);
  CHECK(q->remove(id).error().errnum == ENOENT);
  const std::string body = "Subject: spare\r\n\r\none flush\r\n";
  REQUIRE(m->append(body).ok());
  CHECK(fs.calls(Op::Open) == opens);  // no file created on the loop
  auto r = commitOnLoop(*q, base.get(), std::move(*m));
  REQUIRE(r.ok());
  CHECK(*r == id);
  CHECK(fs.calls(Op::Fsync) == fsyncs + 1);
  CHECK(fs.calls(Op::Rename) == renames);
  CHECK(fs.calls(Op::FsyncDir) == dirFsyncs);
  CHECK_FALSE(q->uncommitted(id));
  CHECK(listNames(tmp.path() + "/tmp").empty());
  CHECK(verifyImage(slurp(tmp.path() + "/queue/" + id.str())).ok());
  CHECK(*q->scan() == std::vector<QueueId>{id});
  auto f = q->load(id);
  REQUIRE(f.ok());
  CHECK(*f->readAll() == body);
  CHECK(f->envelope().arrivalTime == 1700000000);  // the caller's, not the spare's
  fs.openDirGate();

  // Destroying the queue removes the spares nobody took.
  q.reset();
  CHECK(listNames(tmp.path() + "/queue") == std::vector<std::string>{id.str()});
}

TEST_CASE("with the reserve empty a commit takes the tmp/ + rename + directory fsync path") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openWithSpares(tmp.path(), &fs, 8);
  // No spare gets ready: their batch's directory fsync is held.
  fs.closeDirGate();
  REQUIRE(q->attachLoop(base.get()).ok());
  CHECK(q->sparesReady() == 0);
  const int renames = fs.calls(Op::Rename);
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  CHECK_FALSE(m->inSpare());
  const QueueId id = m->id();
  REQUIRE(m->append("Subject: fallback\r\n\r\nx\r\n").ok());
  std::optional<Result<QueueId>> r;
  q->commit(std::move(*m), [&](Result<QueueId> x) { r = std::move(x); });
  // The spares' batch and the commit's rename both wait for queue/'s fsync.
  fs.waitForDirGateWaiters(2);
  CHECK_FALSE(r.has_value());
  fs.openDirGate();
  runUntil(base.get(), [&] { return r.has_value(); });
  REQUIRE(r->ok());
  CHECK(**r == id);
  CHECK(fs.calls(Op::Rename) == renames + 1);
  CHECK(listNames(tmp.path() + "/tmp").empty());
  CHECK(verifyImage(slurp(tmp.path() + "/queue/" + id.str())).ok());
  REQUIRE(eventually([&] { return q->sparesReady() >= 4; }));
  CHECK(*q->scan() == std::vector<QueueId>{id});
}

TEST_CASE("an aborted message gives back an untouched spare and removes a written one") {
  TempDir tmp;
  EventBasePtr base(event_base_new());
  auto q = openWithSpares(tmp.path(), nullptr, 8, 1024);
  REQUIRE(q->attachLoop(base.get()).ok());
  REQUIRE(eventually([&] { return q->sparesReady() >= 4; }));
  size_t ready = q->sparesReady();
  auto m = q->begin(envelope());
  REQUIRE(m.ok());
  REQUIRE(m->inSpare());
  QueueId first = m->id();
  REQUIRE(m->append("small").ok());
  m->abort();  // nothing written to the file yet: back into the reserve
  CHECK(q->sparesReady() >= ready);
  auto again = q->begin(envelope());
  REQUIRE(again.ok());
  CHECK(again->id() == first);
  // Past the write buffer, bytes reach the spare: aborting removes it.
  REQUIRE(again->append(std::string(4000, 'x')).ok());
  CHECK(queueSizes(tmp.path())[first.str()] > 0);
  again->abort();
  CHECK(queueSizes(tmp.path()).count(first.str()) == 0);
  CHECK_FALSE(q->uncommitted(first));
  CHECK(q->scan()->empty());
}

TEST_CASE("a large message streams into its spare and verifies") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openWithSpares(tmp.path(), &fs, 8, 4096);
  REQUIRE(q->attachLoop(base.get()).ok());
  REQUIRE(eventually([&] { return q->sparesReady() >= 1; }));
  auto m = q->begin(envelope("big@example.org", 3));
  REQUIRE(m.ok());
  REQUIRE(m->inSpare());
  std::string body = randomBytes(300000, 5);
  for (size_t off = 0; off < body.size(); off += 777)
    REQUIRE(m->append(std::string_view(body).substr(off, 777)).ok());
  REQUIRE(m->append("").ok());
  const int renames = fs.calls(Op::Rename);
  auto r = commitOnLoop(*q, base.get(), std::move(*m));
  REQUIRE(r.ok());
  CHECK(fs.calls(Op::Rename) == renames);
  CHECK(verifyImage(slurp(tmp.path() + "/queue/" + r->str())).ok());
  auto f = q->load(*r);
  REQUIRE(f.ok());
  CHECK(*f->readAll() == body);
}

TEST_CASE("ENOSPC while writing into a spare: the commit fails, nothing is left behind") {
  TempDir tmp;
  FaultFs fs;
  EventBasePtr base(event_base_new());
  auto q = openWithSpares(tmp.path(), &fs, 4);
  REQUIRE(q->attachLoop(base.get()).ok());
  REQUIRE(eventually([&] { return q->sparesReady() >= 4; }));
  auto check = [&](Op op) {
    CAPTURE(static_cast<int>(op));
    auto m = q->begin(envelope());
    REQUIRE(m.ok());
    REQUIRE(m->inSpare());
    QueueId id = m->id();
    REQUIRE(m->append("Subject: full\r\n\r\nno room\r\n").ok());
    fs.failAt(op, 1, ENOSPC);
    auto r = commitOnLoop(*q, base.get(), std::move(*m));
    fs.clearFaults();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().errnum == ENOSPC);
    CHECK(queueSizes(tmp.path()).count(id.str()) == 0);
    CHECK_FALSE(q->uncommitted(id));
    CHECK(q->scan()->empty());
    CHECK(listNames(tmp.path() + "/tmp").empty());
  };
  check(Op::Write);   // the message bytes
  check(Op::Pwrite);  // the size in the header
  check(Op::Fsync);
  // Only spares are left: every file in queue/ is empty.
  for (auto& [name, size] : queueSizes(tmp.path())) CHECK(size == 0);
}

TEST_CASE("startup keeps whole files, removes spares and cut commits, quarantines the rest") {
  TempDir tmp;
  Envelope env = envelope();
  const std::string body = "Subject: t\r\n\r\n" + std::string(5000, 'b') + "\r\n";
  const std::string whole = encodeImage(env, body);
  std::map<std::string, std::string> files = {
      {"whole", whole},
      {"version 1", encodeImage(env, body, 1)},
      {"version 2", encodeImage(env, body, 2)},
      {"version 2 flipped",  // checked with its own checksum, BLAKE2b
       [&] {
         std::string s = encodeImage(env, body, 2);
         s[s.size() / 2] ^= 1;
         return s;
       }()},
      {"spare", ""},
      {"torn: no trailer", whole.substr(0, whole.size() - kTrailerSize)},
      {"torn: half a trailer", whole.substr(0, whole.size() - kTrailerSize / 2)},
      {"one byte flipped in the middle",
       [&] {
         std::string s = whole;
         s[s.size() / 2] ^= 1;
         return s;
       }()},
      {"stale block of zeros",
       [&] {
         std::string s = whole;
         std::fill(s.begin() + 4096, s.begin() + 5000, '\0');
         return s;
       }()},
      {"header placeholder",  // killed between the trailer and the length
       [&] {
         std::string s = whole;
         s.replace(kMessageSizeOffset, 20, std::string(20, 'x'));
         return s;
       }()},
      {"message length garbled",
       [&] {
         std::string s = whole;
         s[kMessageSizeOffset + 3] = 'q';
         return s;
       }()},
  };
  {
    auto q = Queue::open({tmp.path()});
    REQUIRE(q.ok());
  }
  IdGenerator gen(3);
  std::map<std::string, QueueId> ids;
  for (auto& [name, bytes] : files) {
    ids.emplace(name, gen.next());
    writeRaw(tmp.path() + "/queue/" + ids.at(name).str(), bytes);
  }
  auto q = Queue::open({tmp.path()});
  REQUIRE(q.ok());
  std::vector<QueueId> kept = {ids.at("whole"), ids.at("version 1"), ids.at("version 2")};
  std::sort(kept.begin(), kept.end());
  CHECK(*(*q)->scan() == kept);
  // A trailer that is there but does not verify could be a disk's or a
  // bug's damage to an acknowledged message: kept aside, not removed.
  const std::set<std::string> doubtful = {"one byte flipped in the middle",
                                          "stale block of zeros", "message length garbled",
                                          "version 2 flipped"};
  std::vector<std::string> quarantined;
  for (auto& [name, id] : ids) {
    CAPTURE(name);
    const bool exists = ::access((tmp.path() + "/queue/" + id.str()).c_str(), F_OK) == 0;
    CHECK(exists == (name == "whole" || name == "version 1" || name == "version 2"));
    if (doubtful.count(name)) {
      quarantined.push_back(id.str());
      CHECK(*readFile(tmp.path() + "/corrupt/" + id.str()) == files.at(name));
    }
  }
  std::sort(quarantined.begin(), quarantined.end());
  CHECK(listNames(tmp.path() + "/corrupt") == quarantined);
  for (const QueueId& id : kept) {
    auto f = (*q)->load(id);
    REQUIRE(f.ok());
    CHECK(*f->readAll() == body);
  }
}
