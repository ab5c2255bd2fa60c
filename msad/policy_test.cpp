// Tests for the submission policy: who owns which sender address (own,
// aliases reaching only the user, lists and other users' addresses),
// recipients (remote allowed, unknown local refused, routing tricks), and
// the per-user rate limits over a sliding hour.
#include "msad/policy.hpp"

#include <catch2/catch.hpp>

#include "auth/password.hpp"
#include "auth/test_util.hpp"
#include "base/fs.hpp"
#include "config/config.hpp"

using namespace yubin;
using namespace yubin::msad;
using namespace std::chrono_literals;

namespace {

struct Fixture {
  auth::testing::TempDir dir;
  std::unique_ptr<auth::Directory> directory;
  RateLimiter rate{RateLimiter::Settings{3, 5}};
  std::unique_ptr<SubmissionPolicy> policy;

  Fixture() {
    auto hash = *auth::hashPassword("pw", auth::PasswordCost::minimum());
    REQUIRE(atomicWrite(dir.file("users"),
                        "alice@example.org:" + hash + ":::maildir\n" + "bob@example.org:" + hash +
                            ":::maildir\n",
                        0640)
                .ok());
    REQUIRE(atomicWrite(dir.file("aliases"),
                        "al@example.org: alice@example.org\n"
                        "team@example.org: alice@example.org, bob@example.org\n"
                        "fwd@example.org: alice@example.org, someone@remote.example\n"
                        "@alias.example: alice@example.org\n",
                        0640)
                .ok());
    auto cfg = config::Config::parse(
        "version = 1\n[global]\ndomains = example.org, alias.example\nusers_file = " +
            dir.file("users") + "\naliases_file = " + dir.file("aliases") + "\n",
        "test.conf");
    REQUIRE(cfg.ok());
    directory = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(*cfg));
    REQUIRE(directory->reload().ok());
    policy = std::make_unique<SubmissionPolicy>(*directory, rate);
  }
};

mail::Address addr(std::string local, std::string domain) {
  return {std::move(local), std::move(domain)};
}

}  // namespace

TEST_CASE("submission policy: the sender must be the user's") {
  Fixture f;
  struct Case {
    mail::Address from;
    bool owned;
  };
  const std::vector<Case> cases = {
      {addr("alice", "example.org"), true},
      {addr("alice", "EXAMPLE.ORG"), true},
      {addr("al", "example.org"), true},          // alias reaching only alice
      {addr("anything", "alias.example"), true},  // catch-all reaching only alice
      {addr("team", "example.org"), false},       // a list: reaches bob too
      {addr("fwd", "example.org"), false},        // reaches a remote address too
      {addr("bob", "example.org"), false},
      {addr("Alice", "example.org"), false},  // local parts are case-sensitive
      {addr("ghost", "example.org"), false},
      {addr("alice", "remote.example"), false},
      {addr("postmaster", ""), false},
  };
  for (const auto& c : cases) {
    INFO(c.from.local << "@" << c.from.domain);
    CHECK(f.policy->owns("alice@example.org", c.from) == c.owned);
    smtp::Envelope env;
    env.authUser = "alice@example.org";
    auto r = f.policy->checkSender(env, c.from);
    if (c.owned) {
      CHECK_FALSE(r);
    } else {
      REQUIRE(r);
      CHECK(r->code == 553);
      CHECK(r->enhanced == "5.7.1");
    }
  }
  smtp::Envelope env;
  env.authUser = "alice@example.org";
  env.nullSender = true;
  CHECK_FALSE(f.policy->checkSender(env, {}));
  env.authUser.clear();
  CHECK(f.policy->checkSender(env, {})->code == 530);
}

TEST_CASE("submission policy: recipients") {
  Fixture f;
  smtp::Envelope env;
  env.authUser = "alice@example.org";
  CHECK_FALSE(f.policy->checkRecipient(env, addr("anyone", "remote.example")));
  CHECK_FALSE(f.policy->checkRecipient(env, addr("bob", "example.org")));
  CHECK_FALSE(f.policy->checkRecipient(env, addr("team", "example.org")));
  CHECK_FALSE(f.policy->checkRecipient(env, addr("x", "alias.example")));
  CHECK_FALSE(f.policy->checkRecipient(env, addr("Postmaster", "")));
  CHECK(f.policy->checkRecipient(env, addr("ghost", "example.org"))->code == 550);
  CHECK(f.policy->checkRecipient(env, addr("a%b", "remote.example"))->code == 550);
}

TEST_CASE("rate limits: messages and recipients per hour") {
  RateLimiter r({2, 5});
  auto t0 = RateLimiter::Clock::time_point{} + 10h;
  CHECK(r.allowMessage("u", t0));
  CHECK(r.allowRecipients("u", 5, t0));
  CHECK_FALSE(r.allowRecipients("u", 6, t0));
  r.record("u", 3, t0);
  CHECK(r.allowMessage("u", t0));
  CHECK(r.allowRecipients("u", 2, t0));
  CHECK_FALSE(r.allowRecipients("u", 3, t0));
  r.record("u", 1, t0 + 10min);
  CHECK_FALSE(r.allowMessage("u", t0 + 20min));
  CHECK(r.allowMessage("other", t0 + 20min));
  // The first message leaves the window.
  CHECK(r.allowMessage("u", t0 + 61min));
  CHECK(r.allowRecipients("u", 4, t0 + 61min));
  CHECK_FALSE(r.allowRecipients("u", 5, t0 + 61min));
  // All gone: the user's entry too.
  CHECK(r.allowMessage("u", t0 + 3h));
  CHECK(r.users() <= 1);
  RateLimiter none({0, 0});
  for (int i = 0; i < 100; ++i) none.record("u", 100, t0);
  CHECK(none.allowMessage("u", t0));
  CHECK(none.users() == 0);
}

TEST_CASE("submission policy: rate limit answers 450 4.7.1") {
  Fixture f;
  smtp::Envelope env;
  env.authUser = "alice@example.org";
  auto now = RateLimiter::Clock::now();
  f.rate.record(env.authUser, 4, now);
  CHECK_FALSE(f.policy->checkRecipient(env, addr("x", "remote.example")));  // 4 + 1
  env.recipients.resize(1);
  auto r = f.policy->checkRecipient(env, addr("x", "remote.example"));
  REQUIRE(r);
  CHECK(r->code == 450);
  CHECK(r->enhanced == "4.7.1");
  f.rate.record(env.authUser, 0, now);
  f.rate.record(env.authUser, 0, now);
  auto s = f.policy->checkSender(env, addr("alice", "example.org"));
  REQUIRE(s);
  CHECK(s->code == 450);
}
