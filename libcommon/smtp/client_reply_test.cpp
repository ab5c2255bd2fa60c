// Tests for the client-side reply parser: good replies (single, multi-line,
// enhanced codes, several in one read), every grammar violation, limits, and
// each case fed whole, one byte at a time and in every two-piece split.
#include "smtp/client_reply.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace yubin::smtp;

namespace {

struct Outcome {
  std::vector<ClientReply> replies;
  bool failed = false;
  std::string error;
  bool partial = false;
};

Outcome run(const std::vector<std::string_view>& pieces, ReplyLimits limits = {}) {
  ReplyParser p(limits);
  Outcome o;
  for (auto piece : pieces) {
    p.feed(piece);
    while (auto r = p.next()) o.replies.push_back(*r);
  }
  o.failed = p.failed();
  o.error = p.error();
  o.partial = p.partial();
  return o;
}

Outcome whole(std::string_view in, ReplyLimits limits = {}) { return run({in}, limits); }

Outcome byteByByte(std::string_view in, ReplyLimits limits = {}) {
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < in.size(); ++i) pieces.push_back(in.substr(i, 1));
  return run(pieces, limits);
}

ClientReply make(int code, std::string enhanced, std::vector<std::string> lines) {
  ClientReply r;
  r.code = code;
  r.enhanced = std::move(enhanced);
  r.lines = std::move(lines);
  return r;
}

// Whole, byte by byte and every split in two must agree.
Outcome consistent(std::string_view in, ReplyLimits limits = {}) {
  Outcome a = whole(in, limits);
  Outcome b = byteByByte(in, limits);
  CHECK(a.replies == b.replies);
  CHECK(a.failed == b.failed);
  CHECK(a.error == b.error);
  for (size_t cut = 0; cut <= in.size(); ++cut) {
    Outcome c = run({in.substr(0, cut), in.substr(cut)}, limits);
    CHECK(c.replies == a.replies);
    CHECK(c.failed == a.failed);
  }
  return a;
}

}  // namespace

TEST_CASE("well-formed replies", "[client_reply]") {
  struct Case {
    std::string in;
    std::vector<ClientReply> want;
  };
  auto c = GENERATE(values<Case>({
      {"220 mx.example.org LMTP ready\r\n", {make(220, "", {"mx.example.org LMTP ready"})}},
      {"250 2.1.0 Ok\r\n", {make(250, "2.1.0", {"Ok"})}},
      {"250\r\n", {make(250, "", {""})}},
      {"250 \r\n", {make(250, "", {""})}},
      {"354 End data with <CR><LF>.<CR><LF>\r\n",
       {make(354, "", {"End data with <CR><LF>.<CR><LF>"})}},
      // Multi-line LHLO reply: no enhanced code, one capability per line.
      {"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
       {make(250, "", {"mx.example.org", "PIPELINING", "8BITMIME", "SMTPUTF8"})}},
      // Enhanced code on every line is stripped from each.
      {"550-5.1.1 No such user\r\n550-5.1.1 here\r\n550 5.1.1 at all\r\n",
       {make(550, "5.1.1", {"No such user", "here", "at all"})}},
      // An empty continuation line.
      {"250-\r\n250 done\r\n", {make(250, "", {"", "done"})}},
      // Enhanced code whose class differs from the reply code: kept as text.
      {"550 4.2.2 odd\r\n", {make(550, "", {"4.2.2 odd"})}},
      // Not an enhanced code: too many digits, no space after it.
      {"250 2.1234.5 x\r\n", {make(250, "", {"2.1234.5 x"})}},
      {"250 2.1.5x\r\n", {make(250, "", {"2.1.5x"})}},
      // Enhanced code alone on the line.
      {"452 4.2.2\r\n", {make(452, "4.2.2", {""})}},
      // Three-digit subject and detail.
      {"554 5.123.456 text\r\n", {make(554, "5.123.456", {"text"})}},
      // Several replies in one read (LMTP: one per recipient after DATA).
      {"250 2.0.0 <a> delivered\r\n452 4.2.2 <b> over quota\r\n552 5.2.2 <c> full\r\n",
       {make(250, "2.0.0", {"<a> delivered"}), make(452, "4.2.2", {"<b> over quota"}),
        make(552, "5.2.2", {"<c> full"})}},
      // Control characters in the text are neutralised, TAB becomes a space.
      {"250 a\tb\x01"
       "c\x7f\r\n",
       {make(250, "", {"a b?c?"})}},
      // UTF-8 text passes through.
      {"250 2.0.0 d\xc3\xa9j\xc3\xa0 vu\r\n", {make(250, "2.0.0", {"d\xc3\xa9j\xc3\xa0 vu"})}},
  }));
  INFO(c.in);
  Outcome o = consistent(c.in);
  CHECK_FALSE(o.failed);
  CHECK_FALSE(o.partial);
  CHECK(o.replies == c.want);
}

