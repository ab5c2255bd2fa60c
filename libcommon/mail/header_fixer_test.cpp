// Tests of the header additions (header_fixer.hpp): the trace field first;
// From, Date and Message-ID added at the end of the header section only
// when missing (any case, obsolete blanks before the colon); where the
// header ends (empty line, a line that is not a field, a continuation of
// nothing, the end of input) and the separator added when there was none;
// long lines; the body untouched. Every case also fed one byte at a time
// and in random pieces.
#include "mail/header_fixer.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace yubin::mail;

namespace {

const std::string kRecv = "Received: by test\r\n";
const std::string kAdded = "Date: DATE\r\nMessage-ID: <ID@h>\r\n";

std::string run(const std::string& in, int split, bool withFrom = false, unsigned seed = 1) {
  HeaderFixer f({kRecv, withFrom ? "me@h" : "", "DATE", "<ID@h>"});
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

TEST_CASE("header fixer: what is added and where") {
  struct Case {
    std::string name, in, out;
  };
  const std::vector<Case> cases = {
      {"both missing", "Subject: hi\r\n\r\nbody\r\n",
       kRecv + "Subject: hi\r\n" + kAdded + "\r\nbody\r\n"},
      {"both present", "Date: x\r\nmessage-id: <a@b>\r\n\r\nbody\r\n",
       kRecv + "Date: x\r\nmessage-id: <a@b>\r\n\r\nbody\r\n"},
      {"obsolete blanks before the colon", "DATE : x\r\nSubject\t: y\r\n\r\n",
       kRecv + "DATE : x\r\nSubject\t: y\r\nMessage-ID: <ID@h>\r\n\r\n"},
      {"names in the body do not count", "Subject: s\r\n\r\nDate: no\r\nMessage-ID: no\r\n",
       kRecv + "Subject: s\r\n" + kAdded + "\r\nDate: no\r\nMessage-ID: no\r\n"},
      {"folded lines are not fields", "Subject: a\r\n Date: folded\r\n\tMessage-ID: folded\r\n\r\n",
       kRecv + "Subject: a\r\n Date: folded\r\n\tMessage-ID: folded\r\n" + kAdded + "\r\n"},
      {"look-alike names", "Dates: x\r\nMessage-IDs: y\r\nX-Date: z\r\n\r\n",
       kRecv + "Dates: x\r\nMessage-IDs: y\r\nX-Date: z\r\n" + kAdded + "\r\n"},
      {"no body separator: one is added", "Subject: s\r\n",
       kRecv + "Subject: s\r\n" + kAdded + "\r\n"},
      {"no final line end", "Subject: s", kRecv + "Subject: s\r\n" + kAdded + "\r\n"},
      {"empty message", "", kRecv + kAdded + "\r\n"},
      {"body only", "\r\nbody\r\n", kRecv + kAdded + "\r\nbody\r\n"},
      {"bare LF lines", "Subject: s\n\nb\n", kRecv + "Subject: s\n" + kAdded + "\nb\n"},
      {"a line that is not a field ends the header", "Subject: s\r\nnot a field\r\nmore\r\n",
       kRecv + "Subject: s\r\n" + kAdded + "\r\nnot a field\r\nmore\r\n"},
      {"text only (echo hi | sendmail)", "hello\r\n", kRecv + kAdded + "\r\nhello\r\n"},
      {"text without a line end", "hello", kRecv + kAdded + "\r\nhello"},
      {"a continuation of nothing", " indented\r\n", kRecv + kAdded + "\r\n indented\r\n"},
      {"an empty field name", ": x\r\n\r\n", kRecv + kAdded + "\r\n: x\r\n\r\n"},
      {"8-bit in a name", "D\xc3\xa4te: x\r\n", kRecv + kAdded + "\r\nD\xc3\xa4te: x\r\n"},
      {"a CR that is not a line end", "\rx: y\r\n", kRecv + kAdded + "\r\n\rx: y\r\n"},
      {"a lone CR at the end", "Subject: s\r\n\r", kRecv + "Subject: s\r\n" + kAdded + "\r\n\r"},
      {"a name without a colon at the end", "Subject: s\r\nTo", 
       kRecv + "Subject: s\r\n" + kAdded + "\r\nTo"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    for (int split = 0; split < 3; ++split) {
      INFO("split " << split);
      CHECK(run(c.in, split) == c.out);
    }
  }
}

TEST_CASE("header fixer: From only when asked for and missing") {
  for (int split = 0; split < 3; ++split) {
    CHECK(run("Subject: s\r\n\r\nb\r\n", split, true) ==
          kRecv + "Subject: s\r\nFrom: me@h\r\n" + kAdded + "\r\nb\r\n");
    CHECK(run("from: x@y\r\n\r\nb\r\n", split, true) ==
          kRecv + "from: x@y\r\n" + kAdded + "\r\nb\r\n");
    CHECK(run("From-Me: x@y\r\n\r\n", split, true) ==
          kRecv + "From-Me: x@y\r\nFrom: me@h\r\n" + kAdded + "\r\n");
  }
  HeaderFixer f({"", "me@h", "D", "<I@h>"});
  std::string out;
  f.feed("FROM: a\r\nDate: b\r\nMessage-Id: c\r\n\r\n", out);
  f.finish(out);
  CHECK(f.sawFrom());
  CHECK(f.sawDate());
  CHECK(f.sawMessageId());
  CHECK(out == "FROM: a\r\nDate: b\r\nMessage-Id: c\r\n\r\n");
}

TEST_CASE("header fixer: long lines stream through") {
  std::string big = "X-Big: " + std::string(100000, 'a') + "\r\nDate: d\r\n\r\nb\r\n";
  for (int split = 0; split < 3; ++split) {
    CHECK(run(big, split) == kRecv + "X-Big: " + std::string(100000, 'a') +
                                 "\r\nDate: d\r\nMessage-ID: <ID@h>\r\n\r\nb\r\n");
    // A long Date field is still a Date field (only its name is held).
    std::string hugeDate = "Date: " + std::string(10000, 'x') + "\r\n\r\n";
    CHECK(run(hugeDate, split) == kRecv + hugeDate.substr(0, hugeDate.size() - 2) +
                                      "Message-ID: <ID@h>\r\n\r\n");
    // A name longer than the hold limit is passed on unexamined, as a field.
    std::string longName = std::string(HeaderFixer::kHoldLimit + 10, 'N') + ": v\r\n\r\n";
    CHECK(run(longName, split) == kRecv + longName.substr(0, longName.size() - 2) + kAdded +
                                      "\r\n");
    // So is a name followed by too many blanks.
    std::string blanks = "Date" + std::string(HeaderFixer::kHoldLimit, ' ') + ": v\r\n\r\n";
    CHECK(run(blanks, split) == kRecv + blanks.substr(0, blanks.size() - 2) + kAdded + "\r\n");
  }
}

TEST_CASE("header fixer: hostile input, every prefix, random pieces") {
  // Whatever the input, the output is trace + input with insertions only:
  // removing the added lines gives the input back.
  std::mt19937 rng(7);
  const std::string alphabet = "ab:D \t\r\n\x80-";
  for (int round = 0; round < 300; ++round) {
    std::string in;
    size_t len = rng() % 60;
    for (size_t i = 0; i < len; ++i) in += alphabet[rng() % alphabet.size()];
    std::string whole = run(in, 0);
    CHECK(run(in, 1) == whole);
    CHECK(run(in, 2, false, round) == whole);
    REQUIRE(whole.rfind(kRecv, 0) == 0);
    std::string rest = whole.substr(kRecv.size());
    bool found = false;
    for (const std::string& x : {kAdded, kAdded + "\r\n", "\r\n" + kAdded + "\r\n"})
      for (size_t p = 0; p <= in.size() && !found; ++p)
        found = rest == in.substr(0, p) + x + in.substr(p);
    INFO(in);
    CHECK(found);
  }
}

TEST_CASE("message ids and dates") {
  std::string a = newMessageId("mx.example"), b = newMessageId("mx.example");
  CHECK(a != b);
  CHECK(a.size() == 1 + 24 + 12);
  CHECK(a.front() == '<');
  CHECK(a.substr(a.size() - 12) == "@mx.example>");
  std::string d = rfc5322Date(0);
  CHECK(d.size() >= 29);
  CHECK((d.rfind("Thu, 01 Jan 1970", 0) == 0 || d.rfind("Wed, 31 Dec 1969", 0) == 0 ||
         d.rfind("Fri, 02 Jan 1970", 0) == 0));
}

namespace {
// Sets TZ for one test and puts the old value back.
struct ZoneGuard {
  std::optional<std::string> old;
  explicit ZoneGuard(const char* tz) {
    if (const char* o = getenv("TZ")) old = o;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~ZoneGuard() {
    if (old)
      setenv("TZ", old->c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }
};
}  // namespace

TEST_CASE("rfc5322Date: exact strings in fixed zones") {
  struct Case {
    const char* tz;
    int64_t t;
    const char* want;
  };
  auto c = GENERATE(values<Case>({
      {"UTC0", 0, "Thu, 01 Jan 1970 00:00:00 +0000"},
      {"UTC0", 1700000000, "Tue, 14 Nov 2023 22:13:20 +0000"},
      {"UTC0", 1803600000, "Fri, 26 Feb 2027 00:00:00 +0000"},
      {"EST5", 1700000000, "Tue, 14 Nov 2023 17:13:20 -0500"},
      {"IST-5:30", 1700000000, "Wed, 15 Nov 2023 03:43:20 +0530"},
      {"NPT-5:45", 0, "Thu, 01 Jan 1970 05:45:00 +0545"},
      {"UTC0", -86400, "Wed, 31 Dec 1969 00:00:00 +0000"},
  }));
  ZoneGuard zone(c.tz);
  CHECK(rfc5322Date(c.t) == c.want);
}

TEST_CASE("rfc5322Date: a time struct tm cannot hold is the epoch, not garbage") {
  ZoneGuard zone("UTC0");
  CHECK(rfc5322Date(INT64_MAX) == "Thu, 01 Jan 1970 00:00:00 +0000");
}
