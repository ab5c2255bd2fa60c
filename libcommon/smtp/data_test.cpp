// Tests for the DATA and BDAT content decoders: a table of inputs (fed
// whole, one byte at a time and in random pieces), and random streams
// checked against the rule "the message ends at the first CRLF.CRLF".
#include "smtp/data.hpp"

#include <catch2/catch.hpp>
#include <random>

using namespace yubin::smtp;

namespace {

struct DotResult {
  size_t consumed = 0;
  std::string out;
  bool done = false;
  bool bare = false;
};

DotResult decodeIn(std::string_view in, size_t piece) {
  DotDecoder d;
  DotResult r;
  size_t i = 0;
  while (i < in.size() && !d.done()) {
    std::string_view p = in.substr(i, piece == 0 ? in.size() : piece);
    size_t n = d.decode(p, r.out);
    REQUIRE((n == p.size() || d.done()));
    i += n;
  }
  r.consumed = i;
  r.done = d.done();
  r.bare = d.sawBareLineEnding();
  return r;
}

DotResult decodeAllWays(std::string_view in) {
  DotResult whole = decodeIn(in, 0);
  for (size_t piece : {1, 2, 3, 7}) {
    DotResult other = decodeIn(in, piece);
    CHECK(other.consumed == whole.consumed);
    CHECK(other.out == whole.out);
    CHECK(other.done == whole.done);
    CHECK(other.bare == whole.bare);
  }
  return whole;
}

}  // namespace

TEST_CASE("DATA content decoding", "[data]") {
  struct Case {
    std::string in;
    bool done;
    size_t consumed;  // meaningful when done
    std::string out;
    bool bare;
  };
  const std::vector<Case> cases = {
      {".\r\n", true, 3, "", false},
      {"a\r\n.\r\n", true, 6, "a\r\n", false},
      {"a\r\n.\r\nNOOP\r\n", true, 6, "a\r\n", false},
      {"..\r\n.\r\n", true, 7, ".\r\n", false},
      {"..a\r\n.b\r\n.\r\n", true, 12, ".a\r\nb\r\n", false},
      {"a\r\n\r\n.\r\n", true, 8, "a\r\n\r\n", false},
      {"a\r\n", false, 0, "a\r\n", false},
      {"a\r\n.", false, 0, "a\r\n", false},
      {"a\r\n.\r", false, 0, "a\r\n", false},
      // Smuggling attempts: none of these may end the message.
      {"a\n.\nMAIL", false, 0, "a\r\n.\r\nMAIL", true},
      {"a\n.\r\nMAIL", false, 0, "a\r\n.\r\nMAIL", true},
      {"a\r\n.\nMAIL", false, 0, "a\r\n.\r\nMAIL", true},
      {"a\r.\r\nMAIL", false, 0, "a\r\n.\r\nMAIL", true},
      {"a\r\n.\rMAIL", false, 0, "a\r\n.\r\nMAIL", true},
      {"a\r.\rMAIL", false, 0,
       "a\r\n.\r\n"
       "MAIL",
       true},
      {"a\r\n.\r\r\n", false, 0, "a\r\n.\r\n\r\n", true},
      {"\n.\r\n", false, 0, "\r\n.\r\n", true},
      // A real CRLF.CRLF after bare line endings does end it.
      {"a\nb\r\n.\r\n", true, 8, "a\r\nb\r\n", true},
      {"a\r\r\n.\r\n", true, 7, "a\r\n\r\n", true},
      {"a\n\r\n.\r\n", true, 7, "a\r\n\r\n", true},
      // A stuffed dot after a bare line ending is unstuffed, a lone one kept.
      {"a\n..b\r\n.\r\n", true, 10, "a\r\n.b\r\n", true},
      {"a\n.b\r\n.\r\n", true, 9, "a\r\n.b\r\n", true},
  };
  for (const auto& c : cases) {
    INFO("input: " << c.in);
    DotResult r = decodeAllWays(c.in);
    CHECK(r.done == c.done);
    if (c.done) CHECK(r.consumed == c.consumed);
    CHECK(r.out == c.out);
    CHECK(r.bare == c.bare);
  }
}

TEST_CASE("long lines stream without buffering", "[data]") {
  std::string line(100000, 'x');
  DotDecoder d;
  std::string out;
  CHECK(d.decode(line, out) == line.size());
  CHECK(out == line);
  out.clear();
  CHECK(d.decode("\r\n.\r\n", out) == 5);
  CHECK(d.done());
  CHECK(out == "\r\n");
}

