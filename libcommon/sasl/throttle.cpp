// Login throttling; see throttle.hpp.
#include "sasl/throttle.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace yubin::sasl {
namespace {

// Accounts are counted case-insensitively, so that "Demo@X" and "demo@x"
// share one budget.
std::string accountKey(std::string_view account) {
  std::string k = "u:";
  for (char c : account) k.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  return k;
}

}  // namespace

std::string Throttle::ipKey(std::string_view ip) {
  if (ip.find(':') != std::string_view::npos) {
    unsigned char a[16];
    std::string z(ip);
    if (inet_pton(AF_INET6, z.c_str(), a) == 1) {
      std::memset(a + 8, 0, 8);
      char buf[INET6_ADDRSTRLEN];
      if (inet_ntop(AF_INET6, a, buf, sizeof buf)) return "a:" + std::string(buf) + "/64";
    }
  }
  return "a:" + std::string(ip);
}

unsigned Throttle::failures(const std::string& key, Clock::time_point now) const {
  auto it = index_.find(key);
  if (it == index_.end()) return 0;
  const Entry& e = *it->second;
  if (now - e.last >= settings_.window) return 0;
  return e.failures;
}

unsigned Throttle::ipFailures(std::string_view ip, Clock::time_point now) const {
  return failures(ipKey(ip), now);
}

unsigned Throttle::accountFailures(std::string_view account, Clock::time_point now) const {
  if (account.empty()) return 0;
  return failures(accountKey(account), now);
}

std::chrono::milliseconds Throttle::delayFor(unsigned n) const {
  if (n == 0) return std::chrono::milliseconds{0};
  auto d = settings_.delay;
  for (unsigned i = 1; i < n && d < settings_.maxDelay; ++i) d *= 2;
  return std::min(d, settings_.maxDelay);
}

std::chrono::milliseconds Throttle::delay(std::string_view ip, std::string_view account,
                                          Clock::time_point now) const {
  return std::max(delayFor(ipFailures(ip, now)), delayFor(accountFailures(account, now)));
}

bool Throttle::locked(std::string_view ip, std::string_view account, Clock::time_point now) const {
  if (settings_.ipLockout != 0 && ipFailures(ip, now) >= settings_.ipLockout) return true;
  return settings_.accountLockout != 0 && accountFailures(account, now) >= settings_.accountLockout;
}

void Throttle::failure(std::string_view ip, std::string_view account, Clock::time_point now) {
  expire(now);
  bump(ipKey(ip), now);
  if (!account.empty()) bump(accountKey(account), now);
}

void Throttle::success(std::string_view ip, std::string_view account) {
  erase(ipKey(ip));
  if (!account.empty()) erase(accountKey(account));
}

void Throttle::bump(std::string key, Clock::time_point now) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    Entry e = std::move(*it->second);
    order_.erase(it->second);
    if (now - e.last >= settings_.window) e.failures = 0;
    ++e.failures;
    e.last = now;
    order_.push_back(std::move(e));
    it->second = std::prev(order_.end());
    return;
  }
  while (!order_.empty() && index_.size() >= std::max<size_t>(settings_.maxKeys, 1)) {
    index_.erase(order_.front().key);
    order_.pop_front();
  }
  order_.push_back(Entry{key, 1, now});
  index_.emplace(std::move(key), std::prev(order_.end()));
}

void Throttle::erase(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  order_.erase(it->second);
  index_.erase(it);
}

void Throttle::expire(Clock::time_point now) {
  while (!order_.empty() && now - order_.front().last >= settings_.window) {
    index_.erase(order_.front().key);
    order_.pop_front();
  }
}

}  // namespace yubin::sasl
