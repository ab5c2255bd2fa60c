// Tests for the envelope address and ESMTP parameter parser: a table of good
// and hostile inputs, every prefix of every input (the parser must never
// crash on a cut line), xtext and UTF-8.
#include "mail/address.hpp"

#include <catch2/catch.hpp>
#include <string>

using namespace yubin::mail;
using std::string_literals::operator""s;

namespace {

struct MailCase {
  std::string args;
  bool esmtp;
  // Expected outcome: error, or the normalized address ("" for <>).
  std::optional<AddressError> error;
  std::string normalized;
};

std::string rep(char c, size_t n) { return std::string(n, c); }

}  // namespace

TEST_CASE("MAIL FROM arguments", "[address]") {
  const std::vector<MailCase> cases = {
      {"FROM:<user@example.org>", true, {}, "user@example.org"},
      {"from:<User@Example.ORG>", true, {}, "User@example.org"},
      {"FROM:<>", true, {}, ""},
      {"FROM: <a@b.c>", true, {}, "a@b.c"},
      {"FROM:<a.b.c@d-e.f>", true, {}, "a.b.c@d-e.f"},
      {"FROM:<!#$%&'*+-/=?^_`{|}~@x.org>", true, {}, "!#$%&'*+-/=?^_`{|}~@x.org"},
      {"FROM:<\"john doe\"@example.org>", true, {}, "\"john doe\"@example.org"},
      {"FROM:<\"john\"@example.org>", true, {}, "john@example.org"},
      {"FROM:<\"a\\\"b\"@x.org>", true, {}, "\"a\\\"b\"@x.org"},
      {"FROM:<\"a>b\"@x.org>", true, {}, "\"a>b\"@x.org"},
      {"FROM:<a@[192.0.2.1]>", true, {}, "a@[192.0.2.1]"},
      {"FROM:<a@[ipv6:2001:DB8::1]>", true, {}, "a@[IPv6:2001:db8::1]"},
      {"FROM:<a@[IPv6:::ffff:192.0.2.1]>", true, {}, "a@[IPv6:::ffff:192.0.2.1]"},
      {"FROM:<a@b> SIZE=1000 BODY=8BITMIME", true, {}, "a@b"},
      {"FROM:<a@b>  SIZE=5 ", true, {}, "a@b"},
      {"FROM:<a@b> RET=HDRS ENVID=QQ+2BZZ", true, {}, "a@b"},
      {"FROM:<a@b> AUTH=<>", true, {}, "a@b"},
      {"FROM:<user%other@example.org>", true, {}, "user%other@example.org"},
      {"FROM:<" + rep('a', 64) + "@x.org>", true, {}, rep('a', 64) + "@x.org"},
      {"FROM:<a@" + rep('b', 63) + ".org>", true, {}, "a@" + rep('b', 63) + ".org"},
      {"FROM:<\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.test> SMTPUTF8",
       true,
       {},
       "\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.test"},
      {"FROM:<a@b>", false, {}, "a@b"},
      {"FROM:<>", false, {}, ""},

      {"FROM:user@example.org", true, AddressError::MissingBrackets, ""},
      {"FROM:", true, AddressError::MissingBrackets, ""},
      {"FROM<a@b>", true, AddressError::BadCommandSyntax, ""},
      {"TO:<a@b>", true, AddressError::BadCommandSyntax, ""},
      {"", true, AddressError::BadCommandSyntax, ""},
      {"FROM:<a@b", true, AddressError::Unterminated, ""},
      {"FROM:<\"a@b>", true, AddressError::Unterminated, ""},
      {"FROM:<a@[1.2.3.4>", true, AddressError::Unterminated, ""},
      {"FROM:<\"a\\", true, AddressError::Unterminated, ""},
      {"FROM:<a@b>x", true, AddressError::TrailingGarbage, ""},
      {"FROM:<a@b><c@d>", true, AddressError::TrailingGarbage, ""},
      {"FROM:<@a,@b:user@c>", true, AddressError::SourceRoute, ""},
      {"FROM:<@a:user@c>", true, AddressError::SourceRoute, ""},
      {"FROM:<a\0b@c>"s, true, AddressError::ControlCharacter, ""},
      {"FROM:<a@b>\tSIZE=1", true, AddressError::ControlCharacter, ""},
      {"FROM:<a@b\r>", true, AddressError::ControlCharacter, ""},
      {"FROM:<a@b\x7f>", true, AddressError::ControlCharacter, ""},
      {"FROM:<\"a\x01\"@b>", true, AddressError::ControlCharacter, ""},
      {"FROM:<a..b@c>", true, AddressError::BadLocalPart, ""},
      {"FROM:<.a@c>", true, AddressError::BadLocalPart, ""},
      {"FROM:<a.@c>", true, AddressError::BadLocalPart, ""},
      {"FROM:<a b@c>", true, AddressError::BadLocalPart, ""},
      {"FROM:<a(b)@c>", true, AddressError::BadLocalPart, ""},
      {"FROM:<\"\"@c>", true, AddressError::BadLocalPart, ""},
      {"FROM:<\"a\"b@c>", true, AddressError::BadLocalPart, ""},
      {"FROM:<@>", true, AddressError::SourceRoute, ""},
      {"FROM:<ab>", true, AddressError::MissingDomain, ""},
      {"FROM:<Postmaster>", true, AddressError::MissingDomain, ""},
      {"FROM:<\"ab\">", true, AddressError::MissingDomain, ""},
      {"FROM:<a@>", true, AddressError::BadDomain, ""},
      {"FROM:<a@-b.c>", true, AddressError::BadDomain, ""},
      {"FROM:<a@b-.c>", true, AddressError::BadDomain, ""},
      {"FROM:<a@b..c>", true, AddressError::BadDomain, ""},
      {"FROM:<a@b_c.d>", true, AddressError::BadDomain, ""},
      {"FROM:<a@b.c.>", true, AddressError::BadDomain, ""},
      {"FROM:<a@b@c>", true, AddressError::BadDomain, ""},
      {"FROM:<a@" + rep('b', 64) + ".org>", true, AddressError::BadDomain, ""},
      {"FROM:<a@[1.2.3.256]>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<a@[1.2.3]>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<a@[1.2.3.4.5]>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<a@[1234.2.3.4]>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<a@[IPv6:zz::1]>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<a@[IPv6:fe80::1%eth0]>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<a@[tag:foo]>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<a@[]>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<a@[1.2.3.4]x>", true, AddressError::BadAddressLiteral, ""},
      {"FROM:<" + rep('a', 65) + "@x.org>", true, AddressError::LocalPartTooLong, ""},
      {"FROM:<\"" + rep('a', 63) + "\"@x.org>", true, AddressError::LocalPartTooLong, ""},
      {"FROM:<a@" + rep('b', 60) + "." + rep('c', 60) + "." + rep('d', 60) + "." + rep('e', 60) +
           "." + rep('f', 10) + ">",
       true, AddressError::PathTooLong, ""},
      {"FROM:<\xc3\xa9@x.org>", true, AddressError::Utf8NotAllowed, ""},
      {"FROM:<a@\xc3\xa9.org>", true, AddressError::Utf8NotAllowed, ""},
      {"FROM:<\xff@x.org> SMTPUTF8", true, AddressError::BadUtf8, ""},
      {"FROM:<\xc0\xaf@x.org> SMTPUTF8", true, AddressError::BadUtf8, ""},
      {"FROM:<\xed\xa0\x80@x.org> SMTPUTF8", true, AddressError::BadUtf8, ""},
      {"FROM:<a@b> FOO=1", true, AddressError::UnknownParameter, ""},
      {"FROM:<a@b> NOTIFY=NEVER", true, AddressError::UnknownParameter, ""},
      {"FROM:<a@b> SIZE=1 SIZE=2", true, AddressError::DuplicateParameter, ""},
      {"FROM:<a@b> size=1 SIZE=1", true, AddressError::DuplicateParameter, ""},
      {"FROM:<a@b> SIZE=abc", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> SIZE=", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> SIZE", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> SIZE=-1", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> SIZE=99999999999999999999999", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> SIZE=1=2", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> BODY=9BIT", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> SMTPUTF8=yes", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> RET=X", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> ENVID=a+2", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> ENVID=a+2b", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> ENVID=+00", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> ENVID=" + rep('x', 101), true, AddressError::BadParameter, ""},
      {"FROM:<a@b> AUTH=", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> -X=1", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> SIZE=\xc3\xa9", true, AddressError::BadParameter, ""},
      {"FROM:<a@b> SIZE=1", false, AddressError::ParametersNotAllowed, ""},
      {"FROM:<> BODY=7BIT", false, AddressError::ParametersNotAllowed, ""},
  };
  for (const auto& c : cases) {
    INFO("args: " << c.args << " esmtp=" << c.esmtp);
    auto r = parseMailArguments(c.args, c.esmtp);
    if (c.error) {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error() == *c.error);
      CHECK_FALSE(describe(r.error()).empty());
    } else {
      REQUIRE(r.ok());
      if (c.normalized.empty()) {
        CHECK(r->null);
        CHECK(r->raw == "<>");
      } else {
        CHECK_FALSE(r->null);
        CHECK(r->address.normalized() == c.normalized);
      }
    }
    // Every prefix must parse to something without crashing.
    for (size_t n = 0; n < c.args.size(); ++n) (void)parseMailArguments(c.args.substr(0, n), true);
  }
}

