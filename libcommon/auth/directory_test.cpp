// Unit tests for the Directory facade: local domains, resolve (users,
// aliases, remote, unknown, loops, unavailable files), password checks for
// good/bad/unknown/disabled users, SCRAM key lookups and addressesOf.
#include "auth/directory.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "auth/password.hpp"
#include "auth/test_util.hpp"
#include "base/fs.hpp"
#include "config/config.hpp"

using namespace yubin;
using namespace yubin::auth;
using yubin::auth::testing::TempDir;

namespace {

using V = std::vector<std::string>;

std::string hashOf(const std::string& pw) { return *hashPassword(pw, PasswordCost::minimum()); }

struct Fixture {
  TempDir dir;
  std::string users = dir.file("users");
  std::string aliases = dir.file("aliases");

  Fixture() {
    std::string scram = formatScramField(*scramDeriveKeys("bobpw", "bobsalt", 4096));
    REQUIRE(atomicWrite(users,
                        "bob@example.org:" + hashOf("bobpw") + ":" + scram +
                            "::maildir:\n"
                            "carol@example.org:" +
                            hashOf("carolpw") +
                            "::carol.mbox:mbox\n"
                            "nologin@example.org:*:::maildir\n"
                            "dan@example.net:" +
                            hashOf("danpw") + ":::maildir\n",
                        0640)
                .ok());
    REQUIRE(atomicWrite(aliases,
                        "info@example.org: bob@example.org, carol@example.org\n"
                        "fwd@example.org: someone@remote.example, bob@example.org\n"
                        "broken@example.org: ghost@example.org\n"
                        "loop@example.org: loop2@example.org\n"
                        "loop2@example.org: loop@example.org\n"
                        "@example.net: dan@example.net\n",
                        0640)
                .ok());
  }

  DirectorySettings settings() const {
    auto cfg = config::Config::parse(
        "version = 1\n[global]\ndomains = Example.org, example.NET\n"
        "users_file = " +
            users + "\naliases_file = " + aliases + "\nmail_root = /var/mail/yubin\n",
        "test.conf");
    REQUIRE(cfg.ok());
    return DirectorySettings::fromConfig(*cfg);
  }
};

V userAddresses(const Resolution& r) {
  V out;
  for (const auto& u : r.users) out.push_back(u.address);
  return out;
}

}  // namespace

TEST_CASE("local domains are case-insensitive") {
  LocalDomains d({"Example.ORG", "example.org", "b.example."});
  CHECK(d.list() == V{"b.example", "example.org"});
  CHECK(d.contains("example.org"));
  CHECK(d.contains("EXAMPLE.org"));
  CHECK(d.contains("example.org."));
  CHECK(d.contains("B.Example"));
  CHECK_FALSE(d.contains("example.com"));
  CHECK_FALSE(d.contains("sub.example.org"));
  CHECK_FALSE(d.contains(""));
  CHECK_FALSE(d.contains("."));
}

TEST_CASE("the primary domain is the first one listed") {
  CHECK(LocalDomains({"Zeta.Example.", "alpha.example"}).primary() == "zeta.example");
  CHECK(LocalDomains({"Zeta.Example.", "alpha.example"}).list() ==
        V{"alpha.example", "zeta.example"});
  CHECK(LocalDomains({"", "b.example"}).primary() == "b.example");
  CHECK(LocalDomains(V{}).primary().empty());
}

TEST_CASE("postmaster: users and aliases first, then [global] postmaster") {
  Fixture f;
  struct Case {
    const char* fallback;  // [global] postmaster
    const char* address;
    Resolution::Status status;
    V users;
    V remote;
  };
  using S = Resolution::Status;
  auto c = GENERATE(values<Case>({
      // No fallback: an unknown postmaster is an unknown user.
      {"", "postmaster@example.org", S::UnknownUser, {}, {}},
      {"", "PostMaster@Example.ORG", S::UnknownUser, {}, {}},
      // The catch-all alias of example.net takes its postmaster.
      {"", "postmaster@example.net", S::Ok, {"dan@example.net"}, {}},
      {"bob@example.org", "postmaster@example.net", S::Ok, {"dan@example.net"}, {}},
      // The fallback for every local domain, in any case.
      {"bob@example.org", "postmaster@example.org", S::Ok, {"bob@example.org"}, {}},
      {"bob@example.org", "POSTMASTER@EXAMPLE.ORG", S::Ok, {"bob@example.org"}, {}},
      {"info@example.org",
       "Postmaster@example.org",
       S::Ok,
       {"bob@example.org", "carol@example.org"},
       {}},
      {"admin@remote.example", "postmaster@example.org", S::Ok, {}, {"admin@remote.example"}},
      // Only postmaster falls back; other unknown users stay unknown.
      {"bob@example.org", "webmaster@example.org", S::UnknownUser, {}, {}},
      {"bob@example.org", "postmaster2@example.org", S::UnknownUser, {}, {}},
      // Non-local postmasters are remote as ever.
      {"bob@example.org", "postmaster@remote.example", S::Ok, {}, {"postmaster@remote.example"}},
      // A fallback that reaches no one is the admin's error, never a loop.
      {"ghost@example.org", "postmaster@example.org", S::AliasError, {}, {}},
      {"postmaster@example.org", "postmaster@example.org", S::AliasError, {}, {}},
      {"not an address", "postmaster@example.org", S::AliasError, {}, {}},
      {"loop@example.org", "postmaster@example.org", S::AliasError, {}, {}},
  }));
  DirectorySettings settings = f.settings();
  settings.postmaster = c.fallback;
  Directory dir(settings);
  auto r = dir.resolve(c.address);
  INFO(c.fallback << " / " << c.address << ": " << r.error);
  CHECK(r.status == c.status);
  CHECK(userAddresses(r) == c.users);
  CHECK(r.remote == c.remote);
  if (r.status == S::AliasError && std::string(c.fallback) != "loop@example.org")
    CHECK(r.error.find("postmaster fallback " + std::string(c.fallback) + " reaches no one") == 0);
}

