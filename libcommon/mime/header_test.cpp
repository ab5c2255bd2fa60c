// Tests for mime/header: fields and folding, limits, RFC 2047 words, RFC
// 2231 parameters, Content-Type / Disposition, HEADER.FIELDS filtering.
// Trust: test code.
#include "mime/header.hpp"

#include <catch2/catch.hpp>

using namespace yubin::mime;

namespace {

std::string fieldsOf(const std::vector<HeaderField>& fields) {
  std::string s;
  for (const auto& f : fields) s += "[" + f.name + "|" + f.value + "]";
  return s;
}

// The same header fed one byte at a time.
ParsedHeader bytewise(std::string_view text, HeaderLimits limits = {}) {
  HeaderParser p(limits);
  size_t used = 0;
  for (size_t i = 0; i < text.size() && !p.done(); ++i) used += p.feed(text.substr(i, 1));
  p.finish();
  (void)used;
  return ParsedHeader{p.collector().fields(), p.size(), p.collector().truncated()};
}

}  // namespace

TEST_CASE("header fields, folding and the end of the section") {
  auto [in, fields, size] = GENERATE(table<std::string, std::string, uint64_t>({
      {"A: 1\r\nB: 2\r\n\r\nbody", "[A| 1][B| 2]", 14},
      {"A: 1\nB:2\n\nbody", "[A| 1][B|2]", 10},
      {"Subject: a\r\n  folded\r\n\tagain\r\n\r\n", "[Subject| a\r\n  folded\r\n\tagain]", 32},
      {"A: 1\r\nno colon here\r\n continued\r\nB: 2\r\n\r\n", "[A| 1][B| 2]", 41},
      {"Name With Space: x\r\nOk : y\r\n\r\n", "[Ok| y]", 30},
      {" leading continuation\r\nA: 1\r\n\r\n", "[A| 1]", 31},
      {"A: no end", "[A| no end]", 9},
      {"\r\nbody", "", 2},
      {"X: 8-bit caf\xC3\xA9\r\n\r\n", "[X| 8-bit caf\xC3\xA9]", 18},
  }));
  const ParsedHeader h = parseHeader(in);
  CHECK(fieldsOf(h.fields) == fields);
  CHECK(h.size == size);
  CHECK_FALSE(h.truncated);
  const ParsedHeader b = bytewise(in);
  CHECK(fieldsOf(b.fields) == fields);
  CHECK(b.size == size);
}

TEST_CASE("header parser stops after the empty line") {
  HeaderParser p;
  const std::string text = "A: 1\r\n\r\nbody\r\n";
  CHECK(p.feed(text) == 8);
  CHECK(p.done());
  CHECK(p.feed("more") == 0);
}

TEST_CASE("header limits truncate and mark, and the section end stays exact") {
  HeaderLimits limits;
  limits.maxFields = 3;
  limits.maxBytes = 100;
  limits.maxLine = 50;
  std::string many;
  for (int i = 0; i < 10; ++i) many += "F" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  auto h = parseHeader(many, limits);
  CHECK(h.fields.size() == 3);
  CHECK(h.truncated);
  CHECK(h.size == many.size());

  const std::string longLine = "Subject: " + std::string(1000, 'x') + "\r\n\r\n";
  h = parseHeader(longLine, limits);
  REQUIRE(h.fields.size() == 1);
  CHECK(h.fields[0].value.size() == 50 - 8);
  CHECK(h.truncated);
  CHECK(h.size == longLine.size());
  CHECK(bytewise(longLine, limits).fields[0].value == h.fields[0].value);

  std::string folded = "To: a";
  for (int i = 0; i < 100; ++i) folded += "\r\n b";
  folded += "\r\n\r\n";
  h = parseHeader(folded, limits);
  REQUIRE(h.fields.size() == 1);
  CHECK(h.fields[0].value.size() <= 100);
  CHECK(h.truncated);
  CHECK(h.size == folded.size());
}

