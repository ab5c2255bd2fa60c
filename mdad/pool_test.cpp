// Unit tests for mdad's delivery on its workers: the per-key mutex that
// keeps two workers out of one mbox, and the plan -> copies on the pool ->
// outcomes path of the LMTP server, with the first copy made to finish last
// and to fail. The pool itself is tested in libcommon/event.
#include "mdad/keyed_mutex.hpp"

#include <event2/event.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "base/fs.hpp"
#include "config/config.hpp"
#include "event/test_util.hpp"
#include "event/worker_pool.hpp"
#include "mdad/delivery.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::mdad;
using event::WorkerPool;
using event::test::Gate;
using event::test::Loop;
using event::test::startPool;
using namespace std::chrono_literals;

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