TEST_CASE("grammar violations are errors", "[client_reply]") {
  struct Case {
    std::string in;
    std::string error;
  };
  auto c = GENERATE(values<Case>({
      {"25\r\n", "reply line shorter than a reply code"},
      {"\r\n", "reply line shorter than a reply code"},
      {"2x0 hi\r\n", "bad reply code"},
      {"abc hi\r\n", "bad reply code"},
      {"150 hi\r\n", "bad reply code"},
      {"650 hi\r\n", "bad reply code"},
      {"260 hi\r\n", "bad reply code"},
      {" 250 hi\r\n", "bad reply code"},
      {"250hi\r\n", "no space or hyphen after the reply code"},
      {"250_hi\r\n", "no space or hyphen after the reply code"},
      {"2500 hi\r\n", "no space or hyphen after the reply code"},
      {"250-a\r\n251 b\r\n", "mixed reply codes"},
      {"250-a\r\n550-b\r\n250 c\r\n", "mixed reply codes"},
      {"250 hi\n", "reply line ends with a bare LF"},
      {"250 h\ri\r\n", "bare CR in reply line"},
      {std::string("250 h\0i\r\n", 9), "NUL in reply line"},
  }));
  INFO(c.in);
  Outcome o = consistent(c.in);
  CHECK(o.failed);
  CHECK(o.error == c.error);
  CHECK(o.replies.empty());
}

TEST_CASE("replies before an error are still delivered; nothing after it", "[client_reply]") {
  Outcome o = consistent("250 ok\r\n25x bad\r\n250 later\r\n");
  REQUIRE(o.replies.size() == 1);
  CHECK(o.replies[0] == make(250, "", {"ok"}));
  CHECK(o.failed);
}

TEST_CASE("line and line-count limits", "[client_reply]") {
  ReplyLimits limits{.maxLine = 16, .maxLines = 3};
  // 14 octets + CRLF = 16: fits exactly.
  Outcome fits = consistent("250 0123456789\r\n", limits);
  CHECK_FALSE(fits.failed);
  REQUIRE(fits.replies.size() == 1);
  CHECK(fits.replies[0].lines[0] == "0123456789");
  Outcome longer = consistent("250 01234567890\r\n", limits);
  CHECK(longer.failed);
  CHECK(longer.error == "reply line too long");
  // The limit holds even when no line ending ever comes.
  std::string endless(100000, 'x');
  Outcome noEnd = byteByByte("250 " + endless, limits);
  CHECK(noEnd.failed);
  CHECK(noEnd.error == "reply line too long");

  Outcome three = consistent("250-a\r\n250-b\r\n250 c\r\n", limits);
  CHECK_FALSE(three.failed);
  REQUIRE(three.replies.size() == 1);
  CHECK(three.replies[0].lines.size() == 3);
  Outcome four = consistent("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", limits);
  CHECK(four.failed);
  CHECK(four.error == "too many lines in one reply");
}

TEST_CASE("default limits: generous lines, bounded replies", "[client_reply]") {
  std::string line = "250 " + std::string(1000, 'a') + "\r\n";  // over RFC 5321's 512
  Outcome o = whole(line);
  CHECK_FALSE(o.failed);
  std::string many;
  for (int i = 0; i < 200; ++i) many += "250-x\r\n";
  many += "250 end\r\n";
  Outcome m = whole(many);
  CHECK(m.failed);
  CHECK(m.error == "too many lines in one reply");
}

TEST_CASE("partial replies are reported as such", "[client_reply]") {
  ReplyParser p;
  CHECK_FALSE(p.partial());
  p.feed("250-first\r\n");
  CHECK(p.partial());
  CHECK(p.ready() == 0);
  p.feed("250 la");
  CHECK(p.partial());
  p.feed("st\r");
  CHECK(p.ready() == 0);
  p.feed("\n");
  CHECK_FALSE(p.partial());
  REQUIRE(p.ready() == 1);
  auto r = p.next();
  REQUIRE(r);
  CHECK(r->lines == std::vector<std::string>{"first", "last"});
  CHECK_FALSE(p.next());
}

TEST_CASE("summary and local replies", "[client_reply]") {
  CHECK(make(552, "5.2.2", {"Mailbox", "full"}).summary() == "552 5.2.2 Mailbox full");
  CHECK(make(250, "", {""}).summary() == "250");
  CHECK(make(250, "", {"mx", "", "SIZE"}).summary() == "250 mx SIZE");
  ClientReply l = localReply(421, "4.4.1", "cannot connect:\r\nrefused");
  CHECK(l.code == 421);
  CHECK(l.transient());
  CHECK_FALSE(l.permanent());
  CHECK(l.summary() == "421 4.4.1 cannot connect:??refused");
}

TEST_CASE("hostile input never crashes and never grows without bound", "[client_reply]") {
  // Deterministic pseudo-random bytes biased towards the grammar's alphabet.
  const char alphabet[] = "0123456789 -.\r\n\r\n25\0xyz";
  uint32_t seed = 12345;
  for (int round = 0; round < 300; ++round) {
    std::string in;
    size_t len = 1 + (seed % 400);
    for (size_t i = 0; i < len; ++i) {
      seed = seed * 1103515245u + 12345u;
      in.push_back(alphabet[(seed >> 16) % (sizeof alphabet - 1)]);
    }
    ReplyParser a({.maxLine = 64, .maxLines = 4});
    a.feed(in);
    ReplyParser b({.maxLine = 64, .maxLines = 4});
    for (char ch : in) b.feed(std::string_view(&ch, 1));
    CHECK(a.failed() == b.failed());
    CHECK(a.ready() == b.ready());
    while (auto r = a.next()) {
      CHECK(r->code >= 200);
      CHECK(r->code <= 559);
      CHECK(r->lines.size() <= 4);
      for (const auto& l : r->lines) CHECK(l.size() <= 64);
    }
  }
}
