// Test helpers for code that reports back on a libevent loop: Loop runs a
// private event_base until a condition holds (with a deadline, never a
// fixed sleep); Gate is a one-shot gate a test opens from its own thread to
// release work blocked on another; startPool starts a WorkerPool on a
// Loop.
#pragma once

#include <event2/event.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "base/unique_fd.hpp"
#include "event/worker_pool.hpp"

namespace yubin::event::test {

struct Loop {
  CPtr<event_base, event_base_free> base{event_base_new()};
  // Runs the loop until pred() or the deadline; returns pred().
  template <typename Pred>
  bool runUntil(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
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

inline std::unique_ptr<WorkerPool> startPool(Loop& loop, size_t n) {
  auto p = WorkerPool::start(loop.base.get(), n);
  REQUIRE(p);
  return std::move(*p);
}

}  // namespace yubin::event::test