TEST_CASE("unfold") {
  CHECK(unfold(" a\r\n b\r\n\tc ") == "a b\tc");
  CHECK(unfold("") == "");
}

TEST_CASE("RFC 2047 encoded words") {
  auto [in, out] = GENERATE(table<std::string, std::string>({
      // RFC 2047 §8 examples.
      {"=?ISO-8859-1?Q?a?=", "a"},
      {"=?ISO-8859-1?Q?a?= b", "a b"},
      {"=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"},
      {"=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=", "ab"},
      {"=?ISO-8859-1?Q?a?=\r\n  =?ISO-8859-1?Q?b?=", "ab"},
      {"=?ISO-8859-1?Q?a_b?=", "a b"},
      {"=?ISO-8859-1?Q?a?= =?windows-1252?Q?_b?=", "a b"},
      {"=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=", "a =?ISO-8859-2?Q?_b?="},
      {"(=?ISO-8859-1?Q?a?=)", "(a)"},
      {"=?ISO-8859-1?Q?Andr=E9?= Pirard", "Andr\xC3\xA9 Pirard"},
      {"=?utf-8?b?8J+Ygg==?=", "\xF0\x9F\x98\x82"},
      {"=?UTF-8?B?w6k=?=", "\xC3\xA9"},
      // A character split across two words in one charset.
      {"=?utf-8?q?=C3?= =?utf-8?q?=A9?=", "\xC3\xA9"},
      // RFC 2231 §5 language suffix.
      {"=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"},
      {"=?windows-1252?q?=80?=", "\xE2\x82\xAC"},
      // Unknown charset or malformed: left as written.
      {"=?x-unknown?q?a?= b", "=?x-unknown?q?a?= b"},
      {"=?utf-8?x?a?=", "=?utf-8?x?a?="},
      {"=?utf-8?q?a b?=", "=?utf-8?q?a b?="},
      {"=?utf-8?q?unterminated", "=?utf-8?q?unterminated"},
      {"plain text", "plain text"},
      {"=?", "=?"},
  }));
  CHECK(decodeEncodedWords(in) == out);
}

TEST_CASE("Content-Type and RFC 2231 parameters") {
  auto [in, type, subtype, params] =
      GENERATE(table<std::string, std::string, std::string, std::string>({
          {"text/plain", "text", "plain", ""},
          {"Text/HTML; Charset=\"UTF-8\"", "Text", "HTML", "[Charset=UTF-8]"},
          {" text / plain ; charset = us-ascii (comment) ; format=flowed", "text", "plain",
           "[charset=us-ascii][format=flowed]"},
          {"multipart/mixed; boundary=----=_Part_0_12.34", "multipart", "mixed",
           "[boundary=----=_Part_0_12.34]"},
          {"multipart/mixed;\r\n boundary=\"a b\\\"c\"", "multipart", "mixed", "[boundary=a b\"c]"},
          {"application/x; name*0=\"long\"; name*1=\"name.pdf\"", "application", "x",
           "[name=longname.pdf]"},
          {"application/x; name*1=\"b\"; name*0=\"a\"", "application", "x", "[name=ab]"},
          {"application/x; title*=us-ascii'en-us'This%20is", "application", "x",
           "[title*=us-ascii'en-us'This%20is]"},
          {"application/x; t*0*=utf-8''%E2%82%AC; t*1=\" x\"; a=b", "application", "x",
           "[a=b][t*=utf-8''%E2%82%AC%20x]"},
          {"application/x; t*1=\"orphan\"", "application", "x", ""},
          {"text/plain; junk; =novalue; ok=1", "text", "plain", "[ok=1]"},
          {"text/plain charset=utf-8", "text", "plain", "[charset=utf-8]"},
      }));
  auto ct = parseContentType(in);
  REQUIRE(ct);
  CHECK(ct->type == type);
  CHECK(ct->subtype == subtype);
  std::string got;
  for (const auto& p : ct->params) got += "[" + p.name + "=" + p.value + "]";
  CHECK(got == params);
}

