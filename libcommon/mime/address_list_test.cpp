// Tests for mime/address_list: RFC 5322 address lists as ENVELOPE shows
// them, groups and obsolete syntax, hostile input.
// Trust: test code.
#include "mime/address_list.hpp"

#include <catch2/catch.hpp>

#include "mime/render.hpp"

using namespace yubin::mime;

namespace {

std::string render(std::string_view value) {
  Envelope e;
  e.to = parseAddressList(value);
  // Field 6 of the envelope is "to"; cut it out of the rendering.
  std::string s = renderEnvelope(e);
  const std::string prefix = "(NIL NIL NIL NIL NIL ";
  REQUIRE(s.rfind(prefix, 0) == 0);
  s = s.substr(prefix.size());
  return s.substr(0, s.size() - std::string(" NIL NIL NIL NIL)").size());
}

}  // namespace

TEST_CASE("address lists in ENVELOPE form") {
  auto [in, out] = GENERATE(table<std::string, std::string>({
      {"a@example.org", "((NIL NIL \"a\" \"example.org\"))"},
      {"Alice <a@example.org>", "((\"Alice\" NIL \"a\" \"example.org\"))"},
      {"\"Doe, John\" <j@x>, k@y", "((\"Doe, John\" NIL \"j\" \"x\")(NIL NIL \"k\" \"y\"))"},
      {"John Q. Public <jqp@x>", "((\"John Q. Public\" NIL \"jqp\" \"x\"))"},
      {"j@x (John)", "((\"John\" NIL \"j\" \"x\"))"},
      {"=?utf-8?q?J=C3=B6rg?= <j@x>", "((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x\"))"},
      {"undisclosed-recipients:;", "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"},
      {"g: a@x, B <b@y>;, c@z",
       "((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"x\")(\"B\" NIL \"b\" \"y\")(NIL NIL NIL NIL)"
       "(NIL NIL \"c\" \"z\"))"},
      {"g: a@x", "((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"x\")(NIL NIL NIL NIL))"},
      {"<@r1,@r2:u@h>", "((NIL \"@r1,@r2\" \"u\" \"h\"))"},
      {"john . doe @ example . org", "((NIL NIL \"john.doe\" \"example.org\"))"},
      {"\"quoted local\"@x", "((NIL NIL \"quoted local\" \"x\"))"},
      {"a@[192.0.2.1]", "((NIL NIL \"a\" \"[192.0.2.1]\"))"},
      {"bare", "((NIL NIL \"bare\" \"MISSING_DOMAIN\"))"},
      {"<>", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"},
      {"Name <local>", "((\"Name\" NIL \"local\" \"MISSING_DOMAIN\"))"},
      {"a@x,,, ,b@y", "((NIL NIL \"a\" \"x\")(NIL NIL \"b\" \"y\"))"},
      {"", "NIL"},
      {" , ", "NIL"},
      {"a@x <junk", "((NIL NIL \"a\" \"x\"))"},
      {"\"unterminated <a@x>", "((NIL NIL \"unterminated <a@x>\" \"MISSING_DOMAIN\"))"},
      {"Back\\slash \"q\\\"uote\" <a@x>", "((\"Backslash q\\\"uote\" NIL \"a\" \"x\"))"},
      {"A <a@x> (c), (only comment)", "((\"A\" NIL \"a\" \"x\"))"},
  }));
  CHECK(render(in) == out);
}

TEST_CASE("hostile address lists stay bounded") {
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "a@b,";
  CHECK(parseAddressList(many).size() == kMaxAddresses);
  CHECK(parseAddressList(std::string(100000, '(')).empty());
  CHECK(parseAddressList(std::string(50000, '<')).size() <= kMaxAddresses);
  const auto groups = parseAddressList("a: b: c@d;;");
  REQUIRE_FALSE(groups.empty());
  CHECK(groups.front().isGroupStart());
  CHECK(groups.back().isGroupEnd());
}
