// Unit tests for the login throttle: growing delay, lockout per address and
// per account, reset on success, expiry, the key cap, IPv6 /64 grouping.
#include "sasl/throttle.hpp"

#include <catch2/catch.hpp>

using namespace yubin::sasl;
using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

namespace {
Throttle::Settings settings() {
  Throttle::Settings s;
  s.delay = 100ms;
  s.maxDelay = 1000ms;
  s.ipLockout = 5;
  s.accountLockout = 8;
  s.window = 60s;
  s.maxKeys = 100;
  return s;
}
}  // namespace

TEST_CASE("throttle: the delay doubles per failure up to the cap") {
  Throttle t(settings());
  auto now = Throttle::Clock::time_point{} + 1h;
  CHECK(t.delay("192.0.2.1", "a@x", now) == 0ms);
  const ms expect[] = {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms};
  for (ms e : expect) {
    t.failure("192.0.2.1", "a@x", now);
    CHECK(t.delay("192.0.2.1", "", now) == e);
    CHECK(t.delay("198.51.100.7", "A@X", now) == e);  // account, any case
  }
  CHECK(t.delay("198.51.100.7", "b@x", now) == 0ms);
}

TEST_CASE("throttle: lockout per address, not for another address") {
  Throttle t(settings());
  auto now = Throttle::Clock::time_point{} + 1h;
  for (int i = 0; i < 4; ++i) {
    t.failure("192.0.2.1", "user" + std::to_string(i), now);
    CHECK_FALSE(t.locked("192.0.2.1", "", now));
  }
  t.failure("192.0.2.1", "user9", now);
  CHECK(t.locked("192.0.2.1", "", now));
  CHECK(t.locked("192.0.2.1", "anyone", now));
  CHECK_FALSE(t.locked("192.0.2.2", "user1", now));
  CHECK(t.delay("192.0.2.2", "user1", now) == 100ms);
  // The window passes: forgotten.
  CHECK_FALSE(t.locked("192.0.2.1", "", now + 61s));
  CHECK(t.delay("192.0.2.1", "", now + 61s) == 0ms);
}

TEST_CASE("throttle: lockout per account from many addresses") {
  Throttle t(settings());
  auto now = Throttle::Clock::time_point{} + 1h;
  for (int i = 0; i < 8; ++i) t.failure("192.0.2." + std::to_string(i), "victim@x", now);
  CHECK(t.locked("203.0.113.1", "victim@x", now));
  CHECK(t.locked("203.0.113.1", "VICTIM@X", now));
  CHECK_FALSE(t.locked("203.0.113.1", "other@x", now));
  CHECK(t.accountFailures("victim@x", now) == 8);
}

TEST_CASE("throttle: success resets the address and the account") {
  Throttle t(settings());
  auto now = Throttle::Clock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i) t.failure("192.0.2.1", "a@x", now);
  t.success("192.0.2.1", "a@x");
  CHECK(t.delay("192.0.2.1", "a@x", now) == 0ms);
  CHECK(t.ipFailures("192.0.2.1", now) == 0);
  CHECK(t.size() == 0);
}

TEST_CASE("throttle: an old failure does not count with a new one") {
  Throttle t(settings());
  auto now = Throttle::Clock::time_point{} + 1h;
  for (int i = 0; i < 4; ++i) t.failure("192.0.2.1", "", now);
  t.failure("192.0.2.1", "", now + 2min);
  CHECK(t.ipFailures("192.0.2.1", now + 2min) == 1);
}

TEST_CASE("throttle: bounded memory") {
  Throttle t(settings());
  auto now = Throttle::Clock::time_point{} + 1h;
  for (int i = 0; i < 1000; ++i)
    t.failure("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256),
              "u" + std::to_string(i), now + ms(i));
  CHECK(t.size() <= 100);
  // The most recent keys are kept.
  CHECK(t.ipFailures("10.0.3.231", now + 1s) == 1);
  CHECK(t.ipFailures("10.0.0.0", now + 1s) == 0);
  // Expired keys are dropped on the next failure.
  t.failure("192.0.2.1", "", now + 2h);
  CHECK(t.size() == 1);
}

TEST_CASE("throttle: IPv6 addresses count by /64") {
  CHECK(Throttle::ipKey("2001:db8:1:2:3:4:5:6") == Throttle::ipKey("2001:db8:1:2::9"));
  CHECK(Throttle::ipKey("2001:db8:1:2::9") != Throttle::ipKey("2001:db8:1:3::9"));
  CHECK(Throttle::ipKey("192.0.2.1") != Throttle::ipKey("192.0.2.2"));
  CHECK(Throttle::ipKey("not an address") == "a:not an address");
  Throttle t(settings());
  auto now = Throttle::Clock::time_point{} + 1h;
  for (int i = 0; i < 5; ++i) t.failure("2001:db8::" + std::to_string(i + 1), "", now);
  CHECK(t.locked("2001:db8::ffff", "", now));
}

