// The per-key mutex; see keyed_mutex.hpp.
#include "mdad/keyed_mutex.hpp"

namespace yubin::mdad {

KeyedMutex::Guard KeyedMutex::lock(const std::string& key) {
  std::unique_lock lock(mu_);
  Entry& e = entries_[key];  // references stay valid across rehashing
  ++e.waiters;
  cv_.wait(lock, [&] { return !e.held; });
  --e.waiters;
  e.held = true;
  return Guard(this, key);
}

void KeyedMutex::unlock(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    it->second.held = false;
    if (it->second.waiters == 0) {
      entries_.erase(it);
      return;
    }
  }
  cv_.notify_all();
}

size_t KeyedMutex::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

KeyedMutex::Guard::~Guard() {
  if (owner_) owner_->unlock(key_);
}

}  // namespace yubin::mdad
