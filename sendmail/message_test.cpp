// Tests of yubin-sendmail's message handling (message.hpp): line ends and
// the "." line (whole and one byte at a time), recipient arguments, and -t
// extraction from To/Cc/Bcc with groups, folding, Resent- fields and Bcc
// removal; hostile header values.
#include "sendmail/message.hpp"

#include <catch2/catch.hpp>

using namespace yubin::sendmail;

namespace {

std::string convert(std::string_view in, bool ignoreDots, bool byteByByte) {
  InputReader r(ignoreDots);
  std::string out;
  if (byteByByte) {
    for (char c : in) r.feed(std::string_view(&c, 1), out);
  } else {
    r.feed(in, out);
  }
  r.finish(out);
  return out;
}

}  // namespace

TEST_CASE("sendmail input: CRLF and the dot line") {
  struct Case {
    std::string in;
    bool ignoreDots;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"a\nb\n", false, "a\r\nb\r\n"},
      {"a\r\nb\r\n", false, "a\r\nb\r\n"},
      {"a\nb", false, "a\r\nb\r\n"},  // last line without its end
      {"a\n.\nafter\n", false, "a\r\n"},
      {"a\r\n.\r\nafter\r\n", false, "a\r\n"},
      {"a\n.\nafter\n", true, "a\r\n.\r\nafter\r\n"},
      {"a\n..\n.x\n", false, "a\r\n..\r\n.x\r\n"},  // no unstuffing outside SMTP
      {".", false, ""},
      {"", false, ""},
      {"\n\n", false, "\r\n\r\n"},
      {"bare\rcr\n", false, "bare\rcr\r\n"},
      {std::string("nul\0byte\n", 9), false, std::string("nul\0byte\r\n", 10)},
  };
  for (const auto& c : cases) {
    INFO(c.in);
    CHECK(convert(c.in, c.ignoreDots, false) == c.out);
    CHECK(convert(c.in, c.ignoreDots, true) == c.out);
  }
}

TEST_CASE("sendmail recipients from arguments") {
  using V = std::vector<std::string>;
  struct Case {
    std::string arg;
    V out;
  };
  const std::vector<Case> good = {
      {"bob", {"bob@example.org"}},
      {"bob@other.example", {"bob@other.example"}},
      {"Bob Smith <bob@other.example>", {"bob@other.example"}},
      {"a@x.example, b", {"a@x.example", "b@example.org"}},
      {"\"john doe\"@x.example", {"\"john doe\"@x.example"}},
      {"team: a@x.example, b@x.example;", {"a@x.example", "b@x.example"}},
  };
  for (const auto& c : good) {
    INFO(c.arg);
    auto r = parseRecipientArgument(c.arg, "example.org");
    REQUIRE(r);
    CHECK(*r == c.out);
  }
  for (std::string bad : {"", "a@@b", "a@", "@b", "<>", "a b@", "a@b..c", "a@-b"}) {
    INFO(bad);
    CHECK_FALSE(parseRecipientArgument(bad, "example.org"));
  }
  CHECK(*parseSenderArgument("", "example.org") == "<>");
  CHECK(*parseSenderArgument("<>", "example.org") == "<>");
  CHECK(*parseSenderArgument("me", "example.org") == "me@example.org");
  CHECK(*parseSenderArgument("Me <me@x.example>", "example.org") == "me@x.example");
  CHECK_FALSE(parseSenderArgument("a@x.example, b@x.example", "example.org"));
  CHECK_FALSE(parseSenderArgument("a@@x", "example.org"));
}

TEST_CASE("sendmail -t: recipients from the header, Bcc removed") {
  struct Case {
    std::string message;
    std::vector<std::string> recipients;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"To: a@x.example\r\nSubject: s\r\n\r\nbody\r\n",
       {"a@x.example"},
       "To: a@x.example\r\nSubject: s\r\n\r\nbody\r\n"},
      // Cc and Bcc, names, a folded list, case of field names.
      {"TO: A <a@x.example>,\r\n  b@x.example\r\ncc: c\r\nBCC: d@x.example\r\nSubject: s\r\n\r\n"
       "To: not@header.example\r\n",
       {"a@x.example", "b@x.example", "c@example.org", "d@x.example"},
       "TO: A <a@x.example>,\r\n  b@x.example\r\ncc: c\r\nSubject: s\r\n\r\nTo: "
       "not@header.example\r\n"},
      // A folded Bcc goes with its continuation lines; an empty Bcc names no one.
      {"Bcc: x@x.example,\r\n\ty@x.example\r\nTo: a@x.example\r\nBcc:\r\n\r\nb\r\n",
       {"x@x.example", "y@x.example", "a@x.example"},
       "To: a@x.example\r\n\r\nb\r\n"},
      // Groups: members count, an empty group names no one.
      {"To: team: a@x.example, \"B\" <b@x.example>;, undisclosed-recipients:;\r\n\r\n",
       {"a@x.example", "b@x.example"},
       "To: team: a@x.example, \"B\" <b@x.example>;, undisclosed-recipients:;\r\n\r\n"},
      // Resent- fields replace the originals.
      {"To: old@x.example\r\nResent-To: new@x.example\r\nResent-Bcc: hid@x.example\r\n\r\n",
       {"new@x.example", "hid@x.example"},
       "To: old@x.example\r\nResent-To: new@x.example\r\n\r\n"},
      // No header at all / no recipients.
      {"\r\nbody\r\n", {}, "\r\nbody\r\n"},
      {"Subject: s\r\n", {}, "Subject: s\r\n"},
      // The header ends at the first line that is not a field.
      {"To: a@x.example\r\nnot a field\r\nBcc: b@x.example\r\n",
       {"a@x.example"},
       "To: a@x.example\r\nnot a field\r\nBcc: b@x.example\r\n"},
      // Comments in addresses.
      {"To: a@x.example (Alice)\r\n\r\n", {"a@x.example"}, "To: a@x.example (Alice)\r\n\r\n"},
  };
  for (const auto& c : cases) {
    INFO(c.message);
    auto x = extractRecipients(c.message, "example.org");
    REQUIRE(x);
    CHECK(x->recipients == c.recipients);
    CHECK(x->message == c.out);
  }
}

TEST_CASE("sendmail -t: hostile header values") {
  // Not addresses.
  for (std::string m : {"To: <>\r\n\r\n", "To: a@\r\n\r\n", "Cc: @@@\r\n\r\n"}) {
    INFO(m);
    CHECK_FALSE(extractRecipients(m, "example.org"));
  }
  // A huge list is parsed, bounded by the address-list parser.
  std::string many = "To: ";
  for (int i = 0; i < 20000; ++i) many += "u" + std::to_string(i) + "@x.example, ";
  many += "last@x.example\r\n\r\n";
  auto x = extractRecipients(many, "example.org");
  if (x) CHECK(x->recipients.size() <= 10001);
  // A continuation line first is body, not header.
  auto y = extractRecipients(" To: a@x.example\r\n\r\n", "example.org");
  REQUIRE(y);
  CHECK(y->recipients.empty());
}