TEST_CASE("postmaster: the domains that lack one, and a fallback set later") {
  Fixture f;
  Directory dir(f.settings());
  // example.net has its catch-all; example.org has no postmaster.
  CHECK(dir.domainsWithoutPostmaster() == V{"example.org"});
  dir.setPostmaster("carol@example.org");
  CHECK(dir.domainsWithoutPostmaster().empty());
  CHECK(userAddresses(dir.resolve("postmaster@example.org")) == V{"carol@example.org"});
  dir.setPostmaster("ghost@example.org");
  CHECK(dir.domainsWithoutPostmaster() == V{"example.org"});
  dir.setPostmaster("");
  CHECK(dir.domainsWithoutPostmaster() == V{"example.org"});
}

TEST_CASE("postmaster: [global] postmaster is read from the config") {
  auto cfg = config::Config::parse(
      "version = 1\n[global]\ndomains = example.org\npostmaster = admin@example.org\n",
      "test.conf");
  REQUIRE(cfg.ok());
  CHECK(DirectorySettings::fromConfig(*cfg).postmaster == "admin@example.org");
}

TEST_CASE("resolve: users, aliases, remote addresses and errors") {
  Fixture f;
  Directory dir(f.settings());
  CHECK(dir.isLocalDomain("EXAMPLE.ORG"));
  CHECK_FALSE(dir.isLocalDomain("remote.example"));

  auto r = dir.resolve("bob@EXAMPLE.org");
  REQUIRE(r.ok());
  CHECK(userAddresses(r) == V{"bob@example.org"});
  CHECK(r.users[0].mailbox == "/var/mail/yubin/example.org/bob/Maildir");
  CHECK(r.remote.empty());

  r = dir.resolve("info@example.org");
  REQUIRE(r.ok());
  CHECK(userAddresses(r) == V{"bob@example.org", "carol@example.org"});
  CHECK(r.users[1].mailbox == "/var/mail/yubin/carol.mbox");

  r = dir.resolve("fwd@example.org");
  REQUIRE(r.ok());
  CHECK(userAddresses(r) == V{"bob@example.org"});
  CHECK(r.remote == V{"someone@remote.example"});

  r = dir.resolve("Someone@Remote.Example");
  REQUIRE(r.ok());
  CHECK(r.users.empty());
  CHECK(r.remote == V{"Someone@Remote.Example"});

  r = dir.resolve("whoever@example.net");  // catch-all
  REQUIRE(r.ok());
  CHECK(userAddresses(r) == V{"dan@example.net"});

  r = dir.resolve("nologin@example.org");  // no login, still gets mail
  REQUIRE(r.ok());
  CHECK(userAddresses(r) == V{"nologin@example.org"});

  r = dir.resolve("Bob@example.org");
  CHECK(r.status == Resolution::Status::UnknownUser);
  CHECK(r.error == "unknown user Bob@example.org");
  CHECK(r.users.empty());

  r = dir.resolve("broken@example.org");
  CHECK(r.status == Resolution::Status::AliasError);
  CHECK(r.error == "alias of broken@example.org reaches unknown user ghost@example.org");

  r = dir.resolve("loop@example.org");
  CHECK(r.status == Resolution::Status::AliasError);
  CHECK(r.error == "alias loop: loop@example.org -> loop2@example.org -> loop@example.org");

  for (const char* bad : {"", "bob", "@example.org", "bob@", "bob@exa mple.org"}) {
    CAPTURE(bad);
    CHECK(dir.resolve(bad).status == Resolution::Status::BadAddress);
  }
}

