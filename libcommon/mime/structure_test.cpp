// Tests for mime/structure, section, render and cache: offsets, sizes and
// line counts computed by hand; every message also parsed one byte at a
// time, in random chunks and through ReadAt; limits; bad MIME; the cache
// form round trip and hostile cache bytes.
// Trust: test code.
#include "mime/structure.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "mime/cache.hpp"
#include "mime/render.hpp"
#include "mime/section.hpp"

using namespace yubin::mime;

namespace {

Structure parseBytewise(std::string_view msg, StructureLimits limits = {}) {
  StructureParser p(limits);
  for (size_t i = 0; i < msg.size(); ++i) p.feed(msg.substr(i, 1));
  return p.finish();
}

// Parses whole, byte by byte, in random chunks and via ReadAt; all agree.
Structure parseAll(std::string_view msg, StructureLimits limits = {}) {
  const Structure whole = parseStructure(msg, limits);
  CHECK(parseBytewise(msg, limits) == whole);
  std::mt19937 rng(42);
  StructureParser p(limits);
  for (size_t i = 0; i < msg.size();) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 300)(rng);
    p.feed(msg.substr(i, n));
    i += n;
  }
  CHECK(p.finish() == whole);
  auto viaRead = parseStructure(
      [&](uint64_t off, char* buf, size_t len) -> yubin::Result<size_t> {
        const size_t n = std::min<size_t>(len, 5000);  // short reads too
        std::memcpy(buf, msg.data() + off, n);
        return n;
      },
      msg.size(), limits);
  REQUIRE(viaRead.ok());
  CHECK(viaRead.value() == whole);
  auto back = decodeStructure(encodeStructure(whole));
  REQUIRE(back.ok());
  CHECK(back.value() == whole);
  return whole;
}

std::string slice(std::string_view msg, const std::optional<SectionRange>& r) {
  REQUIRE(r);
  return std::string(msg.substr(r->offset, r->size));
}

const std::string kNested =
    "Subject: s\r\n"                                 // 0..12
    "Content-Type: multipart/mixed; boundary=X\r\n"  // 12..55
    "\r\n"                                           // 55..57: header 57 bytes
    "preamble\r\n"                                   // 57..67
    "--X\r\n"                                        // 67..72
    "Content-Type: text/plain\r\n"                   // 72..98
    "\r\n"                                           // 98..100
    "one\r\n"                                        // 100..105
    "two\r\n"                                        // 105..110
    "--X\r\n"                                        // 110..115
    "Content-Type: message/rfc822\r\n"               // 115..145
    "\r\n"                                           // 145..147
    "Subject: inner\r\n"                             // 147..163
    "\r\n"                                           // 163..165
    "inner body\r\n"                                 // 165..177
    "--X--\r\n"                                      // 177..184
    "epilogue\r\n";                                  // 184..194

}  // namespace

TEST_CASE("offsets, sizes and line counts of a nested message") {
  const Structure s = parseAll(kNested);
  CHECK(s.size == kNested.size());
  CHECK_FALSE(s.truncated);
  REQUIRE(s.parts.size() == 4);
  const Part& root = s.parts[0];
  CHECK(root.headerSize == 57);
  CHECK(root.bodyOffset == 57);
  CHECK(root.bodySize == kNested.size() - 57);
  CHECK(root.children == std::vector<uint32_t>{1, 2});
  const Part& text = s.parts[1];
  CHECK(text.headerOffset == 72);
  CHECK(text.headerSize == 28);
  CHECK(text.bodyOffset == 100);
  CHECK(text.bodySize == 8);  // "one\r\ntwo": the CRLF before "--X" belongs to it
  CHECK(text.bodyLines == 1);
  const Part& msg = s.parts[2];
  CHECK(msg.isMessage());
  CHECK(msg.bodyOffset == 147);
  CHECK(msg.bodySize == 28);
  CHECK(msg.bodyLines == 2);
  const Part& inner = s.parts[3];
  CHECK(inner.parent == 2);
  CHECK(inner.depth == 2);
  CHECK(inner.headerOffset == 147);
  CHECK(inner.headerSize == 18);
  CHECK(inner.bodySize == 10);
  CHECK(inner.envelope->subject == "inner");

  CHECK(renderBody(s, true) ==
        "((\"text\" \"plain\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 8 1 NIL NIL NIL NIL)"
        "(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 28 "
        "(NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) "
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 10 0 NIL NIL NIL NIL) 2 "
        "NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"X\") NIL NIL NIL)");
  CHECK(renderPart(s, 1, false) ==
        "(\"text\" \"plain\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 8 1)");
}

