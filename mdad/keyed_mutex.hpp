// KeyedMutex: one in-process mutex per key (an mbox path), so two of
// mdad's delivery workers (event::WorkerPool) never append to one mbox at
// the same time; entries exist only while someone holds or waits for them.
//
// Threads: any; a mutex inside.
// Trust: none of its own; runs inside mdad as the mailboxes' owner.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace yubin::mdad {

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
