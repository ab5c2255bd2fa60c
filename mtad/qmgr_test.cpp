// Tests for the queue manager's pure parts: the backoff schedule, reply
// classification, the per-recipient verdict (every mix of target outcomes,
// the queue lifetime) and the message-level helpers.
#include "mtad/qmgr.hpp"

#include <catch2/catch.hpp>

using namespace yubin;
using namespace yubin::mtad;
using queue::RcptState;
using queue::RcptStatus;
using smtp::localReply;

namespace {

RetryPolicy policy(int64_t min, int64_t max, int64_t lifetime) {
  RetryPolicy p;
  p.min = std::chrono::seconds(min);
  p.max = std::chrono::seconds(max);
  p.lifetime = std::chrono::seconds(lifetime);
  return p;
}

TargetOutcome delivered(std::string a) {
  return {std::move(a), TargetStatus::Delivered, localReply(250, "2.0.0", "ok")};
}
TargetOutcome deferred(std::string a) {
  return {std::move(a), TargetStatus::Deferred, localReply(452, "4.2.2", "over quota")};
}
TargetOutcome failed(std::string a) {
  return {std::move(a), TargetStatus::Failed, localReply(552, "5.2.2", "mailbox full")};
}
TargetOutcome remote(std::string a) {
  return {std::move(a), TargetStatus::Remote, localReply(451, "4.4.0", "remote")};
}

constexpr int64_t kArrival = 1700000000;
constexpr int64_t kNow = kArrival + 100;

}  // namespace

TEST_CASE("backoff doubles from retry_min up to retry_max", "[qmgr]") {
  RetryPolicy p = policy(300, 3600, 5 * 86400);
  struct Case {
    uint32_t attempts;
    int64_t want;
  };
  auto c = GENERATE(values<Case>({{0, 300},
                                  {1, 300},
                                  {2, 600},
                                  {3, 1200},
                                  {4, 2400},
                                  {5, 3600},
                                  {6, 3600},
                                  {1000, 3600},
                                  {UINT32_MAX, 3600}}));
  CHECK(retryDelay(c.attempts, p).count() == c.want);
}

TEST_CASE("backoff edge settings", "[qmgr]") {
  // A zero minimum would spin: at least one second.
  CHECK(retryDelay(1, policy(0, 0, 10)).count() == 1);
  CHECK(retryDelay(3, policy(0, 10, 10)).count() == 4);
  // max below min: min wins.
  CHECK(retryDelay(5, policy(60, 10, 100)).count() == 60);
  // Test settings: seconds.
  CHECK(retryDelay(1, policy(1, 4, 100)).count() == 1);
  CHECK(retryDelay(2, policy(1, 4, 100)).count() == 2);
  CHECK(retryDelay(3, policy(1, 4, 100)).count() == 4);
  CHECK(retryDelay(4, policy(1, 4, 100)).count() == 4);
}

TEST_CASE("replies are classified by their first digit", "[qmgr]") {
  CHECK(classify(localReply(250, "2.0.0", "")) == TargetStatus::Delivered);
  CHECK(classify(localReply(251, "", "")) == TargetStatus::Delivered);
  CHECK(classify(localReply(421, "4.4.2", "")) == TargetStatus::Deferred);
  CHECK(classify(localReply(452, "4.2.2", "")) == TargetStatus::Deferred);
  CHECK(classify(localReply(550, "5.1.1", "")) == TargetStatus::Failed);
  CHECK(classify(localReply(354, "", "")) == TargetStatus::Deferred);
  CHECK(classify(smtp::ClientReply()) == TargetStatus::Deferred);  // no reply at all
}

