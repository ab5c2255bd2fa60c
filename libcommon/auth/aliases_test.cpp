// Unit tests for the aliases file: parsing (good, bad lines with file:line,
// truncated and random input) and expansion (recursion, self-reference,
// loops, depth limit, dedupe, catch-alls, precedence) and reverse lookups.
#include "auth/aliases.hpp"

#include <catch2/catch.hpp>
#include <random>
#include <set>

using namespace yubin;
using namespace yubin::auth;

namespace {

const LocalDomains kDomains({"example.org", "example.net"});

AliasTable parse(const std::string& text) {
  auto r = parseAliases(text, "aliases", kDomains);
  if (!r.ok()) FAIL(r.error().message);
  return std::move(*r);
}

std::string errorOf(const std::string& text) {
  auto r = parseAliases(text, "aliases", kDomains);
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

const std::set<std::string> kUsers = {"bob@example.org", "carol@example.org", "dan@example.net",
                                      "Eve@example.org", "postmaster@example.org"};
const IsUserFn kIsUser = [](std::string_view a) { return kUsers.count(std::string(a)) > 0; };

std::vector<std::string> expand(const AliasTable& t, const std::string& a) {
  auto r = t.expand(a, kIsUser);
  if (!r.ok()) FAIL(r.error().message);
  return *r;
}

using V = std::vector<std::string>;

const char* kFile = R"(# aliases
info@example.org: bob@example.org
  sales@Example.ORG :  bob@example.org, carol@example.org ,ext@remote.example
team@example.org: sales@example.org info@example.org	dan@EXAMPLE.net
Bob.Copy@example.org: Bob.Copy@example.org, bob@elsewhere.example
postmaster@example.net: Postmaster@example.org
@example.net: dan@example.net
list@example.net: team@example.org, carol@example.org
)";

}  // namespace

TEST_CASE("a good aliases file parses") {
  AliasTable t = parse(kFile);
  REQUIRE(t.entries().size() == 7);
  CHECK(t.entries()[0].key == "info@example.org");
  CHECK(t.entries()[0].line == 2);
  CHECK(t.entries()[1].key == "sales@example.org");
  CHECK(t.entries()[1].targets == V{"bob@example.org", "carol@example.org", "ext@remote.example"});
  CHECK(t.entries()[2].targets == V{"sales@example.org", "info@example.org", "dan@example.net"});
  CHECK(t.entries()[4].targets == V{"postmaster@example.org"});
  CHECK(t.find("@example.net") != nullptr);
  CHECK(t.find("sales@example.org") != nullptr);
  CHECK(t.find("SALES@example.org") == nullptr);
}

TEST_CASE("expansion is recursive, deduplicated and in first-seen order") {
  AliasTable t = parse(kFile);
  CHECK(expand(t, "info@example.org") == V{"bob@example.org"});
  CHECK(expand(t, "info@EXAMPLE.org") == V{"bob@example.org"});
  CHECK(expand(t, "team@example.org") ==
        V{"bob@example.org", "carol@example.org", "ext@remote.example", "dan@example.net"});
  CHECK(expand(t, "list@example.net") ==
        V{"bob@example.org", "carol@example.org", "ext@remote.example", "dan@example.net"});
  // Not an alias: itself (user or not is the caller's question).
  CHECK(expand(t, "bob@example.org") == V{"bob@example.org"});
  CHECK(expand(t, "nobody@example.org") == V{"nobody@example.org"});
  CHECK(expand(t, "someone@remote.example") == V{"someone@remote.example"});
  // Local part exact: "Info" is not "info".
  CHECK(expand(t, "Info@example.org") == V{"Info@example.org"});
  // Self-reference keeps a local copy.
  CHECK(expand(t, "Bob.Copy@example.org") == V{"Bob.Copy@example.org", "bob@elsewhere.example"});
  // postmaster in any case.
  CHECK(expand(t, "POSTMASTER@example.net") == V{"postmaster@example.org"});
  auto bad = t.expand("no-at-sign", kIsUser);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "malformed address 'no-at-sign'");
}

TEST_CASE("catch-all: used only when neither an alias nor a user matches") {
  AliasTable t = parse(kFile);
  CHECK(expand(t, "anything@example.net") == V{"dan@example.net"});
  CHECK(expand(t, "dan@example.net") == V{"dan@example.net"});            // user wins
  CHECK(expand(t, "list@example.net").size() == 4);                       // alias wins
  CHECK(expand(t, "anything@example.org") == V{"anything@example.org"});  // no catch-all there
  // An alias wins over a user of the same address.
  AliasTable t2 = parse("bob@example.org: carol@example.org\n");
  CHECK(expand(t2, "bob@example.org") == V{"carol@example.org"});
}

TEST_CASE("loops are errors and the depth is limited") {
  AliasTable t = parse(
      "a@example.org: b@example.org\n"
      "b@example.org: c@example.org, bob@example.org\n"
      "c@example.org: a@example.org\n"
      "@example.net: nobody@example.net\n");
  auto r = t.expand("a@example.org", kIsUser);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message ==
        "alias loop: a@example.org -> b@example.org -> c@example.org -> a@example.org");
  // A catch-all that names a non-user of its own domain loops onto itself.
  r = t.expand("x@example.net", kIsUser);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "alias loop: @example.net -> @example.net");

  // A chain of 10 aliases is fine, 11 is too deep.
  std::string chain;
  for (int i = 0; i < 11; ++i)
    chain += "l" + std::to_string(i) + "@example.org: l" + std::to_string(i + 1) + "@example.org\n";
  AliasTable deep = parse(chain);
  CHECK(expand(deep, "l1@example.org") == V{"l11@example.org"});
  r = deep.expand("l0@example.org", kIsUser);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "alias nesting deeper than 10 at l10@example.org");
}

