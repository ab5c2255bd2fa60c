// WorkerPool: a fixed set of threads that run mdad's blocking delivery work
// (file writes, fsyncs, mbox lock waits) off the event loop, and report
// back on the loop thread. One submission is a group of tasks (one per
// mailbox copy of a message) with one completion, run on the loop once
// every task of the group has finished, so a connection gets all of its
// message's outcomes at once and replies in recipient order whatever order
// the copies were finished in. Completions travel through an eventfd
// watched by the loop, as the queue's group committer does it; libevent
// itself is never touched from a worker.
//
// KeyedMutex: one in-process mutex per key (an mbox path), so two workers
// never append to one mbox at the same time; entries exist only while
// someone holds or waits for them.
//
// Threads: submit(), cancel() and the completions belong to the loop
// thread. Tasks run on the workers and must own, or share, all they touch:
// a cancelled group's running task still runs to its end.
// Trust: none of its own; runs inside mdad as the mailboxes' owner.
#pragma once

#include <event2/event.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::mdad {

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

class KeyedMutex {
 public:
  class Guard {
   public:
    Guard(Guard&& o) noexcept : owner_(o.owner_), key_(std::move(o.key_)) { o.owner_ = nullptr; }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    Guard& operator=(Guard&&) = delete;
    ~Guard();

   private:
    friend class KeyedMutex;
    Guard(KeyedMutex* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    KeyedMutex* owner_;
    std::string key_;
  };

  // Blocks until no other Guard for key exists.
  Guard lock(const std::string& key);
  // Keys held or waited for (tests).
  size_t size() const;

 private:
  struct Entry {
    bool held = false;
    size_t waiters = 0;
  };
  void unlock(const std::string& key);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
};

}  // namespace yubin::mdad