TEST_CASE("verdicts for one target", "[qmgr]") {
  RetryPolicy p = policy(300, 3600, 86400);
  RcptState fresh;
  SECTION("delivered") {
    Verdict v = decide(fresh, {delivered("bob@example.org")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Delivered);
    CHECK(v.state.attempts == 1);
    CHECK(v.state.lastAttempt == kNow);
    CHECK(v.state.nextAttempt == 0);
    CHECK(v.state.reply == "250 2.0.0 ok");
    CHECK(v.failures.empty());
    CHECK(v.split.empty());
  }
  SECTION("deferred, then again with a doubled wait") {
    Verdict v = decide(fresh, {deferred("bob@example.org")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Deferred);
    CHECK(v.state.attempts == 1);
    CHECK(v.state.nextAttempt == kNow + 300);
    CHECK(v.state.reply == "452 4.2.2 over quota");
    Verdict again = decide(v.state, {deferred("bob@example.org")}, kNow + 300, kArrival, p);
    CHECK(again.state.attempts == 2);
    CHECK(again.state.nextAttempt == kNow + 300 + 600);
    CHECK(again.failures.empty());
    // And delivered at last.
    Verdict done = decide(again.state, {delivered("bob@example.org")}, kNow + 900, kArrival, p);
    CHECK(done.state.status == RcptStatus::Delivered);
    CHECK(done.state.attempts == 3);
  }
  SECTION("bounced") {
    Verdict v = decide(fresh, {failed("bob@example.org")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Bounced);
    CHECK(v.state.reply == "552 5.2.2 mailbox full");
    REQUIRE(v.failures.size() == 1);
    CHECK(v.failures[0].address == "bob@example.org");
    CHECK(v.failures[0].status == "5.2.2");
  }
  SECTION("deferred past the queue lifetime bounces with 5.4.7") {
    RcptState old;
    old.status = RcptStatus::Deferred;
    old.attempts = 7;
    Verdict v = decide(old, {deferred("bob@example.org")}, kArrival + 86400, kArrival, p);
    CHECK(v.state.status == RcptStatus::Bounced);
    CHECK(v.state.attempts == 8);
    CHECK(v.state.reply == "452 4.2.2 over quota");
    REQUIRE(v.failures.size() == 1);
    CHECK(v.failures[0].status == "5.4.7");
    CHECK(v.failures[0].reply.summary() == "452 4.2.2 over quota");
    // One second earlier it is still deferred.
    Verdict before = decide(old, {deferred("bob@example.org")}, kArrival + 86399, kArrival, p);
    CHECK(before.state.status == RcptStatus::Deferred);
  }
  SECTION("a remote target stays pending, untouched") {
    Verdict v = decide(fresh, {remote("x@example.net")}, kNow, kArrival, p);
    CHECK(v.state == fresh);
    CHECK(v.remotePending);
    CHECK(v.split.empty());
    // Even past the lifetime: remote delivery decides that, later.
    Verdict late = decide(fresh, {remote("x@example.net")}, kArrival + 10 * 86400, kArrival, p);
    CHECK(late.state == fresh);
  }
}

TEST_CASE("verdicts for an alias with several targets", "[qmgr]") {
  RetryPolicy p = policy(300, 3600, 86400);
  RcptState fresh;
  SECTION("all delivered") {
    Verdict v = decide(fresh, {delivered("a@x"), delivered("b@x")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Delivered);
    CHECK(v.split.empty());
  }
  SECTION("one delivered, one deferred: the deferred one is split off") {
    Verdict v = decide(fresh, {delivered("a@x"), deferred("b@x")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Delivered);
    CHECK(v.split == std::vector<std::string>{"b@x"});
    CHECK(v.failures.empty());
  }
  SECTION("one delivered, one failed: final, the failure is reported") {
    Verdict v = decide(fresh, {delivered("a@x"), failed("b@x")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Delivered);
    CHECK(v.split.empty());
    REQUIRE(v.failures.size() == 1);
    CHECK(v.failures[0].address == "b@x");
  }
  SECTION("failed and deferred: bounced for one, the other split off") {
    Verdict v = decide(fresh, {failed("a@x"), deferred("b@x")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Bounced);
    CHECK(v.split == std::vector<std::string>{"b@x"});
    REQUIRE(v.failures.size() == 1);
  }
  SECTION("delivered locally, forwarded off-site: the remote one is split off") {
    Verdict v = decide(fresh, {delivered("a@x"), remote("r@example.net")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Delivered);
    CHECK(v.split == std::vector<std::string>{"r@example.net"});
    CHECK_FALSE(v.remotePending);
  }
  SECTION("deferred and remote: deferred as a whole") {
    Verdict v = decide(fresh, {deferred("a@x"), remote("r@example.net")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Deferred);
    CHECK(v.split.empty());
    CHECK(v.remotePending);
  }
  SECTION("all deferred") {
    Verdict v = decide(fresh, {deferred("a@x"), deferred("b@x")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Deferred);
    CHECK(v.split.empty());
  }
  SECTION("all failed: every one reported") {
    Verdict v = decide(fresh, {failed("a@x"), failed("b@x")}, kNow, kArrival, p);
    CHECK(v.state.status == RcptStatus::Bounced);
    CHECK(v.failures.size() == 2);
  }
}

TEST_CASE("message-level helpers", "[qmgr]") {
  queue::MessageState s;
  s.rcpts.resize(3);
  CHECK_FALSE(allFinal(s));
  CHECK(nextWake(s) == 0);
  CHECK(isDue(s.rcpts[0], kNow));
  s.rcpts[0].status = RcptStatus::Delivered;
  s.rcpts[1].status = RcptStatus::Bounced;
  s.rcpts[2].status = RcptStatus::Deferred;
  s.rcpts[2].nextAttempt = kNow + 10;
  CHECK_FALSE(allFinal(s));
  CHECK(nextWake(s) == kNow + 10);
  CHECK_FALSE(isDue(s.rcpts[2], kNow));
  CHECK(isDue(s.rcpts[2], kNow + 10));
  CHECK_FALSE(isDue(s.rcpts[0], kNow));
  CHECK_FALSE(isDue(s.rcpts[1], kNow));
  s.rcpts.push_back(RcptState{RcptStatus::Deferred, 1, kNow, kNow + 5, "451"});
  CHECK(nextWake(s) == kNow + 5);
  s.rcpts.push_back(RcptState{RcptStatus::Held, 0, 0, 0, ""});
  CHECK_FALSE(isDue(s.rcpts.back(), kNow));
  CHECK_FALSE(isFinal(RcptStatus::Held));
  s.rcpts.resize(2);
  CHECK(allFinal(s));
  CHECK(nextWake(s) == 0);
}