TEST_CASE("section ranges (RFC 3501 §6.4.5)") {
  const Structure s = parseStructure(kNested);
  using T = SectionText;
  auto [path, text, expected] = GENERATE(table<std::vector<uint32_t>, T, std::string>({
      {{}, T::None, kNested},
      {{}, T::Header, "Subject: s\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"},
      {{1}, T::None, "one\r\ntwo"},
      {{1}, T::Mime, "Content-Type: text/plain\r\n\r\n"},
      {{2}, T::None, "Subject: inner\r\n\r\ninner body"},
      {{2}, T::Mime, "Content-Type: message/rfc822\r\n\r\n"},
      {{2}, T::Header, "Subject: inner\r\n\r\n"},
      {{2}, T::HeaderFields, "Subject: inner\r\n\r\n"},
      {{2}, T::Text, "inner body"},
      {{2, 1}, T::None, "inner body"},
  }));
  SectionSpec spec{path, text};
  CHECK(slice(kNested, sectionRange(s, spec)) == expected);
}

TEST_CASE("sections that do not exist") {
  const Structure s = parseStructure(kNested);
  using T = SectionText;
  CHECK_FALSE(sectionRange(s, {{3}, T::None}));
  CHECK_FALSE(sectionRange(s, {{0}, T::None}));
  CHECK_FALSE(sectionRange(s, {{}, T::Mime}));
  CHECK_FALSE(sectionRange(s, {{1}, T::Header}));  // not a message/rfc822
  CHECK_FALSE(sectionRange(s, {{1, 2}, T::None}));
  CHECK_FALSE(sectionRange(s, {{2, 2}, T::None}));
  // A non-multipart message has exactly part 1.
  const Structure plain = parseStructure("Subject: x\r\n\r\nbody");
  CHECK(slice("Subject: x\r\n\r\nbody", sectionRange(plain, {{1}, T::None})) == "body");
  CHECK_FALSE(sectionRange(plain, {{2}, T::None}));
}

TEST_CASE("LF-only messages: CRLF sizes for IMAP, stored sizes for reading") {
  const std::string msg =
      "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nl1\nl2\n--b--\n";
  const Structure s = parseAll(msg);
  REQUIRE(s.parts.size() == 2);
  CHECK(s.parts[1].bodySize == 5);
  CHECK(s.parts[1].bodyBareLf == 1);
  CHECK(s.parts[1].bodyLines == 1);
  CHECK(renderPart(s, 1, false) ==
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 6 1)");
  CHECK(renderPart(s, 1, false, RenderOptions{false, false}) ==
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 5 1)");
  auto whole = sectionRange(s, {{}, SectionText::None});
  REQUIRE(whole);
  CHECK(whole->size == msg.size());
  CHECK(whole->crlfSize == msg.size() + 8);
  auto header = sectionRange(s, {{}, SectionText::Header});
  CHECK(header->crlfSize == header->size + 3);
}

