// Unit tests for event::WorkerPool: a group completes once, on the loop,
// after all its tasks, whatever order they finished in; results land by
// index so a caller's replies stay in order; cancel drops the tasks not
// started and the completion; the destructor waits for running tasks and
// drops queued ones; empty groups; many groups from many "connections".
#include "event/worker_pool.hpp"

#include <event2/event.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "event/test_util.hpp"

using namespace yubin;
using namespace yubin::event;
using event::test::Gate;
using event::test::Loop;
using event::test::startPool;
using namespace std::chrono_literals;

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
