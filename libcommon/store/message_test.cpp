// Unit tests for the streaming transforms (CRLF -> LF, mboxrd quoting),
// message sources and the Delivered-To loop check. Every case is also fed
// one byte at a time.
#include <catch2/catch.hpp>

#include "store/message_source.hpp"
#include "store/transform.hpp"

using namespace yubin;
using namespace yubin::store;

namespace {

// Feeds in with the given piece size (0 = all at once).
template <class T>
std::string run(std::string_view in, size_t piece) {
  T t;
  std::string out;
  if (piece == 0) piece = in.size() + 1;
  for (size_t i = 0; i < in.size(); i += piece) t.feed(in.substr(i, piece), out);
  t.finish(out);
  return out;
}

// A source that hands out its bytes in pieces of a fixed size.
class PieceSource final : public MessageSource {
 public:
  PieceSource(std::string d, size_t piece) : d_(std::move(d)), piece_(piece) {}
  Status forEachChunk(const ChunkFn& fn) const override {
    for (size_t i = 0; i < d_.size(); i += piece_) {
      if (auto st = fn(std::string_view(d_).substr(i, piece_)); !st) return st;
    }
    return {};
  }
  uint64_t size() const override { return d_.size(); }

 private:
  std::string d_;
  size_t piece_;
};

}  // namespace

TEST_CASE("CRLF to LF, in any piece size") {
  struct Case {
    std::string in, want;
  };
  auto c = GENERATE(values<Case>({
      {"", ""},
      {"a\r\nb\r\n", "a\nb\n"},
      {"a\rb\r", "a\rb\r"},
      {"\r\r\n\r", "\r\n\r"},
      {"\r\n\r\n", "\n\n"},
      {"no newline", "no newline"},
      {"x\n\r\n", "x\n\n"},
  }));
  size_t piece = GENERATE(0, 1, 2, 3);
  CHECK(run<CrlfToLf>(c.in, piece) == c.want);
}

TEST_CASE("mboxrd quoting table, in any piece size") {
  struct Case {
    std::string in, want;
  };
  auto c = GENERATE(values<Case>({
      {"From me\n", ">From me\n"},
      {">From me\n", ">>From me\n"},
      {">>>From x", ">>>>From x"},
      {"From", "From"},  // not "From " (no space)
      {"From\n", "From\n"},
      {"from x\n", "from x\n"},
      {" From x\n", " From x\n"},
      {">Fro\n>>\n>", ">Fro\n>>\n>"},
      {"a From x\nFrom y\n", "a From x\n>From y\n"},
      {"\nFrom \n", "\n>From \n"},
      {">>F>From x\n", ">>F>From x\n"},
      {"FroFrom x\n", "FroFrom x\n"},
      {"", ""},
  }));
  size_t piece = GENERATE(0, 1, 2, 5);
  CHECK(run<FromQuoter>(c.in, piece) == c.want);
}

TEST_CASE("un-quoting recognises ^>+From ") {
  CHECK(isQuotedFromLine(">From x\n"));
  CHECK(isQuotedFromLine(">>>From "));
  CHECK_FALSE(isQuotedFromLine("From x\n"));
  CHECK_FALSE(isQuotedFromLine(">From"));
  CHECK_FALSE(isQuotedFromLine("> From x"));
  CHECK_FALSE(isQuotedFromLine(">>"));
}

TEST_CASE("a line of a million '>' is quoted without trouble") {
  std::string in(1000000, '>');
  in += "From x\n";
  std::string out = run<FromQuoter>(in, 4096);
  CHECK(out.size() == in.size() + 1);
  CHECK(out.substr(out.size() - 8) == ">From x\n");
}

TEST_CASE("loop check reads Delivered-To in the header only") {
  struct Case {
    std::string msg;
    std::string rcpt;
    bool want;
  };
  auto c = GENERATE(values<Case>({
      {"Delivered-To: u@Example.ORG\r\nSubject: x\r\n\r\nbody", "u@example.org", true},
      {"delivered-to:   <u@example.org>  \n\n", "u@EXAMPLE.org", true},
      {"DELIVERED-TO: U@example.org\n\n", "u@example.org", false},  // local part is exact
      {"Subject: x\n\nDelivered-To: u@example.org\n", "u@example.org", false},
      {"Subject: x\r\n\r\nDelivered-To: u@example.org\r\n", "u@example.org", false},
      {"X-Delivered-To: u@example.org\n\n", "u@example.org", false},
      {"Subject: a\n b\nDelivered-To:\n u@example.org\n\n", "u@example.org", true},
      {"Delivered-To: other@example.org\nDelivered-To: u@example.org", "u@example.org", true},
      {"Delivered-To: u@example.org.evil\n", "u@example.org", false},
      {"Delivered-To: local\n", "local", true},
      {"", "u@example.org", false},
  }));
  size_t piece = GENERATE(1, 3, 65536);
  INFO(c.msg);
  CHECK(deliveredToListed(PieceSource(c.msg, piece), c.rcpt) == c.want);
}

TEST_CASE("loop check stops at 1 MiB of header") {
  std::string msg = "X-Pad: " + std::string(2u << 20, 'a') + "\nDelivered-To: u@x\n\n";
  CHECK_FALSE(deliveredToListed(MemorySource(msg), "u@x"));
  CHECK(deliveredToListed(MemorySource("X-Pad: y\nDelivered-To: u@x\n\n"), "u@x"));
}

TEST_CASE("memory source chunks and readAll") {
  std::string big(200000, 'q');
  big[150000] = '\0';
  MemorySource m(big);
  size_t calls = 0;
  REQUIRE(m.forEachChunk([&](std::string_view c) -> Status {
             CHECK_FALSE(c.empty());
             ++calls;
             return {};
           }).ok());
  CHECK(calls == 4);
  auto r = readAll(m);
  REQUIRE(r.ok());
  CHECK(*r == big);
  auto stop = m.forEachChunk([](std::string_view) -> Status { return Error{"stop", 5}; });
  REQUIRE_FALSE(stop.ok());
  CHECK(stop.error().errnum == 5);
}
