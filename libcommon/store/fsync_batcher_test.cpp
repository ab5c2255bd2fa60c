// FsyncBatcher: requests made while a sync runs share the next one; each
// caller gets the result of a sync that started after its request (an
// error reaches exactly the callers that sync covered); paths do not wait
// for each other; the real sync of a directory and of a missing file.
// The fake sync blocks until the test lets it go, and the test waits for
// the callers by the batcher's own count: no timing.
#include "store/fsync_batcher.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/fs.hpp"
#include "store/test_util.hpp"

namespace yubin::store {
namespace {

// A sync function that blocks each call until released, and records it.
struct HeldSync {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> started;
  size_t released = 0;
  std::vector<Status> results;  // what the n-th call returns (default: ok)

  Status call(const std::string& path) {
    std::unique_lock lock(mu);
    const size_t n = started.size();
    started.push_back(path);
    cv.notify_all();
    cv.wait(lock, [&] { return released > n; });
    return n < results.size() ? results[n] : Status{};
  }
  void waitStarted(size_t n) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return started.size() >= n; });
  }
  void release() {
    std::lock_guard lock(mu);
    ++released;
    cv.notify_all();
  }
};

void waitCalls(const FsyncBatcher& b, uint64_t n) {
  while (b.calls() < n) std::this_thread::yield();
}

TEST_CASE("FsyncBatcher: callers during a sync share the next one, each with its own result") {
  HeldSync held;
  held.results = {Status{}, Error{"disk gone", EIO}};
  FsyncBatcher b([&](const std::string& p, FsyncBatcher::Kind) { return held.call(p); });
  Status ra, rb, rc, rd;
  std::thread a([&] { ra = b.sync("/f/cur", FsyncBatcher::Kind::Directory); });
  held.waitStarted(1);  // a's sync runs
  // b and c ask meanwhile: a's sync may have started before their change.
  std::thread tb([&] { rb = b.sync("/f/cur", FsyncBatcher::Kind::Directory); });
  std::thread tc([&] { rc = b.sync("/f/cur", FsyncBatcher::Kind::Directory); });
  // Another path does not wait for this one.
  std::thread td([&] { rd = b.sync("/g/cur", FsyncBatcher::Kind::Directory); });
  waitCalls(b, 4);
  held.waitStarted(2);
  {
    std::lock_guard lock(held.mu);
    CHECK(held.started == std::vector<std::string>{"/f/cur", "/g/cur"});
  }
  held.release();  // a's sync: ok
  a.join();
  CHECK(ra);
  held.waitStarted(3);  // one sync for b and c together
  held.release();       // /g/cur's (the second call): EIO
  td.join();
  REQUIRE_FALSE(rd);
  CHECK(rd.error().errnum == EIO);
  held.release();  // b and c's: ok
  tb.join();
  tc.join();
  CHECK(rb);
  CHECK(rc);
  CHECK(b.calls() == 4);
  CHECK(b.runs() == 3);
  std::lock_guard lock(held.mu);
  CHECK(held.started == std::vector<std::string>{"/f/cur", "/g/cur", "/f/cur"});
}

TEST_CASE("FsyncBatcher: an error reaches the callers of that sync only") {
  HeldSync held;
  held.results = {Error{"first", EIO}, Status{}};
  FsyncBatcher b([&](const std::string& p, FsyncBatcher::Kind) { return held.call(p); });
  Status r1, r2;
  std::thread t1([&] { r1 = b.sync("/x", FsyncBatcher::Kind::Data); });
  held.waitStarted(1);
  std::thread t2([&] { r2 = b.sync("/x", FsyncBatcher::Kind::Data); });
  waitCalls(b, 2);
  held.release();
  t1.join();
  held.waitStarted(2);
  held.release();
  t2.join();
  REQUIRE_FALSE(r1);
  CHECK(r1.error().message == "first");
  CHECK(r2);
}

TEST_CASE("FsyncBatcher: the real syncs") {
  test::TempDir tmp;
  FsyncBatcher b;
  CHECK(b.sync(tmp.path(), FsyncBatcher::Kind::Directory));
  CHECK(b.sync(tmp / "no-such-log", FsyncBatcher::Kind::Data));  // nothing to sync
  REQUIRE(atomicWrite(tmp / "log", "batch\n", 0600));
  CHECK(b.sync(tmp / "log", FsyncBatcher::Kind::Data));
  auto missingDir = b.sync(tmp / "gone", FsyncBatcher::Kind::Directory);
  REQUIRE_FALSE(missingDir);
  CHECK(missingDir.error().errnum == ENOENT);
  // Many threads at once on one path: every one gets its answer.
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i)
    ts.emplace_back([&] { ok += b.sync(tmp.path(), FsyncBatcher::Kind::Directory) ? 1 : 0; });
  for (auto& t : ts) t.join();
  CHECK(ok == 16);
  CHECK(b.runs() <= b.calls());
}

}  // namespace
}  // namespace yubin::store
