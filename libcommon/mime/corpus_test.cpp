// Corpus tests: every testdata/*.eml against its .expected ENVELOPE, BODY
// and BODYSTRUCTURE, parsed whole, one byte at a time and in odd chunks.
// The expected strings were checked part by part against RFC 3501 §7.4.2
// and against Dovecot 2.3's imap on the same files (differences are the
// documented choices in render.hpp and structure.hpp).
// Trust: test code.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "mime/render.hpp"

using namespace yubin::mime;

namespace {

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string renderAll(const Structure& s) {
  return "ENVELOPE " + renderEnvelope(*s.root().envelope) + "\nBODY " + renderBody(s, false) +
         "\nBODYSTRUCTURE " + renderBody(s, true) + "\n";
}

}  // namespace

TEST_CASE("corpus: ENVELOPE, BODY and BODYSTRUCTURE of every test message") {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(MIME_TESTDATA))
    if (e.path().extension() == ".eml") files.push_back(e.path());
  REQUIRE(files.size() >= 15);
  for (const auto& f : files) {
    INFO(f.filename().string());
    const std::string msg = readFile(f);
    auto expectedPath = f;
    expectedPath.replace_extension(".expected");
    REQUIRE(std::filesystem::exists(expectedPath));
    const std::string expected = readFile(expectedPath);
    const Structure whole = parseStructure(msg);
    CHECK(renderAll(whole) == expected);
    for (size_t chunk : {size_t{1}, size_t{2}, size_t{7}, size_t{64}}) {
      StructureParser p;
      for (size_t i = 0; i < msg.size(); i += chunk) p.feed(std::string_view(msg).substr(i, chunk));
      CHECK(p.finish() == whole);
    }
  }
}

TEST_CASE("corpus: spot checks written from the RFC") {
  const std::string dir = MIME_TESTDATA;
  SECTION("simple message, RFC 3501 envelope order, sender/reply-to default to from") {
    const Structure s = parseStructure(readFile(dir + "/simple.eml"));
    CHECK(renderEnvelope(*s.root().envelope) ==
          "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello there\" "
          "((\"Alice Example\" NIL \"alice\" \"example.org\")) "
          "((\"Alice Example\" NIL \"alice\" \"example.org\")) "
          "((\"Alice Example\" NIL \"alice\" \"example.org\")) "
          "((\"Bob\" NIL \"bob\" \"example.net\")(NIL NIL \"carol\" \"example.net\")) "
          "((\"Dave, Jr.\" NIL \"dave\" \"example.com\")) NIL NIL \"<1234@example.org>\")");
    CHECK(renderBody(s, false) ==
          "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 23 2)");
  }
  SECTION("message/rfc822 inside a multipart") {
    const Structure s = parseStructure(readFile(dir + "/rfc822-in-multipart.eml"));
    REQUIRE(s.parts.size() == 6);
    const Part& m = s.parts[2];
    CHECK(m.isMessage());
    REQUIRE(m.children.size() == 1);
    const Part& inner = s.parts[m.children[0]];
    CHECK(inner.envelope->subject == "original");
    CHECK(inner.children.size() == 2);
    CHECK(m.disposition->type == "inline");
  }
  SECTION("missing headers: every envelope member NIL") {
    const Structure s = parseStructure(readFile(dir + "/missing-headers.eml"));
    CHECK(renderEnvelope(*s.root().envelope) == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
  }
}