TEST_CASE("MAIL parameters are decoded", "[address]") {
  auto r = parseMailArguments(
      "FROM:<a@b> SIZE=1000 body=binarymime SMTPUTF8 RET=full ENVID=QQ+2BZZ AUTH=x+2By@z", true);
  REQUIRE(r.ok());
  CHECK(r->params.size == 1000u);
  CHECK(r->params.body == Body::BinaryMime);
  CHECK(r->params.smtputf8);
  CHECK(r->params.ret == Ret::Full);
  CHECK(r->params.envid == "QQ+ZZ");
  CHECK(r->params.auth == "x+y@z");
  CHECK(r->raw == "<a@b>");

  auto plain = parseMailArguments("FROM:<a@b>", true);
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->params.size);
  CHECK(plain->params.body == Body::Unspecified);
  CHECK_FALSE(plain->params.smtputf8);
  CHECK(plain->params.ret == Ret::Unspecified);
  CHECK(plain->params.envid.empty());
  CHECK_FALSE(plain->params.auth);

  auto quoted = parseMailArguments("FROM:<\"john doe\"@Example.org>", true);
  REQUIRE(quoted.ok());
  CHECK(quoted->address.local == "john doe");
  CHECK(quoted->address.domain == "Example.org");
  CHECK(quoted->address.str() == "\"john doe\"@Example.org");
  CHECK(quoted->raw == "<\"john doe\"@Example.org>");
}