TEST_CASE("bad MIME") {
  SECTION("an outer delimiter closes the inner multipart") {
    const std::string msg =
        "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
        "Content-Type: multipart/alternative; "
        "boundary=i\r\n\r\n--i\r\n\r\na\r\n--o\r\n\r\nb\r\n--o--\r\n";
    const Structure s = parseAll(msg);
    REQUIRE(s.parts.size() == 4);
    CHECK(s.parts[0].children == std::vector<uint32_t>{1, 3});
    CHECK(s.parts[1].children == std::vector<uint32_t>{2});
    CHECK(s.parts[2].bodySize == 1);
    CHECK(s.parts[3].bodySize == 1);
  }
  SECTION("a header cut by a delimiter, no empty line") {
    const std::string msg =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: "
        "text/html\r\n--b--\r\n";
    const Structure s = parseAll(msg);
    REQUIRE(s.parts.size() == 2);
    CHECK(s.parts[1].subtype == "html");
    CHECK(s.parts[1].headerSize == std::strlen("Content-Type: text/html"));
    CHECK(s.parts[1].bodySize == 0);
  }
  SECTION("an immediate delimiter gives an empty part") {
    const std::string msg =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n\r\nx\r\n--b--";
    const Structure s = parseAll(msg);
    REQUIRE(s.parts.size() == 3);
    CHECK(s.parts[1].headerSize == 0);
    CHECK(s.parts[1].bodySize == 0);
    CHECK(s.parts[2].bodySize == 1);
  }
  SECTION("an empty body right before a delimiter (found by the fuzzer: was negative)") {
    const std::string msg =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        "--b\r\n\r\n--b--\r\n";
    const Structure s = parseAll(msg);
    REQUIRE(s.parts.size() == 3);
    // The empty line ending the header is the CRLF the delimiter takes
    // (Dovecot: BODY[1.MIME] is 26 bytes, BODY[2.MIME] empty).
    CHECK(s.parts[1].headerSize == 26);
    CHECK(s.parts[1].bodySize == 0);
    CHECK(s.parts[1].bodyLines == 0);
    CHECK(s.parts[2].headerSize == 0);
    CHECK(s.parts[2].bodySize == 0);
    CHECK(renderBody(s, false) ==
          "((\"text\" \"plain\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0)"
          "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0) \"mixed\")");
  }
  SECTION("message/rfc822 encoded in base64 is a leaf") {
    const Structure s = parseAll(
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: "
        "base64\r\n\r\nU3ViamVjdDogeA==\r\n");
    CHECK(s.parts.size() == 1);
    CHECK(renderBody(s, false) ==
          "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 18 (NIL NIL NIL NIL NIL NIL NIL NIL NIL "
          "NIL) "
          "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0) 1)");
  }
  SECTION("boundary longer than the limit: no children") {
    const std::string b(kMaxBoundary + 1, 'b');
    const Structure s = parseAll("Content-Type: multipart/mixed; boundary=" + b + "\r\n\r\n--" + b +
                                 "\r\n\r\nx\r\n");
    CHECK(s.parts.size() == 1);
  }
  SECTION("empty input") {
    const Structure s = parseAll("");
    REQUIRE(s.parts.size() == 1);
    CHECK(s.parts[0].headerSize == 0);
    CHECK(s.parts[0].bodySize == 0);
    CHECK(renderBody(s, true) ==
          "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)");
  }
}

TEST_CASE("1000-deep nesting attempts stop at the depth limit") {
  std::string deep = "Subject: deep\r\n";
  for (int i = 0; i < 1000; ++i)
    deep += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" +
            std::to_string(i) + "\r\n";
  deep += "\r\ninnermost\r\n";
  const Structure s = parseAll(deep);
  CHECK(s.truncated);
  CHECK(s.parts.size() == 21);
  CHECK(s.parts.back().depth == 20);
  const std::string bs = renderBody(s, true);
  CHECK(bs.rfind("(((((((((((((((((((((", 0) == 0);

  std::string msgs;
  for (int i = 0; i < 1000; ++i)
    msgs += "Subject: " + std::to_string(i) + "\r\nContent-Type: message/rfc822\r\n\r\n";
  msgs += "Subject: last\r\n\r\nend\r\n";
  StructureLimits limits;
  limits.maxDepth = 5;
  const Structure m = parseAll(msgs, limits);
  CHECK(m.truncated);
  CHECK(m.parts.size() == 6);
  CHECK(renderBody(m, false).find("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)") !=
        std::string::npos);
}

TEST_CASE("part-count limit") {
  std::string msg = "Content-Type: multipart/mixed; boundary=p\r\n\r\n";
  for (int i = 0; i < 100; ++i) msg += "--p\r\n\r\npart " + std::to_string(i) + "\r\n";
  msg += "--p--\r\n";
  StructureLimits limits;
  limits.maxParts = 10;
  const Structure s = parseAll(msg, limits);
  CHECK(s.truncated);
  CHECK(s.parts.size() == 10);
  CHECK(s.parts[0].bodySize == msg.size() - s.parts[0].bodyOffset);
}

