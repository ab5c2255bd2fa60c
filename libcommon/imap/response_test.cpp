// Tests for the IMAP response writer: string forms, flags, response lines.
#include "imap/response.hpp"

#include <catch2/catch.hpp>

#include "imap/command.hpp"

using namespace yubin::imap;

namespace {

std::string str(std::string_view s, bool utf8 = false) {
  std::string out;
  appendString(out, s, utf8);
  return out;
}
std::string astr(std::string_view s, bool utf8 = false) {
  std::string out;
  appendAstring(out, s, utf8);
  return out;
}

}  // namespace

TEST_CASE("strings choose quoted or literal form", "[imap][response]") {
  CHECK(str("") == "\"\"");
  CHECK(str("hello world") == "\"hello world\"");
  CHECK(str("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(str("line\r\nbreak") == "{11}\r\nline\r\nbreak");
  CHECK(str("lf\n") == "{3}\r\nlf\n");
  CHECK(str(std::string("n\0l", 3)) == std::string("{3}\r\nn\0l", 8));
  CHECK(str("caf\xC3\xA9") == "{5}\r\ncaf\xC3\xA9");
  CHECK(str("caf\xC3\xA9", true) == "\"caf\xC3\xA9\"");
  CHECK(str("caf\xC3", true) == "{4}\r\ncaf\xC3");  // invalid UTF-8 never quoted
  std::string longText(kMaxQuoted + 1, 'x');
  CHECK(str(longText) == "{1025}\r\n" + longText);
  CHECK(str(std::string(kMaxQuoted, 'x')) == "\"" + std::string(kMaxQuoted, 'x') + "\"");
}

TEST_CASE("astrings are atoms when they can be", "[imap][response]") {
  CHECK(astr("INBOX") == "INBOX");
  CHECK(astr("a]b") == "a]b");
  CHECK(astr("") == "\"\"");
  CHECK(astr("NIL") == "\"NIL\"");
  CHECK(astr("nil") == "\"nil\"");
  CHECK(astr("two words") == "\"two words\"");
  CHECK(astr("a(b") == "\"a(b\"");
  CHECK(astr("a{b") == "\"a{b\"");
  CHECK(astr("50%") == "\"50%\"");
  CHECK(astr("a*") == "\"a*\"");
  CHECK(astr("\\Seen") == "\"\\\\Seen\"");
  std::string n;
  appendNstring(n, std::nullopt);
  n += ' ';
  appendNstring(n, std::string_view("NIL"));
  CHECK(n == "NIL \"NIL\"");
}

TEST_CASE("literals and literal8", "[imap][response]") {
  std::string out;
  appendLiteral8(out, std::string("\0\1", 2));
  CHECK(out == std::string("~{2}\r\n\0\1", 8));
  out.clear();
  appendLiteralHeader(out, 12345);
  CHECK(out == "{12345}\r\n");
}

TEST_CASE("mailbox names in responses", "[imap][response]") {
  std::string out;
  appendMailbox(out, "inbox", false);
  out += ' ';
  appendMailbox(out, "Entw\xC3\xBC" "rfe", false);
  out += ' ';
  appendMailbox(out, "Entw\xC3\xBC" "rfe", true);
  out += ' ';
  appendMailbox(out, "A&B", false);
  CHECK(out == "INBOX \"Entw&APw-rfe\" \"Entw\xC3\xBC" "rfe\" \"A&-B\"");
}

TEST_CASE("flags", "[imap][response]") {
  CHECK(canonicalFlag("\\SEEN") == "\\Seen");
  CHECK(canonicalFlag("\\answered") == "\\Answered");
  CHECK(canonicalFlag("$Label1") == "$Label1");
  CHECK(isValidFlag("\\Seen"));
  CHECK(isValidFlag("$Forwarded"));
  CHECK_FALSE(isValidFlag("\\"));
  CHECK_FALSE(isValidFlag(""));
  CHECK_FALSE(isValidFlag("a b"));
  CHECK_FALSE(isValidFlag("a]"));
  CHECK_FALSE(isValidFlag("\\*"));
  CHECK_FALSE(isValidKeyword("\\Seen"));
  std::vector<std::string> flags = {"\\Seen", "bad flag", "$Junk"};
  std::string out;
  appendFlagList(out, flags);
  CHECK(out == "(\\Seen $Junk)");
  out.clear();
  appendFlagList(out, std::vector<std::string>{});
  CHECK(out == "()");
}

TEST_CASE("response lines", "[imap][response]") {
  CHECK(tagged("a1", Cond::Ok, "READ-WRITE", "SELECT completed") ==
        "a1 OK [READ-WRITE] SELECT completed\r\n");
  CHECK(tagged("a2", Cond::No, "", "") == "a2 NO done\r\n");
  CHECK(tagged("", Cond::Bad, "", "x") == "* BAD x\r\n");
  CHECK(tagged("a3", Cond::Bad, "", "[fake] x\r\ny") == "a3 BAD (fake] x??y\r\n");
  CHECK(untagged(Cond::Ok, "UIDVALIDITY 3857529045", "UIDs valid") ==
        "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n");
  CHECK(untagged(Cond::Bye, "", "Logging out") == "* BYE Logging out\r\n");
  CHECK(untagged(Cond::PreAuth, "", "hi") == "* PREAUTH hi\r\n");
  CHECK(untagged(Cond::No, "a]b", "t") == "* NO [a?b] t\r\n");
  CHECK(untaggedData("3 EXISTS") == "* 3 EXISTS\r\n");
  CHECK(continuation("Ready") == "+ Ready\r\n");
  CHECK(continuation("") == "+ done\r\n");
  CHECK(continuationBase64("") == "+ \r\n");
  CHECK(continuationBase64("cj1v\r\nZA==") == "+ cj1vZA==\r\n");
}

TEST_CASE("response codes with arguments", "[imap][response]") {
  CHECK(codeNumber("UIDNEXT", 4392) == "UIDNEXT 4392");
  CHECK(codeAppendUid(38505, std::vector<uint32_t>{3955}) == "APPENDUID 38505 3955");
  CHECK(codeAppendUid(38505, std::vector<uint32_t>{3955, 3956, 3957}) ==
        "APPENDUID 38505 3955:3957");
  CHECK(codeCopyUid(38505, std::vector<uint32_t>{304, 319, 320},
                    std::vector<uint32_t>{3956, 3957, 3958}) ==
        "COPYUID 38505 304,319:320 3956:3958");
  const std::vector<std::string> flags = {"\\Seen", "\\Deleted"};
  CHECK(codePermanentFlags(flags, true) == "PERMANENTFLAGS (\\Seen \\Deleted \\*)");
  CHECK(codePermanentFlags(flags, false) == "PERMANENTFLAGS (\\Seen \\Deleted)");
  CHECK(codePermanentFlags(std::vector<std::string>{}, true) == "PERMANENTFLAGS (\\*)");
  CHECK(codeBadCharset(std::vector<std::string>{"UTF-8", "US-ASCII"}) ==
        "BADCHARSET (UTF-8 US-ASCII)");
  CHECK(codeModified(std::vector<uint32_t>{7, 9}) == "MODIFIED 7,9");
}

TEST_CASE("SEARCH and ESEARCH data", "[imap][response]") {
  const std::vector<uint32_t> r = {2, 3, 4, 9};
  CHECK(searchData(r) == "SEARCH 2 3 4 9");
  CHECK(searchData(std::vector<uint32_t>{}) == "SEARCH");
  CHECK(searchData(r, 917162500) == "SEARCH 2 3 4 9 (MODSEQ 917162500)");
  CHECK(esearchData("a1", true, kReturnMin | kReturnMax | kReturnAll | kReturnCount, r) ==
        "ESEARCH (TAG \"a1\") UID MIN 2 MAX 9 ALL 2:4,9 COUNT 4");
  CHECK(esearchData("a2", false, kReturnAll, r) == "ESEARCH (TAG \"a2\") ALL 2:4,9");
  CHECK(esearchData("a3", false, kReturnMin | kReturnCount, std::vector<uint32_t>{}) ==
        "ESEARCH (TAG \"a3\") COUNT 0");
  CHECK(esearchData("a4", false, kReturnSave, r).empty());
  CHECK(esearchData("a5", false, kReturnSave | kReturnMin, r) == "ESEARCH (TAG \"a5\") MIN 2");
  // RFC 7162 §3.1.5: MODSEQ last, only when something matched.
  CHECK(esearchData("a6", true, kReturnAll | kReturnCount, r, 917162500) ==
        "ESEARCH (TAG \"a6\") UID ALL 2:4,9 COUNT 4 MODSEQ 917162500");
  CHECK(esearchData("a7", false, kReturnCount, std::vector<uint32_t>{}, 5) ==
        "ESEARCH (TAG \"a7\") COUNT 0");
  CHECK(codeModified(std::vector<uint32_t>{7, 9, 10, 11}) == "MODIFIED 7,9:11");
}
