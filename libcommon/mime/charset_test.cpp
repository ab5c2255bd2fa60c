// Tests for mime/charset: the table of charsets, invalid UTF-8, streaming.
// Trust: test code.
#include "mime/charset.hpp"

#include <catch2/catch.hpp>

#include "mail/address.hpp"

using namespace yubin::mime;
using yubin::mail::isValidUtf8;

TEST_CASE("charset names and aliases") {
  auto [name, cs] = GENERATE(table<const char*, Charset>({
      {"UTF-8", Charset::Utf8},
      {"utf8", Charset::Utf8},
      {"us-ascii", Charset::Ascii},
      {"ISO-8859-1", Charset::Latin1},
      {"latin1", Charset::Latin1},
      {" iso-8859-15 ", Charset::Latin9},
      {"Windows-1252", Charset::Windows1252},
      {"cp1252", Charset::Windows1252},
      {"koi8-r", Charset::Unknown},
      {"", Charset::Unknown},
  }));
  CHECK(charsetFromName(name) == cs);
}

TEST_CASE("conversion to UTF-8") {
  auto [cs, in, out] = GENERATE(table<const char*, std::string, std::string>({
      {"iso-8859-1", "caf\xE9", "caf\xC3\xA9"},
      {"iso-8859-15", "\xA4 \xBD", "\xE2\x82\xAC \xC5\x93"},
      {"iso-8859-1", "\xA4", "\xC2\xA4"},
      {"windows-1252", "\x80\x93x\x94", "\xE2\x82\xAC\xE2\x80\x9Cx\xE2\x80\x9D"},
      {"windows-1252", "\x81", "\xC2\x81"},
      {"utf-8", "\xE2\x82\xAC", "\xE2\x82\xAC"},
      {"utf-8",
       "a\xFF"
       "b",
       "a\xEF\xBF\xBD"
       "b"},
      {"utf-8", "\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                  // overlong
      {"utf-8", "\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // surrogate
      {"utf-8", "\xE2\x82", "\xEF\xBF\xBD"},                              // cut short
      {"us-ascii", "plain", "plain"},
  }));
  std::string whole;
  REQUIRE(toUtf8(cs, in, whole));
  CHECK(whole == out);
  // One byte at a time gives the same text.
  CharsetDecoder d(charsetFromName(cs));
  std::string pieces;
  for (char c : in) d.decode(std::string_view(&c, 1), pieces);
  d.finish(pieces);
  CHECK(pieces == out);
  CHECK(isValidUtf8(out));
}

TEST_CASE("unknown charset leaves the output untouched") {
  std::string out = "x";
  CHECK_FALSE(toUtf8("x-unknown", "abc", out));
  CHECK(out == "x");
}

TEST_CASE("the UTF-8 check the decoder output is held to (mail::isValidUtf8)") {
  CHECK(isValidUtf8(""));
  CHECK(isValidUtf8("caf\xC3\xA9 \xF0\x9F\x98\x82"));
  CHECK_FALSE(isValidUtf8("\xC3"));
  CHECK_FALSE(isValidUtf8("\xF5\x80\x80\x80"));
  CHECK_FALSE(isValidUtf8("\xE0\x80\x80"));
}
