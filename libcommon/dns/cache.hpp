// The resolver's answer cache: how long an answer may be kept (RFC 1035 TTLs,
// RFC 2308 negative caching, RFC 2181 §8 TTL range) and a bounded map of
// answers that forgets them when they expire or when room is needed.
// Debian 12's c-ares (1.18) has no cache of its own, so without this every
// delivery attempt would ask for the MX and the addresses again.
//
// Trust: messageTtls() reads raw DNS messages from the network (untrusted):
// every length and offset is checked against the buffer, compression
// pointers are never followed (only skipped), and a message that does not
// parse gives nullopt, which the caller treats as "do not cache".
// Single-threaded: one cache per Resolver, on its event loop.
// Standards: RFC 1035 §4.1 (message format), RFC 2181 §8 (a TTL with the
// top bit set is 0), RFC 2308 §5 (a negative answer is kept for the
// smaller of the SOA record's TTL and its MINIMUM field).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace yubin::dns {

enum class Status : uint8_t;

// What a DNS message says about how long it may be kept.
struct MessageTtls {
  // The smallest TTL among the answer section's records (a CNAME chain
  // included); nullopt when the section is empty.
  std::optional<uint32_t> answer;
  // RFC 2308: min(TTL, MINIMUM) of the first SOA record in the authority
  // section; nullopt when there is none.
  std::optional<uint32_t> negative;
};
// nullopt when the message is cut short or otherwise does not parse.
std::optional<MessageTtls> messageTtls(const unsigned char* msg, size_t len);

struct CacheSettings {
  // Answers kept at most (MX and address lookups together); the least
  // recently used goes first. 0: no cache, and identical lookups in flight
  // are not merged either.
  size_t maxEntries = 0;
  // A positive answer is kept for its smallest TTL, at most this long.
  std::chrono::seconds maxTtl{3600};
  // NXDOMAIN / NODATA: min(SOA TTL, SOA MINIMUM), at most negativeMaxTtl;
  // negativeTtl when the answer carries no SOA (a short default: RFC 2308
  // §5 would not cache it at all, but a recursive resolver always sends
  // the SOA, so this only matters for odd servers and for tests).
  std::chrono::seconds negativeMaxTtl{900};
  std::chrono::seconds negativeTtl{60};
  // SERVFAIL, REFUSED, timeouts, malformed answers: a few seconds, so a
  // burst of deliveries to a broken domain asks once, and a repaired one
  // is seen soon. 0: never kept.
  std::chrono::seconds tempFailTtl{5};
  // The clock; tests give their own. Empty: std::chrono::steady_clock.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

// How long to keep an answer of this status with these TTLs (0: not at
// all). ttls is nullopt when the message was missing or unparsable: an Ok
// or negative answer is then not kept.
std::chrono::seconds cacheTtl(Status status, const std::optional<MessageTtls>& ttls,
                              const CacheSettings& s);

// A bounded map from key to value with an expiry per entry and least
// recently used eviction. find() drops an expired entry it meets; put()
// evicts the least recently used entry when full (expired ones go first
// only as they are met: the bound is what keeps memory in check).
template <class V>
class TtlCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit TtlCache(size_t maxEntries) : max_(maxEntries) {}

  // The live value for key, marked as recently used; nullptr otherwise.
  const V* find(const std::string& key, Clock::time_point now) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    if (it->second->expires <= now) {
      lru_.erase(it->second);
      index_.erase(it);
      return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    return &it->second->value;
  }

  // Keeps value until `expires` (replacing an older value for key).
  void put(const std::string& key, V value, Clock::time_point expires) {
    if (max_ == 0) return;
    auto it = index_.find(key);
    if (it != index_.end()) {
      it->second->value = std::move(value);
      it->second->expires = expires;
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    while (index_.size() >= max_) {
      index_.erase(lru_.back().key);
      lru_.pop_back();
      ++evictions_;
    }
    lru_.push_front(Entry{key, std::move(value), expires});
    index_.emplace(key, lru_.begin());
  }

  size_t size() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::string key;
    V value;
    Clock::time_point expires;
  };
  size_t max_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
  uint64_t evictions_ = 0;
};

}  // namespace yubin::dns
