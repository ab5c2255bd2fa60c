// The worker pool; see worker_pool.hpp.
#include "event/worker_pool.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

namespace yubin::event {

Result<std::unique_ptr<WorkerPool>> WorkerPool::start(event_base* base, size_t threads) {
  std::unique_ptr<WorkerPool> p(new WorkerPool());
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return errnoError("eventfd");
  p->wakeFd_.reset(fd);
  p->wakeEvent_.reset(event_new(base, fd, EV_READ | EV_PERSIST, &WorkerPool::onWake, p.get()));
  if (!p->wakeEvent_ || event_add(p->wakeEvent_.get(), nullptr) != 0)
    return Error{"event_add for the worker pool failed", 0};
  threads = std::max<size_t>(threads, 1);
  for (size_t i = 0; i < threads; ++i) p->workers_.emplace_back([q = p.get()] { q->workerMain(); });
  return p;
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

WorkerPool::Ticket WorkerPool::submit(std::vector<Task> tasks, Done done) {
  auto g = std::make_shared<Group>();
  g->ticket = nextTicket_++;
  callbacks_.emplace(g->ticket, std::move(done));
  {
    std::lock_guard lock(mu_);
    g->left = tasks.size();
    for (Task& t : tasks) queue_.push_back(Item{g, std::move(t)});
    if (tasks.empty()) finished(g);
  }
  if (tasks.size() == 1) {
    cv_.notify_one();
  } else if (!tasks.empty()) {
    cv_.notify_all();
  }
  return g->ticket;
}

void WorkerPool::cancel(Ticket t) {
  if (callbacks_.erase(t) == 0) return;
  std::lock_guard lock(mu_);
  // The dropped tasks are destroyed here, on the loop thread, with what
  // they captured.
  std::erase_if(queue_, [t](const Item& i) { return i.group->ticket == t; });
}

void WorkerPool::finished(const std::shared_ptr<Group>& g) {
  done_.push_back(g->ticket);
  uint64_t one = 1;
  // Cannot fail short of a counter overflow.
  [[maybe_unused]] ssize_t w = ::write(wakeFd_.get(), &one, sizeof one);
}

void WorkerPool::workerMain() {
  for (;;) {
    Item item;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    item.task();
    // What the task captured goes now, on this thread, before the
    // completion can run on the loop.
    item.task = nullptr;
    std::lock_guard lock(mu_);
    if (--item.group->left == 0) finished(item.group);
  }
}

void WorkerPool::onWake(evutil_socket_t, short, void* arg) {
  static_cast<WorkerPool*>(arg)->complete();
}

void WorkerPool::complete() {
  uint64_t count;
  [[maybe_unused]] ssize_t r = ::read(wakeFd_.get(), &count, sizeof count);
  std::vector<Ticket> done;
  {
    std::lock_guard lock(mu_);
    done.swap(done_);
  }
  for (Ticket t : done) {
    auto it = callbacks_.find(t);
    if (it == callbacks_.end()) continue;  // cancelled
    Done cb = std::move(it->second);
    callbacks_.erase(it);
    cb();  // may submit or cancel
  }
}

}  // namespace yubin::event
