// ConnectionTable: what every daemon object keeps about its open sessions --
// the connections it owns, how many come from each client address, and the
// counter behind the session IDs that tag their log lines. The daemon decides
// who is refused (its limits, its reply); the table only counts.
// Trust: no input of its own; the addresses come from accept().
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace yubin::service {

template <class Conn>
class ConnectionTable {
 public:
  // A new session ID, unique within this host while the process lives:
  // "<pid hex>.<counter hex>".
  std::string nextSessionId() {
    char id[32];
    std::snprintf(id, sizeof id, "%x.%llx", static_cast<unsigned>(::getpid()),
                  static_cast<unsigned long long>(++sessionCounter_));
    return id;
  }

  // Takes c and counts it under `ip` until remove(); returns it.
  Conn* add(std::unique_ptr<Conn> c, const std::string& ip) {
    Conn* raw = c.get();
    ++perIp_[ip];
    entries_.emplace(raw, Entry{std::move(c), ip});
    return raw;
  }

  // Forgets c and destroys it; false if it was not (or no longer) here.
  // c's destructor may call remove() for itself again: it is already gone.
  bool remove(Conn* c) {
    auto it = entries_.find(c);
    if (it == entries_.end()) return false;
    Entry doomed = std::move(it->second);
    entries_.erase(it);
    auto ip = perIp_.find(doomed.ip);
    if (ip != perIp_.end() && --ip->second == 0) perIp_.erase(ip);
    return true;  // doomed.conn is destroyed here, after the table is consistent
  }

  bool contains(const Conn* c) const { return entries_.count(const_cast<Conn*>(c)) != 0; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // Open connections from ip.
  size_t fromIp(const std::string& ip) const {
    auto it = perIp_.find(ip);
    return it == perIp_.end() ? 0 : it->second;
  }

  // Calls fn(Conn&) on each connection open now; fn may close (remove) any
  // of them, itself or another, and a closed one is skipped.
  template <class Fn>
  void forEach(Fn&& fn) {
    std::vector<Conn*> all;
    all.reserve(entries_.size());
    for (auto& [raw, entry] : entries_) all.push_back(raw);
    for (Conn* c : all)
      if (contains(c)) fn(*c);
  }

  // Destroys every connection at once (no per-connection goodbye).
  void clear() {
    auto doomed = std::move(entries_);
    entries_.clear();
    perIp_.clear();
    doomed.clear();
  }

 private:
  struct Entry {
    std::unique_ptr<Conn> conn;
    std::string ip;
  };
  std::unordered_map<Conn*, Entry> entries_;
  std::unordered_map<std::string, size_t> perIp_;
  uint64_t sessionCounter_ = 0;
};

}  // namespace yubin::service
