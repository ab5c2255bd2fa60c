// Login throttling per client address and per account, in the manner of
// Postfix's anvil and Dovecot's auth penalty: every failed login within a
// window makes the next attempt from that address, or for that account,
// wait longer (a doubling delay, capped); past a threshold of failures the
// address (or the account) is locked out until the window passes: the
// protocol answers 421 / BYE and disconnects. A success resets both.
// Pure: the caller passes the clock; memory is bounded (entries expire, and
// the least recently failed key is evicted at the cap).
//
// Trust: keys are untrusted (user names are whatever the client typed);
// they are only compared, never parsed beyond IPv6 prefixing. Not
// thread-safe: one Throttle per event loop.
//
// Glue, per password or SCRAM attempt:
//   if (t.locked(ip, user, now)) -> 421 and close
//   wait t.delay(ip, user, now), then check;
//   ok ? t.success(ip, user) : t.failure(ip, user, now)
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace yubin::sasl {

class Throttle {
 public:
  using Clock = std::chrono::steady_clock;

  struct Settings {
    // Delay after the first failure; it doubles with each further one.
    std::chrono::milliseconds delay{1000};
    std::chrono::milliseconds maxDelay{15000};
    // Failures within `window` after which the address is locked; 0 = never.
    unsigned ipLockout = 10;
    // The same for an account, from any address; 0 = never. Higher than the
    // address's, since anyone may lock a known account out.
    unsigned accountLockout = 30;
    // A key is forgotten this long after its last failure.
    std::chrono::seconds window{900};
    // Largest number of keys (addresses plus accounts) kept.
    size_t maxKeys = 100000;
  };

  explicit Throttle(Settings s) : settings_(s) {}

  // How long to wait before checking this attempt's credentials (0 when
  // neither key has recent failures). `account` may be empty (not known yet).
  std::chrono::milliseconds delay(std::string_view ip, std::string_view account,
                                  Clock::time_point now) const;
  // True when the address or the account has reached its lockout threshold.
  bool locked(std::string_view ip, std::string_view account, Clock::time_point now) const;
  void failure(std::string_view ip, std::string_view account, Clock::time_point now);
  void success(std::string_view ip, std::string_view account);

  // Failures recorded for the address's key / the account's key, for tests
  // and logs.
  unsigned ipFailures(std::string_view ip, Clock::time_point now) const;
  unsigned accountFailures(std::string_view account, Clock::time_point now) const;
  size_t size() const { return index_.size(); }
  const Settings& settings() const { return settings_; }
  void setSettings(const Settings& s) { settings_ = s; }

  // The key an address is counted under: IPv4 as is, IPv6 by its /64 (one
  // host owns a whole /64 and may pick any address in it).
  static std::string ipKey(std::string_view ip);

 private:
  struct Entry {
    std::string key;
    unsigned failures = 0;
    Clock::time_point last;
  };
  using List = std::list<Entry>;  // least recently failed first

  unsigned failures(const std::string& key, Clock::time_point now) const;
  std::chrono::milliseconds delayFor(unsigned failures) const;
  void bump(std::string key, Clock::time_point now);
  void erase(const std::string& key);
  void expire(Clock::time_point now);

  Settings settings_;
  List order_;
  std::unordered_map<std::string, List::iterator> index_;
};

}  // namespace yubin::sasl
