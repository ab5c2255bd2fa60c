// Tests for the header additions: Received first; Date and Message-ID
// added at the end of the header section only when missing, recognised in
// any case; body untouched; every input also fed one byte at a time and in
// random pieces.
#include "msad/headers.hpp"

#include <catch2/catch.hpp>
#include <random>

using namespace yubin::msad;

namespace {

const std::string kRecv = "Received: by test\r\n";

std::string run(const std::string& in, int split, unsigned seed = 1) {
  HeaderFixer f(kRecv, "DATE", "<ID@h>");
  std::string out;
  std::mt19937 rng(seed);
  size_t i = 0;
  while (i < in.size()) {
    size_t n = split == 0 ? in.size() : split == 1 ? 1 : 1 + rng() % 13;
    n = std::min(n, in.size() - i);
    f.feed(std::string_view(in).substr(i, n), out);
    i += n;
  }
  f.finish(out);
  return out;
}

}  // namespace

TEST_CASE("header additions") {
  struct Case {
    std::string name, in, out;
  };
  const std::vector<Case> cases = {
      {"both missing", "Subject: hi\r\n\r\nbody\r\n",
       kRecv + "Subject: hi\r\nDate: DATE\r\nMessage-ID: <ID@h>\r\n\r\nbody\r\n"},
      {"both present", "Date: x\r\nmessage-id: <a@b>\r\n\r\nbody\r\n",
       kRecv + "Date: x\r\nmessage-id: <a@b>\r\n\r\nbody\r\n"},
      {"date only", "DATE : x\r\nSubject: y\r\n\r\n",
       kRecv + "DATE : x\r\nSubject: y\r\nMessage-ID: <ID@h>\r\n\r\n"},
      {"names in the body do not count", "Subject: s\r\n\r\nDate: no\r\nMessage-ID: no\r\n",
       kRecv +
           "Subject: s\r\nDate: DATE\r\nMessage-ID: <ID@h>\r\n\r\nDate: no\r\nMessage-ID: no\r\n"},
      {"folded lines are not fields", "Subject: a\r\n Date: folded\r\n\tMessage-ID: folded\r\n\r\n",
       kRecv + "Subject: a\r\n Date: folded\r\n\tMessage-ID: folded\r\nDate: DATE\r\nMessage-ID: "
               "<ID@h>\r\n\r\n"},
      {"look-alike names", "Dates: x\r\nMessage-IDs: y\r\nX-Date: z\r\n\r\n",
       kRecv +
           "Dates: x\r\nMessage-IDs: y\r\nX-Date: z\r\nDate: DATE\r\nMessage-ID: <ID@h>\r\n\r\n"},
      {"no body separator", "Subject: s\r\n",
       kRecv + "Subject: s\r\nDate: DATE\r\nMessage-ID: <ID@h>\r\n"},
      {"no final line end", "Subject: s",
       kRecv + "Subject: s\r\nDate: DATE\r\nMessage-ID: <ID@h>\r\n"},
      {"empty message", "", kRecv + "Date: DATE\r\nMessage-ID: <ID@h>\r\n"},
      {"body only", "\r\nbody\r\n", kRecv + "Date: DATE\r\nMessage-ID: <ID@h>\r\n\r\nbody\r\n"},
      {"bare LF lines", "Subject: s\n\nb\n",
       kRecv + "Subject: s\nDate: DATE\r\nMessage-ID: <ID@h>\r\n\nb\n"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    for (int split = 0; split < 3; ++split) {
      INFO("split " << split);
      CHECK(run(c.in, split) == c.out);
    }
  }
}

TEST_CASE("a huge header line streams through unexamined") {
  std::string big = "X-Big: " + std::string(100000, 'a') + "\r\nDate: d\r\n\r\nb\r\n";
  for (int split = 0; split < 3; ++split) {
    std::string out = run(big, split);
    CHECK(out == kRecv + "X-Big: " + std::string(100000, 'a') +
                     "\r\nDate: d\r\nMessage-ID: <ID@h>\r\n\r\nb\r\n");
  }
  // A huge line starting with "Date" is not examined (it is passed on as is).
  std::string hugeDate = "Date: " + std::string(10000, 'x') + "\r\n\r\n";
  CHECK(run(hugeDate, 0) == kRecv + "Date: " + std::string(10000, 'x') +
                                "\r\nDate: DATE\r\nMessage-ID: <ID@h>\r\n\r\n");
}

TEST_CASE("message ids and dates") {
  std::string a = newMessageId("mx.example"), b = newMessageId("mx.example");
  CHECK(a != b);
  CHECK(a.front() == '<');
  CHECK(a.substr(a.size() - 12) == "@mx.example>");
  CHECK(rfc5322Date(0).size() >= 29);
}