TEST_CASE("RCPT TO arguments", "[address]") {
  struct Case {
    std::string args;
    bool smtputf8;
    std::optional<AddressError> error;
    std::string normalized;
  };
  const std::vector<Case> cases = {
      {"TO:<user@example.org>", false, {}, "user@example.org"},
      {"to: <User@EXAMPLE.org>", false, {}, "User@example.org"},
      {"TO:<postmaster>", false, {}, "Postmaster"},
      {"TO:<PostMaster>", false, {}, "Postmaster"},
      {"TO:<postmaster@Example.org>", false, {}, "postmaster@example.org"},
      {"TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b", false, {}, "a@b"},
      {"TO:<a@b> notify=never", false, {}, "a@b"},
      {"TO:<a!b@c>", false, {}, "a!b@c"},
      {"TO:<\"a@b\"@c>", false, {}, "\"a@b\"@c"},
      {"TO:<\xc3\xa9@x.org>", true, {}, "\xc3\xa9@x.org"},
      {"TO:<>", false, AddressError::NullNotAllowed, ""},
      {"TO:<@x:a@b>", false, AddressError::SourceRoute, ""},
      {"FROM:<a@b>", false, AddressError::BadCommandSyntax, ""},
      {"TO:a@b", false, AddressError::MissingBrackets, ""},
      {"TO:<a@b> NOTIFY=NEVER,SUCCESS", false, AddressError::BadParameter, ""},
      {"TO:<a@b> NOTIFY=", false, AddressError::BadParameter, ""},
      {"TO:<a@b> NOTIFY=SUCCESS,", false, AddressError::BadParameter, ""},
      {"TO:<a@b> NOTIFY=SOMETIMES", false, AddressError::BadParameter, ""},
      {"TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", false, AddressError::DuplicateParameter, ""},
      {"TO:<a@b> ORCPT=rfc822", false, AddressError::BadParameter, ""},
      {"TO:<a@b> ORCPT=;x", false, AddressError::BadParameter, ""},
      {"TO:<a@b> ORCPT=rfc822;", false, AddressError::BadParameter, ""},
      {"TO:<a@b> ORCPT=rfc822;a+0Ab", false, AddressError::BadParameter, ""},
      {"TO:<a@b> SIZE=1", false, AddressError::UnknownParameter, ""},
      {"TO:<Postmaster> x", false, AddressError::UnknownParameter, ""},
      {"TO:<\xc3\xa9@x.org>", false, AddressError::Utf8NotAllowed, ""},
      {"TO:<a@b\x00>"s, false, AddressError::ControlCharacter, ""},
  };
  for (const auto& c : cases) {
    INFO("args: " << c.args);
    auto r = parseRcptArguments(c.args, true, c.smtputf8);
    if (c.error) {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error() == *c.error);
    } else {
      REQUIRE(r.ok());
      CHECK(r->address.normalized() == c.normalized);
    }
    for (size_t n = 0; n < c.args.size(); ++n)
      (void)parseRcptArguments(c.args.substr(0, n), true, true);
  }

  auto r = parseRcptArguments("TO:<a@b> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+40b", true, false);
  REQUIRE(r.ok());
  CHECK(r->params.notify == (kNotifySuccess | kNotifyDelay));
  CHECK(r->params.orcptType == "rfc822");
  CHECK(r->params.orcpt == "a@b");
  CHECK(parseRcptArguments("TO:<a@b> NOTIFY=NEVER", true, false)->params.notify == kNotifyNever);
  CHECK(parseRcptArguments("TO:<a@b> NOTIFY=NEVER", false, false).error() ==
        AddressError::ParametersNotAllowed);
  auto pm = parseRcptArguments("TO:<postMASTER>", true, false);
  REQUIRE(pm.ok());
  CHECK(pm->address.isPostmaster());
  CHECK(pm->address.str() == "Postmaster");
  CHECK_FALSE(parseRcptArguments("TO:<postmaster@x>", true, false)->address.isPostmaster());
}

