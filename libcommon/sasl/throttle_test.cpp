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
