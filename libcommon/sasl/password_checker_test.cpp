// Unit tests for the PasswordChecker: results come back on the loop, in
// any order, never inside check(); cancelled checks never call back;
// unknown users are checked against a dummy hash; a full queue refuses;
// destruction with checks pending is clean.
#include "sasl/password_checker.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <optional>

#include "auth/password.hpp"

using namespace yubin;

namespace {

struct Loop {
  yubin::event::EventBase base = yubin::event::newEventBase().value();
  std::map<std::string, std::string> hashes;
  int lookups = 0;

  sasl::PasswordChecker::HashLookup lookup() {
    return [this](std::string_view user) {
      ++lookups;
      auto it = hashes.find(std::string(user));
      return it != hashes.end() ? it->second : auth::dummyHashLike("");
    };
  }
  void runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 2000 && !done(); ++i) event_base_loop(base.get(), EVLOOP_ONCE);
  }
};

std::string hashOf(const std::string& pw) {
  return *auth::hashPassword(pw, auth::PasswordCost::minimum());
}

}  // namespace

TEST_CASE("password checker: good, bad and unknown, back on the loop") {
  Loop l;
  l.hashes["a"] = hashOf("pa");
  l.hashes["b"] = hashOf("pb");
  auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(), {.threads = 2});
  REQUIRE(c.ok());
  std::map<std::string, bool> results;
  bool inside = true;
  auto record = [&](std::string key) {
    return [&, key](bool ok) {
      CHECK_FALSE(inside);
      results[key] = ok;
    };
  };
  REQUIRE((*c)->check("a", "pa", record("a-good")));
  REQUIRE((*c)->check("a", "pb", record("a-bad")));
  REQUIRE((*c)->check("b", "pb", record("b-good")));
  REQUIRE((*c)->check("ghost", "pa", record("ghost")));
  REQUIRE((*c)->check("a", "", record("a-empty")));
  inside = false;
  CHECK((*c)->pending() == 5);
  l.runUntil([&] { return results.size() == 5; });
  CHECK(results == std::map<std::string, bool>{{"a-bad", false},
                                               {"a-empty", false},
                                               {"a-good", true},
                                               {"b-good", true},
                                               {"ghost", false}});
  CHECK((*c)->pending() == 0);
  CHECK(l.lookups == 5);
}

TEST_CASE("password checker: cancelled checks never call back") {
  Loop l;
  l.hashes["a"] = hashOf("pa");
  auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(), {.threads = 1});
  REQUIRE(c.ok());
  int called = 0;
  bool lastDone = false;
  auto t = (*c)->check("a", "pa", [&](bool) { ++called; });
  REQUIRE(t);
  REQUIRE((*c)->check("a", "pa", [&](bool ok) { lastDone = ok; }));
  (*c)->cancel(*t);
  l.runUntil([&] { return lastDone; });
  CHECK(lastDone);
  CHECK(called == 0);
}

TEST_CASE("password checker: a full queue refuses; destruction with work pending") {
  Loop l;
  l.hashes["a"] = hashOf("pa");
  auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(), {.threads = 1, .maxQueued = 3});
  REQUIRE(c.ok());
  int accepted = 0;
  for (int i = 0; i < 50; ++i)
    if ((*c)->check("a", "pa", [](bool) { FAIL("called after destruction"); })) ++accepted;
  CHECK(accepted >= 3);
  CHECK(accepted < 50);
  c->reset();  // joins the worker; no callback runs
  event_base_loop(l.base.get(), EVLOOP_NONBLOCK);
}

TEST_CASE("password checker: a callback may queue the next check") {
  Loop l;
  l.hashes["a"] = hashOf("pa");
  auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(), {.threads = 2});
  REQUIRE(c.ok());
  int rounds = 0;
  std::function<void(bool)> again = [&](bool ok) {
    CHECK(ok);
    if (++rounds < 5) REQUIRE((*c)->check("a", "pa", again));
  };
  REQUIRE((*c)->check("a", "pa", again));
  l.runUntil([&] { return rounds == 5; });
  CHECK(rounds == 5);
}