TEST_CASE("random streams end exactly at the first CRLF.CRLF", "[data]") {
  std::mt19937 rng(12345);
  const char alphabet[] = {'\r', '\n', '.', 'a'};
  for (int iter = 0; iter < 20000; ++iter) {
    std::string in;
    const size_t len = rng() % 24;
    for (size_t i = 0; i < len; ++i) in.push_back(alphabet[rng() % 4]);
    const std::string framed = "\r\n" + in;
    const size_t end = framed.find("\r\n.\r\n");
    INFO("input: " << in);
    DotResult r = decodeIn(in, 1 + rng() % 4);
    if (end == std::string::npos) {
      REQUIRE_FALSE(r.done);
      REQUIRE(r.consumed == in.size());
    } else {
      REQUIRE(r.done);
      REQUIRE(r.consumed == end + 3);
    }
    // The output never holds a bare CR or LF.
    for (size_t i = 0; i < r.out.size(); ++i) {
      if (r.out[i] == '\r') REQUIRE((i + 1 < r.out.size() && r.out[i + 1] == '\n'));
      if (r.out[i] == '\n') REQUIRE((i > 0 && r.out[i - 1] == '\r'));
    }
    // Bare line endings are reported exactly when the consumed input has one
    // (a CR at the very end may still be followed by its LF).
    const std::string used = in.substr(0, r.consumed);
    bool bare = false;
    for (size_t i = 0; i < used.size(); ++i) {
      if (used[i] == '\n' && (i == 0 || used[i - 1] != '\r')) bare = true;
      if (used[i] == '\r' && i + 1 < used.size() && used[i + 1] != '\n') bare = true;
    }
    REQUIRE(r.bare == bare);
  }
}

TEST_CASE("whole-line fast path agrees with the byte loop", "[data]") {
  // Fed one byte at a time the decoder never sees a whole line, so that is
  // the reference for inputs fed whole and in random pieces. Long lines of
  // mostly plain text, with dots, bare CRs and LFs, and CRLF.CRLF mixed in.
  std::mt19937 rng(4242);
  const std::vector<std::string> atoms = {
      "abc", "x",  "\r\n",  "\r\n",      "\r\n",  ".",      "..",
      "\r",  "\n", "\r\n.", "\r\n.\r\n", "\n.\n", "\r\r\n", std::string(70, 'y')};
  for (int iter = 0; iter < 5000; ++iter) {
    std::string in;
    const size_t n = rng() % 40;
    for (size_t i = 0; i < n; ++i) in += atoms[rng() % (atoms.size() - (iter % 2 ? 0 : 3))];
    INFO("input: " << in);
    DotResult ref = decodeIn(in, 1);
    for (size_t piece : {size_t{0}, size_t{1 + rng() % 90}}) {
      DotResult r = decodeIn(in, piece);
      REQUIRE(r.consumed == ref.consumed);
      REQUIRE(r.out == ref.out);
      REQUIRE(r.done == ref.done);
      REQUIRE(r.bare == ref.bare);
    }
  }
}

TEST_CASE("hostile content stays linear: many bare CRs, no LF", "[data]") {
  // Each bare CR sends the fast path back to the byte loop; the positions
  // it found are kept, so 4 MB is not rescanned once per CR.
  std::string in;
  for (int i = 0; i < (1 << 21); ++i) in += "a\r";
  in += "\n";
  DotDecoder d;
  std::string out;
  CHECK(d.decode(in, out) == in.size());
  CHECK(d.sawBareLineEnding());
  CHECK(out.size() == (size_t{1} << 21) * 3);
  CHECK(out.compare(0, 6, "a\r\na\r\n") == 0);
}

TEST_CASE("BDAT content decoding", "[data]") {
  auto run = [](std::vector<std::string> chunks, bool binary) {
    ChunkDecoder d;
    d.reset(binary);
    std::string out;
    for (const auto& c : chunks) d.decode(c, out);
    d.finish(out);
    return std::make_pair(out, d.sawBareLineEnding());
  };
  CHECK(run({"a\r\nb\r\n"}, false) == std::make_pair(std::string("a\r\nb\r\n"), false));
  CHECK(run({"a\r", "\nb"}, false) == std::make_pair(std::string("a\r\nb"), false));
  CHECK(run({"a\nb"}, false) == std::make_pair(std::string("a\r\nb"), true));
  CHECK(run({"a\rb"}, false) == std::make_pair(std::string("a\r\nb"), true));
  CHECK(run({"a\r"}, false) == std::make_pair(std::string("a\r\n"), true));
  CHECK(run({"a\r", "\r\n"}, false) == std::make_pair(std::string("a\r\n\r\n"), true));
  CHECK(run({"\r\n.\r\n"}, false) == std::make_pair(std::string("\r\n.\r\n"), false));
  CHECK(run({"a\nb\r"}, true) == std::make_pair(std::string("a\nb\r"), false));
  // One byte at a time gives the same as whole.
  const std::string in = "x\r\ny\nz\r\rw\r";
  std::vector<std::string> bytes;
  for (char c : in) bytes.emplace_back(1, c);
  CHECK(run(bytes, false) == run({in}, false));
}