TEST_CASE("an extremely long header line and a long body line cost bounded memory") {
  const std::string msg = "Subject: " + std::string(300000, 'x') +
                          "\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n" +
                          std::string(1000000, 'y') + "\r\n--q--\r\n";
  const Structure s = parseAll(msg);
  CHECK(s.truncated);
  CHECK(s.parts[0].headerTruncated);
  CHECK(s.parts[0].envelope->subject->size() < 70000);
  REQUIRE(s.parts.size() == 2);
  CHECK(s.parts[1].bodySize == 1000000);
}

TEST_CASE("rendering keeps the IMAP syntax whatever the input") {
  std::string out;
  appendIString(out, "plain");
  CHECK(out == "\"plain\"");
  out.clear();
  appendIString(out, "say \"hi\" \\o/");
  CHECK(out == "\"say \\\"hi\\\" \\\\o/\"");
  out.clear();
  appendIString(out, "caf\xC3\xA9");
  CHECK(out == "{5}\r\ncaf\xC3\xA9");
  out.clear();
  appendIString(out, "caf\xC3\xA9", RenderOptions{true, true});
  CHECK(out == "\"caf\xC3\xA9\"");
  out.clear();
  appendIString(out, "bad\xFF", RenderOptions{true, true});
  CHECK(out == "{4}\r\nbad\xFF");
  out.clear();
  appendIString(out, std::string("a\0b\r\n", 5));
  CHECK(out == "{4}\r\nab\r\n");
  out.clear();
  appendIString(out, std::string(2000, 'a'));
  CHECK(out.rfind("{2000}\r\n", 0) == 0);
  out.clear();
  appendNString(out, std::nullopt);
  CHECK(out == "NIL");
}

TEST_CASE("structure cache: hostile bytes are refused, never trusted") {
  const Structure s = parseStructure(kNested);
  const std::string enc = encodeStructure(s);
  // Every truncation fails cleanly.
  for (size_t n = 0; n < enc.size(); ++n) CHECK_FALSE(decodeStructure(enc.substr(0, n)).ok());
  CHECK_FALSE(decodeStructure(enc + "x").ok());
  // Flipped bytes: either refused or a valid tree; never a crash.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string bad = enc;
    bad[std::uniform_int_distribution<size_t>(0, bad.size() - 1)(rng)] ^=
        static_cast<char>(1 << std::uniform_int_distribution<int>(0, 7)(rng));
    auto r = decodeStructure(bad);
    if (r.ok()) {
      (void)renderBody(r.value(), true);
      for (size_t k = 1; k < r->parts.size(); ++k) CHECK(r->parts[k].parent < k);
    }
  }
  // A huge part count in a tiny input does not allocate.
  CHECK_FALSE(decodeStructure(std::string("YMS\x01\x00\x00\xff\xff\xff\xff\x0f", 11)).ok());
}

TEST_CASE("structure cache: each structural check refuses what it guards") {
  const Structure good = parseStructure(kNested);
  REQUIRE(good.parts.size() == 4);
  REQUIRE(decodeStructure(encodeStructure(good)).ok());
  // The refusal decodeStructure gives for a well-encoded but forged tree.
  auto refusal = [](const Structure& forged) -> std::string {
    auto r = decodeStructure(encodeStructure(forged));
    return r.ok() ? "accepted" : r.error().message;
  };
  const std::string badTree = "structure cache: bad tree";
  const std::string badRange = "structure cache: range outside the message";
  Structure s = good;
  s.parts[3].parent = 3;  // its own parent
  CHECK(refusal(s) == badTree);
  s = good;
  s.parts[1].parent = 2;  // a parent after its child
  CHECK(refusal(s) == badTree);
  s = good;
  s.parts[3].depth = 1;  // not its parent's depth + 1
  CHECK(refusal(s) == badTree);
  s = good;
  s.parts[0].depth = 1;  // the root is at depth 0
  CHECK(refusal(s) == badTree);
  s = good;
  s.parts[1].bodyOffset = s.size + 1;
  CHECK(refusal(s) == badRange);
  s = good;
  s.parts[1].bodySize = s.size - s.parts[1].bodyOffset + 1;
  CHECK(refusal(s) == badRange);
  s = good;
  s.parts[1].headerSize = s.size;
  CHECK(refusal(s) == badRange);
  s = good;
  s.parts[1].headerBareLf = s.parts[1].headerSize + 1;
  CHECK(refusal(s) == badRange);
  s = good;
  s.parts[1].bodyLines = s.parts[1].bodySize + 1;
  CHECK(refusal(s) == badRange);
  s = good;
  s.parts.clear();
  CHECK(refusal(s) == "structure cache: bad preamble");
  CHECK(refusal(good) == "accepted");
}

