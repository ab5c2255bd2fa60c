// Unit tests for mdad's delivery workers: a group completes once, on the
// loop, after all its tasks, whatever order they finished in; results land
// by index so a message's replies stay in recipient order; cancel drops the
// tasks not started and the completion; the destructor waits for running
// tasks and drops queued ones; empty groups; many groups from many
// "connections"; the per-key mutex. Also the plan -> copies on the pool ->
// outcomes path of the LMTP server, with the first copy made to finish last
// and to fail.
#include "mdad/pool.hpp"

#include <event2/event.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/fs.hpp"
#include "config/config.hpp"
#include "mdad/delivery.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::mdad;
using namespace std::chrono_literals;

namespace {

struct Loop {
  CPtr<event_base, event_base_free> base{event_base_new()};
  // Runs the loop until pred() or the deadline; returns pred().
  template <typename Pred>
  bool runUntil(Pred pred, std::chrono::milliseconds limit = 10s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < deadline) {
      timeval tv{0, 10000};
      event_base_loopexit(base.get(), &tv);
      event_base_loop(base.get(), EVLOOP_ONCE);
    }
    return pred();
  }
};

// A one-shot gate the tests open from the test thread.
class Gate {
 public:
  void open() {
    {
      std::lock_guard l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

std::unique_ptr<WorkerPool> startPool(Loop& loop, size_t n) {
  auto p = WorkerPool::start(loop.base.get(), n);
  REQUIRE(p);
  return std::move(*p);
}

}  // namespace

TEST_CASE("pool: a group completes once, after every task, results in order") {
  Loop loop;
  auto pool = startPool(loop, 3);
  CHECK(pool->threads() == 3);
  auto results = std::make_shared<std::vector<int>>(3, -1);
  auto order = std::make_shared<std::vector<int>>();
  auto orderMu = std::make_shared<std::mutex>();
  auto gate0 = std::make_shared<Gate>();
  auto gate1 = std::make_shared<Gate>();
  std::vector<WorkerPool::Task> tasks;
  // Task 0 waits for task 1, which waits for task 2: they finish 2, 1, 0.
  tasks.push_back([=] {
    gate0->wait();
    (*results)[0] = 100;
    std::lock_guard l(*orderMu);
    order->push_back(0);
  });
  tasks.push_back([=] {
    gate1->wait();
    (*results)[1] = 101;
    {
      std::lock_guard l(*orderMu);
      order->push_back(1);
    }
    gate0->open();
  });
  tasks.push_back([=] {
    (*results)[2] = 102;
    {
      std::lock_guard l(*orderMu);
      order->push_back(2);
    }
    gate1->open();
  });
  int done = 0;
  std::vector<int> seen;
  pool->submit(std::move(tasks), [&] {
    ++done;
    seen = *results;
  });
  CHECK(pool->pending() == 1);
  REQUIRE(loop.runUntil([&] { return done > 0; }));
  CHECK(*order == std::vector<int>{2, 1, 0});
  CHECK(seen == std::vector<int>{100, 101, 102});
  // Nothing more arrives.
  loop.runUntil([] { return false; }, 50ms);
  CHECK(done == 1);
  CHECK(pool->pending() == 0);
}

TEST_CASE("pool: an empty group completes from the loop, never inside submit") {
  Loop loop;
  auto pool = startPool(loop, 1);
  bool done = false;
  pool->submit({}, [&] { done = true; });
  CHECK_FALSE(done);
  REQUIRE(loop.runUntil([&] { return done; }));
}

TEST_CASE("pool: many groups from many connections, each completed once") {
  Loop loop;
  auto pool = startPool(loop, 4);
  constexpr int kGroups = 200;
  std::atomic<int> ran{0};
  std::vector<int> completions(kGroups, 0);
  int total = 0;
  for (int g = 0; g < kGroups; ++g) {
    std::vector<WorkerPool::Task> tasks;
    for (int t = 0; t < 1 + g % 5; ++t) tasks.push_back([&ran] { ran.fetch_add(1); });
    total += 1 + g % 5;
    // A completion may submit more work (the next pipelined message).
    pool->submit(std::move(tasks), [&, g] {
      ++completions[g];
      if (g == 0) pool->submit({[&ran] { ran.fetch_add(1000); }}, [] {});
    });
  }
  REQUIRE(loop.runUntil([&] { return pool->pending() == 0; }));
  CHECK(ran.load() == total + 1000);
  for (int g = 0; g < kGroups; ++g) CHECK(completions[g] == 1);
}

TEST_CASE("pool: cancel drops the tasks not started and the completion") {
  Loop loop;
  auto pool = startPool(loop, 1);
  auto gate = std::make_shared<Gate>();
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto ran = std::make_shared<std::atomic<int>>(0);
  bool done = false;
  // The single worker is busy with the first task; the others wait.
  std::vector<WorkerPool::Task> tasks;
  tasks.push_back([=] {
    started->store(true);
    gate->wait();
    ran->fetch_add(1);
  });
  for (int i = 0; i < 5; ++i) tasks.push_back([=] { ran->fetch_add(10); });
  auto t = pool->submit(std::move(tasks), [&] { done = true; });
  bool otherDone = false;
  while (!started->load()) std::this_thread::sleep_for(1ms);
  pool->cancel(t);
  pool->cancel(t);       // twice: ignored
  pool->cancel(999999);  // unknown: ignored
  pool->submit({[=] { ran->fetch_add(100); }}, [&] { otherDone = true; });
  gate->open();
  REQUIRE(loop.runUntil([&] { return otherDone; }));
  loop.runUntil([] { return false; }, 50ms);
  CHECK_FALSE(done);
  CHECK(ran->load() == 101);  // the running task finished; the queued five never ran
  CHECK(pool->pending() == 0);
}

TEST_CASE("pool: destruction waits for running tasks and drops queued ones") {
  Loop loop;
  auto pool = startPool(loop, 2);
  auto ran = std::make_shared<std::atomic<int>>(0);
  auto running = std::make_shared<std::atomic<int>>(0);
  std::vector<WorkerPool::Task> tasks;
  for (int i = 0; i < 2; ++i)
    tasks.push_back([=] {
      running->fetch_add(1);
      std::this_thread::sleep_for(100ms);
      ran->fetch_add(1);
    });
  for (int i = 0; i < 10; ++i) tasks.push_back([=] { ran->fetch_add(100); });
  bool done = false;
  pool->submit(std::move(tasks), [&] { done = true; });
  while (running->load() < 2) std::this_thread::sleep_for(1ms);
  pool.reset();
  CHECK(ran->load() == 2);
  loop.runUntil([] { return false; }, 50ms);
  CHECK_FALSE(done);
}

TEST_CASE("keyed mutex: one holder per key, keys independent, entries dropped") {
  KeyedMutex km;
  std::atomic<int> inA{0}, maxA{0}, inB{0};
  std::atomic<bool> overlapAB{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      const bool a = i % 2 == 0;
      for (int n = 0; n < 50; ++n) {
        auto g = km.lock(a ? "/mail/a.mbox" : "/mail/b.mbox");
        std::atomic<int>& in = a ? inA : inB;
        int now = in.fetch_add(1) + 1;
        if (a) maxA.store(std::max(maxA.load(), now));
        if (inA.load() > 0 && inB.load() > 0) overlapAB.store(true);
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        in.fetch_sub(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(maxA.load() == 1);
  CHECK(overlapAB.load());  // different keys do not wait for each other
  CHECK(km.size() == 0);
  {
    auto g = km.lock("x");
    auto moved = std::move(g);
    CHECK(km.size() == 1);
  }
  CHECK(km.size() == 0);
}

namespace {

// Blocks the fsync of files whose path holds `slow` until the gate opens,
// and fails with ENOSPC those whose path holds `fail`. fsync gets an fd:
// the path is found through /proc/self/fd.
class GatedFs : public store::Fs {
 public:
  GatedFs(std::string slow, std::string fail) : slow_(std::move(slow)), fail_(std::move(fail)) {}
  int fsync(int fd) override {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    char target[4096] = {};
    ssize_t n = ::readlink(link, target, sizeof target - 1);
    std::string path(target, n > 0 ? static_cast<size_t>(n) : 0);
    if (path.find("/Maildir/tmp/") != std::string::npos) {
      if (path.find(slow_) != std::string::npos) gate.wait();
      if (path.find(fail_) != std::string::npos) {
        errno = ENOSPC;
        return -1;
      }
    }
    return store::Fs::fsync(fd);
  }
  Gate gate;

 private:
  std::string slow_, fail_;
};

}  // namespace

TEST_CASE("delivery on the pool: the first copy finishes last, replies stay in order") {
  store::test::TempDir dir;
  const std::string users = dir / "users", aliases = dir / "aliases", mail = dir / "mail";
  REQUIRE(atomicWrite(users,
                      "u0@example.org:*:::maildir\nu1@example.org:*:::maildir\n"
                      "u2@example.org:*:::maildir\nu3@example.org:*:::mbox\n",
                      0640)
              .ok());
  REQUIRE(atomicWrite(aliases, "both@example.org: u1@example.org, u2@example.org\n", 0640).ok());
  auto cfg =
      config::Config::parse("version = 1\n[global]\ndomains = example.org\nusers_file = " + users +
                                "\naliases_file = " + aliases + "\nmail_root = " + mail + "\n",
                            "test.conf");
  REQUIRE(cfg.ok());
  auth::Directory directory(auth::DirectorySettings::fromConfig(*cfg));
  REQUIRE(directory.reload().ok());

  // u0's copy waits until every other copy is done, then fails.
  GatedFs fs("/u0/", "/u0/");
  DeliverySettings ds;
  ds.lockTimeout = 2000ms;
  Deliverer deliverer(ds, fs);
  DeliveryPlan plan;
  for (const char* r : {"u0@example.org", "ghost@example.org", "both@example.org", "u1@example.org",
                        "u3@example.org"})
    deliverer.plan(plan, directory, r, "t");
  REQUIRE(plan.users.size() == 4);  // u1 is reached twice, copied once
  CHECK(plan.recipients[1].settled == Outcome::UnknownUser);

  Loop loop;
  auto pool = startPool(loop, 4);
  const std::string body = "Subject: x\r\n\r\nbody\r\n";
  auto msg = std::make_shared<store::MemorySource>(body);
  auto finished = std::make_shared<std::atomic<int>>(0);
  std::vector<WorkerPool::Task> tasks;
  for (size_t i = 0; i < plan.users.size(); ++i)
    tasks.push_back([&, i, msg, finished] {
      plan.results[i] = deliverer.deliverToUser(plan.users[i], *msg, "s@example.net", "t");
      if (finished->fetch_add(1) + 1 == 3) fs.gate.open();  // the three others are done
    });
  std::vector<Outcome> outcomes;
  pool->submit(std::move(tasks), [&] { outcomes = deliverer.outcomes(plan, "t"); });
  REQUIRE(loop.runUntil([&] { return !outcomes.empty(); }));
  CHECK(outcomes == std::vector<Outcome>{Outcome::NoSpace, Outcome::UnknownUser, Outcome::Delivered,
                                         Outcome::Delivered, Outcome::Delivered});
  std::string expect =
      "Return-Path: <s@example.net>\nDelivered-To: u1@example.org\n"
      "Subject: x\n\nbody\n";
  auto files = store::test::listDir(mail + "/example.org/u1/Maildir/new");
  REQUIRE(files.size() == 1);
  CHECK(readFile(mail + "/example.org/u1/Maildir/new/" + files[0]).value() == expect);
  CHECK(store::test::listDir(mail + "/example.org/u0/Maildir/new").empty());
  CHECK(store::test::listDir(mail + "/example.org/u0/Maildir/tmp").empty());
}
