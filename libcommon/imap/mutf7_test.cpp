// Tests for modified UTF-7, mailbox-name normalisation and LIST patterns.
#include "imap/mutf7.hpp"

#include <catch2/catch.hpp>

using namespace yubin::imap;

TEST_CASE("modified UTF-7 encodes and decodes", "[imap][mutf7]") {
  struct Case {
    const char* utf8;
    const char* mutf7;
  };
  auto c = GENERATE(values<Case>({
      {"", ""},
      {"INBOX", "INBOX"},
      {"&", "&-"},
      {"A&B", "A&-B"},
      {"Entw\xC3\xBC" "rfe", "Entw&APw-rfe"},
      {"~peter/mail/\xE5\x8F\xB0\xE5\x8C\x97/\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
       "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},  // RFC 3501 §5.1.3 example
      {"\xC3\xA4\xC3\xB6\xC3\xBC", "&AOQA9gD8-"},
      {"\xF0\x9F\x93\xA7 mail", "&2D3c5w- mail"},  // U+1F4E7, a surrogate pair
      {"a\x01" "b", "a&AAE-b"},
      {"\x7F", "&AH8-"},
      {"x\xE2\x82\xAC&", "x&IKw-&-"},
  }));
  auto enc = mutf7Encode(c.utf8);
  REQUIRE(enc.ok());
  CHECK(enc.value() == c.mutf7);
  auto dec = mutf7Decode(c.mutf7);
  REQUIRE(dec.ok());
  CHECK(dec.value() == c.utf8);
}

TEST_CASE("non-canonical and broken modified UTF-7 is refused", "[imap][mutf7]") {
  auto bad = GENERATE(as<std::string>{},
                      "&",              // unterminated
                      "&AOQ",           // unterminated
                      "&AOQA9g-&APw-",  // adjacent runs
                      "&AEE-",          // 'A' encoded
                      "&ACY-",          // '&' encoded
                      "&AOR-",          // non-zero padding bits
                      "&AOQA-",         // a dangling partial unit
                      "&AOQA9gD-",      // a dangling partial unit
                      "&2D0-",          // lone high surrogate
                      "&3OcA5A-",       // lone low surrogate
                      "&2D0A5A-",       // high surrogate + non-low
                      "&AAA-",          // U+0000
                      "&A/Q-",          // '/' is not in the modified alphabet
                      "&A=Q-",
                      "caf\xC3\xA9",    // raw 8-bit
                      "a\tb",           // raw control
                      "a\x7F" "b",      // raw DEL
                      std::string("a\0b", 3));
  CHECK_FALSE(mutf7Decode(bad).ok());
}

TEST_CASE("encoding refuses invalid UTF-8", "[imap][mutf7]") {
  CHECK_FALSE(mutf7Encode("\xC3").ok());
  CHECK_FALSE(mutf7Encode("\xED\xA0\x80").ok());  // a surrogate in UTF-8
  CHECK_FALSE(mutf7Encode("\xC0\xAF").ok());      // overlong
  // mailboxToWire never fails: bad bytes become U+FFFD.
  CHECK(mailboxToWire("a\xC3", false) == "a&,,0-");
  CHECK(mailboxToWire("a\xC3", true) == "a\xEF\xBF\xBD");
}

TEST_CASE("mailbox names are normalised", "[imap][mutf7]") {
  MailboxNameRules dot;  // '.', mUTF-7
  MailboxNameRules slash{'/', false, 512};
  MailboxNameRules utf8{'.', true, 512};
  struct Case {
    const char* wire;
    MailboxNameRules rules;
    const char* want;
  };
  auto c = GENERATE_COPY(values<Case>({
      {"INBOX", dot, "INBOX"},
      {"inbox", dot, "INBOX"},
      {"InBoX.Sub", dot, "INBOX.Sub"},
      {"inbox/Sub", slash, "INBOX/Sub"},
      {"inbox/Sub", dot, "inbox/Sub"},  // '/' is not the delimiter here
      {"INBOXES", dot, "INBOXES"},
      {"Entw&APw-rfe", dot, "Entw\xC3\xBC" "rfe"},
      {"Entw\xC3\xBC" "rfe", utf8, "Entw\xC3\xBC" "rfe"},
      {"A&B", utf8, "A&B"},  // rev2: no mUTF-7
      {"Sent", dot, "Sent"},
      {"a.b.c", dot, "a.b.c"},
  }));
  auto n = mailboxFromWire(c.wire, c.rules);
  REQUIRE(n.ok());
  CHECK(n.value() == c.want);
}

TEST_CASE("bad mailbox names are refused", "[imap][mutf7]") {
  MailboxNameRules dot;
  MailboxNameRules utf8{'.', true, 512};
  MailboxNameRules shortNames{'.', false, 8};
  CHECK_FALSE(mailboxFromWire("", dot).ok());
  CHECK_FALSE(mailboxFromWire(".a", dot).ok());
  CHECK_FALSE(mailboxFromWire("a.", dot).ok());
  CHECK_FALSE(mailboxFromWire("a..b", dot).ok());
  CHECK_FALSE(mailboxFromWire("a*", dot).ok());
  CHECK_FALSE(mailboxFromWire("a%", dot).ok());
  CHECK_FALSE(mailboxFromWire("a&AAE-", dot).ok());         // U+0001
  CHECK_FALSE(mailboxFromWire("a&AIU-", dot).ok());         // U+0085, a C1 control
  CHECK_FALSE(mailboxFromWire("caf\xC3\xA9", dot).ok());    // 8-bit without UTF-8 mode
  CHECK_FALSE(mailboxFromWire("caf\xC3", utf8).ok());       // invalid UTF-8
  CHECK_FALSE(mailboxFromWire("a\x01", utf8).ok());
  CHECK_FALSE(mailboxFromWire(std::string("a\0b", 3), utf8).ok());
  CHECK_FALSE(mailboxFromWire("abcdefghi", shortNames).ok());
  CHECK(mailboxFromWire("abcdefgh", shortNames).ok());
  // The limit counts octets of the UTF-8 form, not of the wire form: four
  // U+00FC are 13 octets in mUTF-7 and 8 in UTF-8; five are 10 in UTF-8.
  const std::string four = mutf7Encode("\xC3\xBC\xC3\xBC\xC3\xBC\xC3\xBC").value();
  REQUIRE(four.size() > 8);
  CHECK(mailboxFromWire(four, shortNames).ok());
  auto five =
      mailboxFromWire(mutf7Encode("\xC3\xBC\xC3\xBC\xC3\xBC\xC3\xBC\xC3\xBC").value(), shortNames);
  REQUIRE_FALSE(five.ok());
  CHECK(five.error().message == "mailbox name too long");
  CHECK(mailboxFromWire("abcd\xC3\xBC\xC3\xBC", MailboxNameRules{'.', true, 8}).ok());
  CHECK_FALSE(mailboxFromWire("abcde\xC3\xBC\xC3\xBC", MailboxNameRules{'.', true, 8}).ok());
}

TEST_CASE("LIST patterns", "[imap][mutf7]") {
  MailboxNameRules dot;
  CHECK(patternFromWire("", dot).value() == "");
  CHECK(patternFromWire("*", dot).value() == "*");
  CHECK(patternFromWire("inbox.%", dot).value() == "INBOX.%");
  CHECK(patternFromWire("Entw&APw-*", dot).value() == "Entw\xC3\xBC*");
  CHECK_FALSE(patternFromWire("&Jjo", dot).ok());

  CHECK(matchPattern("*", "a.b.c", '.'));
  CHECK(matchPattern("%", "INBOX", '.'));
  CHECK_FALSE(matchPattern("%", "a.b", '.'));
  CHECK(matchPattern("a.%", "a.b", '.'));
  CHECK_FALSE(matchPattern("a.%", "a.b.c", '.'));
  CHECK(matchPattern("a.*", "a.b.c", '.'));
  CHECK(matchPattern("a*c", "abc", '.'));
  CHECK(matchPattern("a*c", "a.b.c", '.'));
  CHECK_FALSE(matchPattern("a%c", "a.c", '.'));
  CHECK(matchPattern("a%c", "abbc", '.'));
  CHECK(matchPattern("", "", '.'));
  CHECK_FALSE(matchPattern("", "a", '.'));
  CHECK_FALSE(matchPattern("INBOX", "INBOX.x", '.'));
  CHECK(matchPattern("%/%", "a/b", '/'));
  // A hostile pattern stays polynomial.
  std::string many(200, '*');
  CHECK_FALSE(matchPattern(many + "x", std::string(2000, 'a'), '.'));
}

TEST_CASE("mUTF-7 round trip over many code points", "[imap][mutf7]") {
  std::string utf8;
  for (uint32_t cp : {0x20u, 0x26u, 0x7Eu, 0xA0u, 0x3B1u, 0x800u, 0x4E2Du, 0xFFFDu, 0x10000u,
                      0x1F600u, 0x10FFFFu, 0x41u}) {
    if (cp < 0x80) {
      utf8 += static_cast<char>(cp);
    } else if (cp < 0x800) {
      utf8 += static_cast<char>(0xC0 | (cp >> 6));
      utf8 += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      utf8 += static_cast<char>(0xE0 | (cp >> 12));
      utf8 += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      utf8 += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      utf8 += static_cast<char>(0xF0 | (cp >> 18));
      utf8 += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      utf8 += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      utf8 += static_cast<char>(0x80 | (cp & 0x3F));
    }
    auto enc = mutf7Encode(utf8);
    REQUIRE(enc.ok());
    for (char ch : enc.value()) CHECK((ch >= 0x20 && ch <= 0x7E));
    auto dec = mutf7Decode(enc.value());
    REQUIRE(dec.ok());
    CHECK(dec.value() == utf8);
  }
}