TEST_CASE("password checker: a full queue refuses at once; the refusal is temporary") {
  Loop l;
  // A hash that takes a while to verify (64 MiB, 3 passes: tenths of a
  // second), so the one worker is still on its first check while the loop
  // below fills the queue.
  l.hashes["slow"] = *auth::hashPassword("pw", auth::PasswordCost{3, size_t{64} << 20});
  l.hashes["a"] = hashOf("pa");
  auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(), {.threads = 1, .maxQueued = 2});
  REQUIRE(c.ok());
  std::vector<bool> oks;
  size_t accepted = 0;
  for (int i = 0; i < 20; ++i)
    if ((*c)->check("slow", "pw", [&](bool ok) { oks.push_back(ok); })) ++accepted;
  // Two wait in the queue, and the worker may have taken one already.
  CHECK(accepted >= 2);
  CHECK(accepted <= 3);
  // A refused check leaves nothing behind: no callback will run for it.
  CHECK((*c)->pending() == accepted);
  CHECK(l.lookups == 20);
  l.runUntil([&] { return oks.size() == accepted; });
  CHECK(oks == std::vector<bool>(accepted, true));
  CHECK((*c)->pending() == 0);
  // Drained: checks are taken again (the glue answers 454 4.7.0, a
  // temporary failure, while it is full).
  bool again = false;
  REQUIRE((*c)->check("a", "pa", [&](bool ok) { again = ok; }));
  l.runUntil([&] { return again; });
  CHECK(again);
  CHECK(oks.size() == accepted);  // the refused ones never called back
}

namespace {

// Runs one check to its end; its result.
bool checkNow(Loop& l, sasl::PasswordChecker& c, const std::string& user, const std::string& pw) {
  std::optional<bool> got;
  bool inside = true;
  REQUIRE(c.check(user, pw, [&](bool ok) {
    CHECK_FALSE(inside);
    got = ok;
  }));
  inside = false;
  l.runUntil([&] { return got.has_value(); });
  REQUIRE(got.has_value());
  return *got;
}

}  // namespace

TEST_CASE("password checker: a success is remembered, a failure never") {
  Loop l;
  l.hashes["a"] = hashOf("pa");
  auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(), {.threads = 1});
  REQUIRE(c.ok());
  auto& k = **c;
  CHECK_FALSE(checkNow(l, k, "a", "wrong"));
  CHECK(k.cached() == 0);
  CHECK(checkNow(l, k, "a", "pa"));
  CHECK(k.cacheHits() == 0);
  CHECK(k.cached() == 1);
  // Same password, same hash: from the cache, still answered on the loop.
  CHECK(checkNow(l, k, "a", "pa"));
  CHECK(checkNow(l, k, "a", "pa"));
  CHECK(k.cacheHits() == 2);
  // A wrong password is checked in full, and fails.
  CHECK_FALSE(checkNow(l, k, "a", "pA"));
  CHECK_FALSE(checkNow(l, k, "a", ""));
  CHECK(k.cacheHits() == 2);
  // An unknown user never hits, whatever the password.
  CHECK_FALSE(checkNow(l, k, "ghost", "pa"));
  CHECK(k.cacheHits() == 2);

  SECTION("a new password (a new hash) makes the old one fail") {
    l.hashes["a"] = hashOf("new");
    CHECK_FALSE(checkNow(l, k, "a", "pa"));
    CHECK(checkNow(l, k, "a", "new"));
    CHECK(checkNow(l, k, "a", "new"));
    CHECK(k.cacheHits() == 3);
  }
  SECTION("a removed user fails") {
    l.hashes.erase("a");
    CHECK_FALSE(checkNow(l, k, "a", "pa"));
    CHECK(k.cacheHits() == 2);
  }
}

TEST_CASE("password checker: cache bound, expiry and off") {
  Loop l;
  for (const char* u : {"a", "b", "c"}) l.hashes[u] = hashOf(std::string("p") + u);

  SECTION("at most cacheEntries users") {
    auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(),
                                           {.threads = 1, .cacheEntries = 2});
    REQUIRE(c.ok());
    for (const char* u : {"a", "b", "c"}) CHECK(checkNow(l, **c, u, std::string("p") + u));
    CHECK((*c)->cached() == 2);
    CHECK(checkNow(l, **c, "c", "pc"));  // the newest is always kept
    CHECK((*c)->cacheHits() == 1);
  }
  SECTION("an expired entry is checked in full") {
    auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(),
                                           {.threads = 1, .cacheTtl = std::chrono::seconds(0)});
    REQUIRE(c.ok());
    CHECK(checkNow(l, **c, "a", "pa"));
    CHECK(checkNow(l, **c, "a", "pa"));
    CHECK((*c)->cacheHits() == 0);
  }
  SECTION("cacheEntries = 0: no cache") {
    auto c = sasl::PasswordChecker::create(l.base.get(), l.lookup(),
                                           {.threads = 1, .cacheEntries = 0});
    REQUIRE(c.ok());
    CHECK(checkNow(l, **c, "a", "pa"));
    CHECK(checkNow(l, **c, "a", "pa"));
    CHECK((*c)->cacheHits() == 0);
    CHECK((*c)->cached() == 0);
  }
}
