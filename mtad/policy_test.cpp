// Unit tests for mtad's inbound policy: RFC 5321 §4.5.1 postmaster (bare
// <Postmaster> in any case goes to the primary local domain; postmaster@
// any local domain falls back to [global] postmaster; 550 5.1.1 when
// nothing takes it), local users, the catch-all, relaying and routing
// tricks refused, and the submission socket's policy.
#include "mtad/policy.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "auth/test_util.hpp"
#include "base/fs.hpp"
#include "config/config.hpp"
#include "mail/address.hpp"

using namespace yubin;
using namespace yubin::mtad;
using yubin::auth::testing::TempDir;

namespace {

struct Fixture {
  TempDir dir;
  std::string users = dir.file("users");
  std::string aliases = dir.file("aliases");

  explicit Fixture(const std::string& aliasText = "") {
    // The hash is never checked here.
    REQUIRE(atomicWrite(users,
                        "admin@b.example:*:::maildir\n"
                        "alice@a.example:*:::maildir\n",
                        0640)
                .ok());
    REQUIRE(atomicWrite(aliases, aliasText, 0640).ok());
  }

  // `domains` as the admin wrote them: the first is the primary one.
  std::unique_ptr<auth::Directory> directory(const std::string& postmaster,
                                             const std::string& domains = "b.example, a.example") {
    auto cfg = config::Config::parse("version = 1\n[global]\ndomains = " + domains +
                                         "\nusers_file = " + users + "\naliases_file = " + aliases +
                                         "\npostmaster = " + postmaster + "\n",
                                     "test.conf");
    REQUIRE(cfg.ok());
    auto d = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(*cfg));
    REQUIRE(d->reload().ok());
    return d;
  }
};

// The RCPT argument as the engine parses it.
mail::Address rcpt(const std::string& path) {
  auto p = mail::parseRcptArguments("TO:<" + path + ">", true, false);
  REQUIRE(p.ok());
  return p->address;
}

// "250" when accepted, else the reply's code and enhanced code.
std::string verdict(smtp::Policy& policy, const std::string& path) {
  smtp::Envelope env;
  env.clientAddress = "192.0.2.1";
  auto r = policy.checkRecipient(env, rcpt(path));
  if (!r) return "250";
  return std::to_string(r->code) + " " + r->enhanced;
}

}  // namespace

TEST_CASE("postmaster: bare, any case, every local domain, the fallback", "[policy]") {
  struct Case {
    const char* aliases;
    const char* postmaster;  // [global] postmaster
    const char* path;
    const char* verdict;
    const char* queuedAs;
  };
  auto c = GENERATE(values<Case>({
      // Nothing configured: 550 5.1.1, bare or not.
      {"", "", "postmaster", "550 5.1.1", "postmaster@b.example"},
      {"", "", "POSTMASTER", "550 5.1.1", "postmaster@b.example"},
      {"", "", "postmaster@a.example", "550 5.1.1", "postmaster@a.example"},
      // The fallback takes every local domain's postmaster, in any case.
      {"", "admin@b.example", "postmaster", "250", "postmaster@b.example"},
      {"", "admin@b.example", "PostMaster", "250", "postmaster@b.example"},
      {"", "admin@b.example", "postmaster@a.example", "250", "postmaster@a.example"},
      {"", "admin@b.example", "POSTMASTER@A.EXAMPLE", "250", "POSTMASTER@a.example"},
      {"", "someone@remote.example", "postmaster", "250", "postmaster@b.example"},
      // An alias comes first; it covers its domain only.
      {"postmaster@b.example: alice@a.example\n", "", "Postmaster", "250", "postmaster@b.example"},
      {"postmaster@b.example: alice@a.example\n", "", "postmaster@a.example", "550 5.1.1",
       "postmaster@a.example"},
      // A fallback that reaches no one: the admin's error, said as 451.
      {"", "ghost@b.example", "postmaster", "451 4.3.0", "postmaster@b.example"},
      // The fallback is for postmaster only.
      {"", "admin@b.example", "webmaster@a.example", "550 5.1.1", "webmaster@a.example"},
      // Not a local domain: no relaying, postmaster or not.
      {"", "admin@b.example", "postmaster@remote.example", "554 5.7.1",
       "postmaster@remote.example"},
  }));
  Fixture f(c.aliases);
  auto dir = f.directory(c.postmaster);
  InboundPolicy policy(*dir, "");
  INFO(c.path << " with postmaster=" << c.postmaster << " aliases=" << c.aliases);
  CHECK(verdict(policy, c.path) == c.verdict);
  CHECK(policy.queuedAddress(rcpt(c.path)) == c.queuedAs);
}

TEST_CASE("bare <Postmaster> goes to the first domain listed, not the first sorted", "[policy]") {
  Fixture f;
  auto dir = f.directory("admin@b.example", "z.example, b.example, a.example");
  InboundPolicy policy(*dir, "");
  CHECK(policy.queuedAddress(rcpt("Postmaster")) == "postmaster@z.example");
  CHECK(verdict(policy, "Postmaster") == "250");
}

TEST_CASE("users, the catch-all, relaying and routing tricks", "[policy]") {
  Fixture f;
  auto dir = f.directory("");
  InboundPolicy policy(*dir, "");
  CHECK(verdict(policy, "alice@a.example") == "250");
  CHECK(verdict(policy, "alice@A.EXAMPLE") == "250");
  CHECK(verdict(policy, "bob@a.example") == "550 5.1.1");
  CHECK(verdict(policy, "alice@remote.example") == "554 5.7.1");
  CHECK(verdict(policy, "alice%remote.example@a.example") == "550 5.7.1");
  policy.setCatchall("alice@a.example");
  CHECK(verdict(policy, "bob@a.example") == "250");
  CHECK(verdict(policy, "postmaster") == "250");

  // msad's socket: remote recipients are relayed, local ones still checked.
  policy.setCatchall("");
  SubmissionInPolicy submission(policy);
  CHECK(verdict(submission, "anyone@remote.example") == "250");
  CHECK(verdict(submission, "bob@a.example") == "550 5.1.1");
  CHECK(verdict(submission, "postmaster") == "550 5.1.1");
  dir->setPostmaster("alice@a.example");
  CHECK(verdict(submission, "postmaster") == "250");
  CHECK(verdict(policy, "postmaster@a.example") == "250");
}