TEST_CASE("error classes pick the reply family", "[address]") {
  CHECK(classify(AddressError::MissingBrackets) == AddressErrorClass::CommandSyntax);
  CHECK(classify(AddressError::BadCommandSyntax) == AddressErrorClass::CommandSyntax);
  CHECK(classify(AddressError::SourceRoute) == AddressErrorClass::Address);
  CHECK(classify(AddressError::PathTooLong) == AddressErrorClass::Address);
  CHECK(classify(AddressError::Utf8NotAllowed) == AddressErrorClass::Utf8);
  CHECK(classify(AddressError::UnknownParameter) == AddressErrorClass::UnknownParameter);
  CHECK(classify(AddressError::ParametersNotAllowed) == AddressErrorClass::UnknownParameter);
  CHECK(classify(AddressError::BadParameter) == AddressErrorClass::BadParameter);
}

TEST_CASE("bare mailboxes", "[address]") {
  CHECK(parseMailbox("a@b.c", false)->normalized() == "a@b.c");
  CHECK(
      parseMailbox(
          "a@" + rep('b', 63) + "." + rep('c', 63) + "." + rep('d', 63) + "." + rep('e', 64), false)
          .error() == AddressError::DomainTooLong);
  CHECK(parseMailbox("@a:b@c", false).error() == AddressError::SourceRoute);
  CHECK(parseMailbox("a@b\n", false).error() == AddressError::ControlCharacter);
  CHECK(parseMailbox("\xc3\xa9@b", false).error() == AddressError::Utf8NotAllowed);
  CHECK(parseMailbox("\xc3\xa9@b", true)->local == "\xc3\xa9");
}

