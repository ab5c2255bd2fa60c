// WorkerPool: a fixed set of threads that run blocking work (file
// writes, fsyncs, lock waits) off an event loop, and report back on the
// loop thread. One submission is a group of tasks with one completion, run
// on the loop once every task of the group has finished, so a caller gets
// all of a group's outcomes at once whatever order its tasks finished in
// (mdad: one task per mailbox copy of a message, replies in recipient
// order; mrad's mail process: the disk steps of an IMAP APPEND commit).
// Completions travel through an eventfd watched by the loop, as the
// queue's group committer does it; libevent itself is never touched from
// a worker.
//
// Threads: submit(), cancel() and the completions belong to the loop
// thread. Tasks run on the workers and must own, or share, all they touch:
// a cancelled group's running task still runs to its end.
// Trust: none of its own; runs inside its daemon with that daemon's rights.
#pragma once

#include <event2/event.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::event {

class WorkerPool {
 public:
  using Task = std::function<void()>;
  using Done = std::function<void()>;
  using Ticket = uint64_t;

  // Starts `threads` workers (at least one) that report to base.
  static Result<std::unique_ptr<WorkerPool>> start(event_base* base, size_t threads);
  // Drops the tasks not yet started (their groups never complete) and
  // waits for the running ones; no completion runs from here on.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues the tasks (in order; workers take them first come, first
  // served); `done` runs on the loop once all of them have returned. An
  // empty group completes at the next loop iteration, never inside submit().
  Ticket submit(std::vector<Task> tasks, Done done);
  // `done` of this group will not run; its tasks not yet started are
  // dropped (the sender was told nothing and will retry). Tasks already
  // running finish. Unknown or finished tickets are ignored.
  void cancel(Ticket t);

  size_t threads() const { return workers_.size(); }
  // Groups submitted whose completion has not run yet (loop thread).
  size_t pending() const { return callbacks_.size(); }

 private:
  struct Group {
    Ticket ticket = 0;
    size_t left = 0;  // tasks not finished; guarded by mu_
  };
  struct Item {
    std::shared_ptr<Group> group;
    Task task;
  };

  WorkerPool() = default;
  void workerMain();
  void finished(const std::shared_ptr<Group>& g);  // with mu_ held
  static void onWake(evutil_socket_t fd, short what, void* arg);
  void complete();

  UniqueFd wakeFd_;
  CPtr<struct event, event_free> wakeEvent_;
  std::vector<std::thread> workers_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;    // guarded by mu_
  std::vector<Ticket> done_;  // guarded by mu_
  bool stopping_ = false;     // guarded by mu_

  // Loop thread only.
  std::unordered_map<Ticket, Done> callbacks_;
  Ticket nextTicket_ = 1;
};

}  // namespace yubin::event