TEST_CASE("diamonds and wide fan-outs stay cheap") {
  // x(i) -> y(i+1), z(i+1); y(i+1) -> x(i+1); z(i+1) -> x(i+1): each x is
  // reached twice; the memo expands it once.
  std::string text;
  for (int i = 0; i < 4; ++i) {
    std::string n = std::to_string(i), m = std::to_string(i + 1);
    text += "x" + n + "@example.org: y" + m + "@example.org, z" + m + "@example.org\n";
    text += "y" + m + "@example.org: x" + m + "@example.org\n";
    text += "z" + m + "@example.org: x" + m + "@example.org, bob@example.org\n";
  }
  AliasTable t = parse(text);
  CHECK(expand(t, "x0@example.org") == V{"x4@example.org", "bob@example.org"});
  // Many targets: the expansion cap.
  std::string many = "big@example.org:";
  for (int i = 0; i < 10001; ++i) many += " u" + std::to_string(i) + "@remote.example";
  AliasTable big = parse(many + "\n");
  auto r = big.expand("big@example.org", kIsUser);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "alias expansion has more than 10000 addresses");
}

TEST_CASE("reverse lookup lists the aliases that reach an address") {
  AliasTable t = parse(kFile);
  CHECK(t.reverse("bob@example.org", kIsUser) ==
        V{"info@example.org", "sales@example.org", "team@example.org", "list@example.net"});
  CHECK(t.reverse("dan@EXAMPLE.net", kIsUser) ==
        V{"team@example.org", "@example.net", "list@example.net"});
  CHECK(t.reverse("postmaster@example.org", kIsUser) == V{"postmaster@example.net"});
  CHECK(t.reverse("Eve@example.org", kIsUser).empty());
  CHECK(t.reverse("garbage", kIsUser).empty());
  // Aliases whose expansion fails are skipped.
  AliasTable loop = parse(
      "a@example.org: b@example.org, bob@example.org\nb@example.org: a@example.org\n"
      "c@example.org: bob@example.org\n");
  CHECK(loop.reverse("bob@example.org", kIsUser) == V{"c@example.org"});
}

TEST_CASE("every kind of bad alias line is refused with file:line") {
  auto [line, error] = GENERATE(table<std::string, std::string>({
      {"info@example.org bob@example.org", "expected 'address: target, ...'"},
      {"info@example.org:", "alias 'info@example.org' has no targets"},
      {"info@example.org: , ,", "alias 'info@example.org' has no targets"},
      {"info: bob@example.org", "bad alias address 'info': expected local@domain or @domain"},
      {": bob@example.org", "bad alias address '': expected local@domain or @domain"},
      {"in fo@example.org: bob@example.org",
       "bad alias address 'in fo@example.org': expected local@domain or @domain"},
      {"info@exa mple.org: bob@example.org",
       "bad alias address 'info@exa mple.org': expected local@domain or @domain"},
      {"@: bob@example.org", "bad domain in catch-all '@'"},
      {"@bad_domain: bob@example.org", "bad domain in catch-all '@bad_domain'"},
      {"info@example.com: bob@example.org",
       "domain 'example.com' of alias 'info@example.com' is not in [global] domains"},
      {"@example.com: bob@example.org",
       "domain 'example.com' of alias '@example.com' is not in [global] domains"},
      {"info@example.org: bob", "bad target 'bob': expected local@domain"},
      {"info@example.org: @example.org", "bad target '@example.org': expected local@domain"},
      {"info@example.org: bob@", "bad target 'bob@': expected local@domain"},
      {"info@example.org: b<o>b@example.org",
       "bad target 'b<o>b@example.org': expected local@domain"},
      {"info@example.org: |/usr/bin/prog",
       "target '|/usr/bin/prog': pipes, files, includes and quoted names are not supported"},
      {"info@example.org: /var/mail/x",
       "target '/var/mail/x': pipes, files, includes and quoted names are not supported"},
      {"info@example.org: :include:/etc/list",
       "target ':include:/etc/list': pipes, files, includes and quoted names are not supported"},
      {"info@example.org: \"a b\"@example.org",
       "target '\"a': pipes, files, includes and quoted names are not supported"},
      {"info@example.org: bob@example.org\x01", "control character in line"},
      {"Info@EXAMPLE.org: carol@example.org",
       "duplicate alias 'Info@example.org' (first on line 2)"},
  }));
  CAPTURE(line);
  std::string text = "# x\nInfo@example.org: bob@example.org\n\n" + line + "\n";
  CHECK(errorOf(text) == "aliases:4: " + error);
}

TEST_CASE("truncated and random alias files never crash the parser") {
  std::string text = kFile;
  for (size_t n = 0; n <= text.size(); ++n) {
    auto r = parseAliases(std::string_view(text).substr(0, n), "aliases", kDomains);
    if (n == 0 || text[n - 1] == '\n') {
      CHECK(r.ok());
    } else if (!r.ok()) {
      CHECK(r.error().message.rfind("aliases:", 0) == 0);
    }
  }
  std::mt19937 rng(5321);
  const std::string alphabet = std::string("ab@.:#, |/\n\t\"example.org") + '\0' + "\xff";
  for (int i = 0; i < 3000; ++i) {
    std::string s(rng() % 100, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    auto r = parseAliases(s, "aliases", kDomains);
    if (!r.ok()) {
      CHECK(r.error().message.rfind("aliases:", 0) == 0);
    } else {
      for (const auto& e : r->entries()) (void)r->expand(e.key.substr(e.key[0] == '@'), kIsUser);
    }
  }
}