TEST_CASE("resolve answers TempFail while a file has never been readable") {
  Fixture f;
  REQUIRE(::unlink(f.users.c_str()) == 0);
  REQUIRE(::mkdir(f.users.c_str(), 0700) == 0);
  Directory dir(f.settings());
  auto r = dir.resolve("bob@example.org");
  CHECK(r.status == Resolution::Status::TempFail);
  CHECK(r.error == "users file unavailable");
  CHECK(dir.resolve("x@remote.example").ok());  // remote needs no file
  CHECK_FALSE(dir.verifyPassword("bob@example.org", "bobpw"));
  CHECK_FALSE(dir.reload().ok());
}

TEST_CASE("a missing aliases file is an empty one") {
  Fixture f;
  REQUIRE(::unlink(f.aliases.c_str()) == 0);
  Directory dir(f.settings());
  CHECK(dir.reload().ok());
  CHECK(dir.resolve("bob@example.org").ok());
  CHECK(dir.resolve("info@example.org").status == Resolution::Status::UnknownUser);
}

TEST_CASE("verifyPassword: good, wrong, unknown user, login disabled") {
  Fixture f;
  Directory dir(f.settings());
  CHECK(dir.verifyPassword("bob@example.org", "bobpw"));
  CHECK(dir.verifyPassword("bob@EXAMPLE.ORG", "bobpw"));
  CHECK_FALSE(dir.verifyPassword("Bob@example.org", "bobpw"));
  CHECK_FALSE(dir.verifyPassword("bob@example.org", "carolpw"));
  CHECK_FALSE(dir.verifyPassword("bob@example.org", ""));
  CHECK_FALSE(dir.verifyPassword("bob@example.org", "bobpw "));
  CHECK_FALSE(dir.verifyPassword("nobody@example.org", "bobpw"));
  CHECK_FALSE(dir.verifyPassword("nologin@example.org", ""));
  CHECK_FALSE(dir.verifyPassword("nologin@example.org", "*"));
  CHECK_FALSE(dir.verifyPassword("info@example.org", "bobpw"));  // aliases do not log in
  CHECK_FALSE(dir.verifyPassword("", ""));
  CHECK(dir.verifyPassword("dan@example.net", "danpw"));
  // The dummy used for unknown users has the users' cost.
  auto t = dir.findUser("bob@example.org");
  REQUIRE(t);
  CHECK(dummyHashLike(t->passwordHash).substr(0, 27) == t->passwordHash.substr(0, 27));

  // A password change is seen without a restart.
  std::string text = testing::readText(f.users);
  text.replace(text.find(':') + 1, t->passwordHash.size(), hashOf("newpw"));
  REQUIRE(atomicWrite(f.users, text, 0640).ok());
  CHECK(dir.verifyPassword("bob@example.org", "newpw"));
  CHECK_FALSE(dir.verifyPassword("bob@example.org", "bobpw"));
}

TEST_CASE("scramKeys: real keys for a user, stable fake ones otherwise") {
  Fixture f;
  Directory dir(f.settings());
  auto bob = dir.scramKeys("bob@example.org");
  CHECK(bob.real);
  CHECK(bob.keys.salt == "bobsalt");
  CHECK(bob.keys.iterations == 4096);

  auto ghost1 = dir.scramKeys("ghost@example.org");
  auto ghost2 = dir.scramKeys("ghost@EXAMPLE.org");
  auto other = dir.scramKeys("other@example.org");
  CHECK_FALSE(ghost1.real);
  CHECK(ghost1.keys.salt.size() == 16);
  CHECK(ghost1.keys.salt == ghost2.keys.salt);
  CHECK(ghost1.keys.salt != other.keys.salt);
  CHECK(ghost1.keys.iterations == 4096);
  CHECK(ghost1.keys.storedKey.size() == kScramKeySize);
  // carol has no SCRAM keys; nologin may not log in.
  CHECK_FALSE(dir.scramKeys("carol@example.org").real);
  CHECK_FALSE(dir.scramKeys("nologin@example.org").real);
}

TEST_CASE("addressesOf lists what reaches a user") {
  Fixture f;
  Directory dir(f.settings());
  CHECK(dir.addressesOf("bob@example.org") ==
        V{"bob@example.org", "info@example.org", "fwd@example.org"});
  CHECK(dir.addressesOf("carol@example.org") == V{"carol@example.org", "info@example.org"});
  CHECK(dir.addressesOf("DAN@example.net").empty());
  CHECK(dir.addressesOf("dan@example.net") == V{"dan@example.net", "@example.net"});
  CHECK(dir.addressesOf("ghost@example.org").empty());
  // A user whose address is redirected by an alias does not own it.
  REQUIRE(atomicWrite(f.aliases, "carol@example.org: bob@example.org\n", 0640).ok());
  CHECK(dir.addressesOf("carol@example.org").empty());
  CHECK(dir.addressesOf("bob@example.org") == V{"bob@example.org", "carol@example.org"});
}