TEST_CASE("invalid Content-Type") {
  for (const char* in : {"", "text", "text/", "/plain", "(comment)", "text plain"})
    CHECK_FALSE(parseContentType(in));
}

TEST_CASE("parameter values decoded to UTF-8") {
  auto params = parseParams(
      "; a*=utf-8''%E2%82%AC.txt; b=\"=?utf-8?q?caf=C3=A9?=\"; "
      "c*=iso-8859-1'fr'%E9; d=plain; e*=x-unknown''%41");
  CHECK(paramValueUtf8(params, "A") == "\xE2\x82\xAC.txt");
  CHECK(paramValueUtf8(params, "b") == "caf\xC3\xA9");
  CHECK(paramValueUtf8(params, "c") == "\xC3\xA9");
  CHECK(paramValueUtf8(params, "d") == "plain");
  CHECK(paramValueUtf8(params, "e") == "A");
  CHECK_FALSE(paramValueUtf8(params, "missing"));
}

TEST_CASE("Content-Disposition and Content-Language") {
  auto d = parseDisposition("attachment;\r\n filename=\"a.txt\"; size=12");
  REQUIRE(d);
  CHECK(d->type == "attachment");
  REQUIRE(d->params.size() == 2);
  CHECK(d->params[0] == Param{"filename", "a.txt"});
  CHECK_FALSE(parseDisposition(" ; x=y"));
  CHECK(parseLanguageList("en, fr (French) ,de-CH") ==
        std::vector<std::string>{"en", "fr", "de-CH"});
  CHECK(parseLanguageList("").empty());
}

TEST_CASE("HEADER.FIELDS and HEADER.FIELDS.NOT") {
  const std::string header =
      "From: a@example.org\r\nSubject: one\r\n two\r\nTo: b@example.org\nX-Y: z\r\n\r\n";
  CHECK(filterHeaderFields(header, {"subject", "TO"}, false) ==
        "Subject: one\r\n two\r\nTo: b@example.org\r\n\r\n");
  CHECK(filterHeaderFields(header, {"subject", "TO"}, true) ==
        "From: a@example.org\r\nX-Y: z\r\n\r\n");
  CHECK(filterHeaderFields(header, {"missing"}, false) == "\r\n");
  CHECK(filterHeaderFields("", {"a"}, true) == "\r\n");
  // Lines without a colon and their continuations are never copied; a
  // header without an empty line still gets one.
  CHECK(filterHeaderFields(" lead\r\nnot a field\r\n cont\r\nA: 1\r\n x", {"a"}, false) ==
        "A: 1\r\n x\r\n\r\n");
  CHECK(filterHeaderFields(" lead\r\nnot a field\r\n cont\r\nA: 1", {"a"}, true) == "\r\n");
  // A stray CR inside a line is data; bytes after the empty line are not read.
  CHECK(filterHeaderFields("A: x\ry\r\n\r\nA: body", {"a"}, false) == "A: x\ry\r\n\r\n");
  CHECK(filterHeaderFields(std::string(5000, 'a') + ": v\r\nB: w\r\n", {"b"}, true) == "\r\n");
}

TEST_CASE("HEADER.FIELDS filter fed one byte at a time") {
  const std::string header =
      "From: a@example.org\r\nSubject: one\r\n two\nTo: b@example.org\nX-Y: z\r\n\r\nbody";
  for (bool exclude : {false, true}) {
    HeaderFieldFilter f({"subject", "to"}, exclude);
    std::string out;
    for (char c : header) f.feed(std::string_view(&c, 1), out);
    CHECK(f.done());
    f.finish(out);
    CHECK(out == filterHeaderFields(header, {"subject", "to"}, exclude));
  }
}