TEST_CASE("throttle: lockout 0 never locks") {
  auto s = settings();
  s.ipLockout = 0;
  s.accountLockout = 0;
  Throttle t(s);
  auto now = Throttle::Clock::time_point{} + 1h;
  for (int i = 0; i < 50; ++i) t.failure("192.0.2.1", "a@x", now);
  CHECK_FALSE(t.locked("192.0.2.1", "a@x", now));
  CHECK(t.delay("192.0.2.1", "a@x", now) == 1000ms);
}

TEST_CASE("throttle: the key cap is exact and evicts the least recently failed key") {
  Throttle t(settings());  // maxKeys 100
  auto now = Throttle::Clock::time_point{} + 1h;
  // 50 addresses with no account: 50 keys.
  for (int i = 0; i < 50; ++i) t.failure("10.1.0." + std::to_string(i), "", now + ms(i));
  CHECK(t.size() == 50);
  // The oldest one fails again: it becomes the most recent.
  t.failure("10.1.0.0", "", now + 100ms);
  CHECK(t.size() == 50);
  // 60 more keys: 10 over the cap, the 10 least recently failed go.
  for (int i = 0; i < 60; ++i) t.failure("10.2.0." + std::to_string(i), "", now + 200ms + ms(i));
  CHECK(t.size() == 100);
  const auto later = now + 1s;
  CHECK(t.ipFailures("10.1.0.0", later) == 2);  // refreshed, so kept
  for (int i = 1; i <= 10; ++i) CHECK(t.ipFailures("10.1.0." + std::to_string(i), later) == 0);
  CHECK(t.ipFailures("10.1.0.11", later) == 1);
  CHECK(t.ipFailures("10.2.0.59", later) == 1);
  // A key that keeps failing survives a flood of fresh user names (each of
  // its failures moves it to the back)...
  for (int round = 0; round < 5; ++round) {
    t.failure("192.0.2.9", "", later);
    for (int i = 0; i < 90; ++i)
      t.failure("198.51.100.1", "flood" + std::to_string(round * 100 + i), later);
    CHECK(t.size() == 100);
  }
  CHECK(t.ipFailures("192.0.2.9", later) == 5);
  CHECK(t.ipFailures("198.51.100.1", later) == 450);
  // ...one that stops failing goes once enough newer keys came.
  for (int i = 0; i < 99; ++i) t.failure("198.51.100.1", "more" + std::to_string(i), later);
  CHECK(t.ipFailures("192.0.2.9", later) == 0);
  CHECK(t.size() == 100);
}

TEST_CASE("throttle: a cap of 0 keeps one key") {
  auto s = settings();
  s.maxKeys = 0;
  Throttle t(s);
  auto now = Throttle::Clock::time_point{} + 1h;
  t.failure("192.0.2.1", "", now);
  t.failure("192.0.2.2", "", now);
  CHECK(t.size() == 1);
  CHECK(t.ipFailures("192.0.2.2", now) == 1);
}

TEST_CASE("throttle: a failure counts for exactly `window`") {
  Throttle t(settings());  // window 60 s, ipLockout 5
  auto now = Throttle::Clock::time_point{} + 1h;
  for (int i = 0; i < 5; ++i) t.failure("192.0.2.1", "a@x", now);
  CHECK(t.locked("192.0.2.1", "", now + 60s - 1ms));
  CHECK(t.ipFailures("192.0.2.1", now + 60s - 1ms) == 5);
  CHECK(t.delay("192.0.2.1", "", now + 60s - 1ms) == 1000ms);
  CHECK_FALSE(t.locked("192.0.2.1", "", now + 60s));
  CHECK(t.ipFailures("192.0.2.1", now + 60s) == 0);
  CHECK(t.accountFailures("a@x", now + 60s) == 0);
  CHECK(t.delay("192.0.2.1", "a@x", now + 60s) == 0ms);
  // The window runs from the last failure, not the first.
  t.failure("192.0.2.3", "", now);
  t.failure("192.0.2.3", "", now + 50s);
  CHECK(t.ipFailures("192.0.2.3", now + 100s) == 2);
  // Expired entries are dropped at the next failure, whoever it is for.
  CHECK(t.size() == 3);
  t.failure("192.0.2.4", "", now + 60s);
  CHECK(t.size() == 2);  // 192.0.2.3 (last failed at +50 s) and 192.0.2.4
}

TEST_CASE("throttle: hostile keys are only compared") {
  Throttle t(settings());
  auto now = Throttle::Clock::time_point{} + 1h;
  const std::string nul("a\0b", 3);
  const std::string huge(100000, 'u');
  for (const std::string& k : {nul, huge, std::string("u:x"), std::string("a:192.0.2.1")})
    t.failure("192.0.2.1", k, now);
  CHECK(t.accountFailures(nul, now) == 1);
  CHECK(t.accountFailures(std::string("a\0c", 3), now) == 0);
  CHECK(t.accountFailures(huge, now) == 1);
  // An account named like an address key is still an account.
  CHECK(t.accountFailures("a:192.0.2.1", now) == 1);
  CHECK(t.ipFailures("192.0.2.1", now) == 4);
  CHECK(t.ipFailures("u:x", now) == 0);
}