TEST_CASE("relay tricks are flagged", "[address]") {
  CHECK(looksLikeRelayTrick(Address{"a%b", "c"}));
  CHECK(looksLikeRelayTrick(Address{"a!b", "c"}));
  CHECK(looksLikeRelayTrick(Address{"a@b", "c"}));
  CHECK_FALSE(looksLikeRelayTrick(Address{"a.b+tag", "c"}));
  CHECK_FALSE(looksLikeRelayTrick(Address{"Postmaster", ""}));
}

TEST_CASE("address rendering", "[address]") {
  CHECK(Address{"a", "Example.ORG"}.str() == "a@Example.ORG");
  CHECK(Address{"a", "Example.ORG"}.normalized() == "a@example.org");
  CHECK(Address{"A.B", "x"}.normalized() == "A.B@x");
  CHECK(Address{"a b", "x"}.str() == "\"a b\"@x");
  CHECK(Address{"a\"b\\c", "x"}.str() == "\"a\\\"b\\\\c\"@x");
  CHECK(Address{".a", "x"}.str() == "\".a\"@x");
  CHECK(Address{"a", "[IPv6:2001:DB8::1]"}.normalized() == "a@[IPv6:2001:db8::1]");
  // Rendering then parsing gives the same address back.
  for (const Address& a : {Address{"a b", "x.org"}, Address{"a\"b", "x.org"},
                           Address{"a.b", "[1.2.3.4]"}, Address{"x@y", "z"}}) {
    auto back = parseMailbox(a.str(), false);
    REQUIRE(back.ok());
    CHECK(*&back.value() == a);
  }
}

TEST_CASE("xtext", "[address]") {
  CHECK(xtextDecode("a+2Bb") == "a+b");
  CHECK(xtextDecode("") == "");
  CHECK(xtextDecode("+3D") == "=");
  CHECK_FALSE(xtextDecode("a+2b"));  // lower-case hex
  CHECK_FALSE(xtextDecode("+"));
  CHECK_FALSE(xtextDecode("+4"));
  CHECK_FALSE(xtextDecode("a=b"));
  CHECK_FALSE(xtextDecode("a b"));
  CHECK_FALSE(xtextDecode("\xc3\xa9"));
  CHECK(xtextEncode("a+b=c d") == "a+2Bb+3Dc+20d");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  CHECK(xtextDecode(xtextEncode(all)) == all);
}

TEST_CASE("UTF-8 validation", "[address]") {
  CHECK(isValidUtf8(""));
  CHECK(isValidUtf8("plain"));
  CHECK(isValidUtf8("\xc3\xa9"));
  CHECK(isValidUtf8("\xe2\x82\xac"));
  CHECK(isValidUtf8("\xf0\x9f\x98\x80"));
  CHECK(isValidUtf8("\xf4\x8f\xbf\xbf"));
  CHECK_FALSE(isValidUtf8("\x80"));
  CHECK_FALSE(isValidUtf8("\xc3"));
  CHECK_FALSE(isValidUtf8("\xc0\x80"));
  CHECK_FALSE(isValidUtf8("\xe0\x80\x80"));
  CHECK_FALSE(isValidUtf8("\xed\xa0\x80"));
  CHECK_FALSE(isValidUtf8("\xf0\x80\x80\x80"));
  CHECK_FALSE(isValidUtf8("\xf4\x90\x80\x80"));
  CHECK_FALSE(isValidUtf8("\xf5\x80\x80\x80"));
  CHECK_FALSE(isValidUtf8("\xe2\x82"));
  CHECK_FALSE(isValidUtf8("\xff"));
}
