// ManualRunner: a BlockingRunner (append_commit.hpp) for tests, which
// holds each blocking work until the test runs it -- on a thread of its
// own, so the sanitizers see the hand-over -- and then its continuation on
// the test's thread. What other sessions see between the steps of a
// commit is then checked without any timing.
// Test-only; never linked into a program.
#pragma once

#include <catch2/catch.hpp>
#include <deque>
#include <functional>
#include <thread>

#include "store/append_commit.hpp"

namespace yubin::store::test {

// Holds the blocking work until the test runs it, on a thread of its own.
class ManualRunner : public BlockingRunner {
 public:
  void run(std::function<void()> work, std::function<void()> then) override {
    queue_.push_back({std::move(work), std::move(then)});
  }
  size_t waiting() const { return queue_.size(); }
  // The oldest work on another thread (joined), then its continuation here.
  void step() {
    work();
    then();
  }
  // Only the work; its continuation at then().
  void work() {
    REQUIRE(!queue_.empty());
    std::thread t(std::move(queue_.front().work));
    t.join();
    queue_.front().work = nullptr;
  }
  void then() {
    REQUIRE(!queue_.empty());
    Item item = std::move(queue_.front());
    queue_.pop_front();
    item.then();
  }
  void drop() { queue_.clear(); }

 private:
  struct Item {
    std::function<void()> work, then;
  };
  std::deque<Item> queue_;
};

}  // namespace yubin::store::test