TEST_CASE("parsing from a seekable source reports read errors") {
  const std::string msg = kNested;
  auto failing = parseStructure(
      [&](uint64_t off, char* buf, size_t len) -> yubin::Result<size_t> {
        if (off >= 100) return yubin::Error{"pread: I/O error", 5};
        const size_t n = std::min<size_t>(len, 100 - off);
        std::memcpy(buf, msg.data() + off, n);
        return n;
      },
      msg.size());
  REQUIRE_FALSE(failing.ok());
  CHECK(failing.error().message == "pread: I/O error");
  // A source shorter than announced is an error, never a shorter message.
  auto shorter = parseStructure(
      [&](uint64_t off, char* buf, size_t len) -> yubin::Result<size_t> {
        if (off >= msg.size()) return size_t{0};
        const size_t n = std::min<size_t>(len, msg.size() - off);
        std::memcpy(buf, msg.data() + off, n);
        return n;
      },
      msg.size() + 10);
  CHECK_FALSE(shorter.ok());
}

TEST_CASE("BODYSTRUCTURE extension data of a single part and of a multipart") {
  const std::string msg =
      "Content-Type: multipart/related; boundary=r; type=\"text/html\"\r\n"
      "Content-Disposition: inline\r\nContent-Language: de\r\n"
      "Content-Location: http://example.org/\r\n\r\n"
      "--r\r\nContent-Type: text/html; charset=utf-8\r\nContent-MD5: abc=\r\n"
      "Content-Disposition: attachment; filename=\"a b.html\"\r\n"
      "Content-Language: en (English), fr\r\nContent-ID: <id@x>\r\n"
      "Content-Description: the page\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<p>\r\n--r--\r\n";
  const Structure s = parseAll(msg);
  CHECK(renderBody(s, true) ==
        "((\"text\" \"html\" (\"charset\" \"utf-8\") \"<id@x>\" \"the page\" \"8bit\" 3 0 \"abc=\" "
        "(\"attachment\" (\"filename\" \"a b.html\")) (\"en\" \"fr\") NIL) \"related\" "
        "(\"boundary\" \"r\" \"type\" \"text/html\") (\"inline\" NIL) (\"de\") "
        "\"http://example.org/\")");
  CHECK(renderBody(s, false) ==
        "((\"text\" \"html\" (\"charset\" \"utf-8\") \"<id@x>\" \"the page\" \"8bit\" 3 0) "
        "\"related\")");
}

TEST_CASE("envelopeFields false: the messages are marked, their fields left empty") {
  StructureLimits lean;
  lean.envelopeFields = false;
  const Structure full = parseStructure(kNested);
  const Structure s = parseStructure(kNested, lean);
  REQUIRE(s.parts.size() == full.parts.size());
  for (size_t i = 0; i < s.parts.size(); ++i) {
    INFO(i);
    CHECK(s.parts[i].envelope.has_value() == full.parts[i].envelope.has_value());
    if (s.parts[i].envelope) CHECK(*s.parts[i].envelope == Envelope{});
    CHECK(s.parts[i].bodyOffset == full.parts[i].bodyOffset);
    CHECK(s.parts[i].bodySize == full.parts[i].bodySize);
    CHECK(s.parts[i].children == full.parts[i].children);
  }
  REQUIRE(full.parts[3].envelope);
  CHECK(full.parts[3].envelope->subject == "inner");  // the default fills them
}
