// Tests for IMAP sequence sets: parsing (valid and hostile), membership
// with '*', resolution, iteration over counts and UID lists, compact
// formatting and round trips.
#include "imap/sequence.hpp"

#include <catch2/catch.hpp>

using namespace yubin::imap;

namespace {

std::vector<uint32_t> numbers(const SequenceSet& s, uint32_t count) {
  std::vector<uint32_t> out;
  s.forEachNumber(count, [&](uint32_t n) { out.push_back(n); });
  return out;
}

}  // namespace

TEST_CASE("sequence sets parse and print back", "[imap][sequence]") {
  struct Case {
    const char* in;
    const char* out;
  };
  auto c = GENERATE(values<Case>({
      {"1", "1"},
      {"1:4", "1:4"},
      {"4:1", "4:1"},
      {"*", "*"},
      {"1:*", "1:*"},
      {"*:4", "*:4"},
      {"1,3,5:7,*", "1,3,5:7,*"},
      {"4294967295", "4294967295"},
      {"1:4294967295", "1:4294967295"},
      {"$", "$"},
      {"2:2", "2"},
  }));
  auto s = SequenceSet::parse(c.in);
  REQUIRE(s.ok());
  CHECK(s->str() == c.out);
  auto again = SequenceSet::parse(s->str());
  REQUIRE(again.ok());
  CHECK(again.value() == s.value());
}

TEST_CASE("bad sequence sets are refused", "[imap][sequence]") {
  auto bad = GENERATE(as<std::string>{}, "", "0", "0:3", "01", "1:", ":1", "1,,2", ",1", "1,",
                      "4294967296", "99999999999", "1:2:3", "a", "1-3", "**", "*:", "$:1",
                      "1,$", " 1", "1 ", std::string("1\0", 2), "-1", "+1", "1:0");
  CHECK_FALSE(SequenceSet::parse(bad).ok());
}

TEST_CASE("$ is refused where no saved result is allowed", "[imap][sequence]") {
  CHECK_FALSE(SequenceSet::parse("$", false).ok());
  auto s = SequenceSet::parse("$");
  REQUIRE(s.ok());
  CHECK(s->isSaved());
  CHECK_FALSE(s->empty());
  CHECK(s->ranges().empty());
}

TEST_CASE("membership resolves '*' to the largest number", "[imap][sequence]") {
  auto s = SequenceSet::parse("2:4,*").value();
  CHECK_FALSE(s.contains(1, 10));
  CHECK(s.contains(2, 10));
  CHECK(s.contains(4, 10));
  CHECK_FALSE(s.contains(5, 10));
  CHECK(s.contains(10, 10));
  CHECK_FALSE(s.contains(9, 10));
  // RFC 3501 §6.4.8: "559:*" includes the last UID even if it is below 559.
  auto high = SequenceSet::parse("559:*").value();
  CHECK(high.contains(100, 100));
  CHECK_FALSE(high.contains(99, 100));
  CHECK(high.contains(559, 100));
  // An empty mailbox: '*' names nothing.
  CHECK_FALSE(SequenceSet::parse("*").value().contains(0, 0));
  CHECK(SequenceSet::parse("1:*").value().resolve(0).empty());
}

TEST_CASE("resolve sorts and merges ranges", "[imap][sequence]") {
  auto s = SequenceSet::parse("7:5,1,2,3,*,10:9,4").value();
  auto r = s.resolve(12);
  REQUIRE(r.size() == 3);
  CHECK(r[0] == UidRange{1, 7});
  CHECK(r[1] == UidRange{9, 10});
  CHECK(r[2] == UidRange{12, 12});
  CHECK(s.maxNumber(12) == 12);
  CHECK(SequenceSet::parse("3:8").value().maxNumber(2) == 8);
  // Overlapping ranges collapse; the full 32-bit range does not overflow.
  auto full = SequenceSet::parse("1:4294967295,5,4294967295").value().resolve(3);
  REQUIRE(full.size() == 1);
  CHECK(full[0] == UidRange{1, 4294967295U});
}

TEST_CASE("forEachNumber visits each message once, in order, within the count",
          "[imap][sequence]") {
  CHECK(numbers(SequenceSet::parse("3,1:2,2,*").value(), 5) == std::vector<uint32_t>{1, 2, 3, 5});
  CHECK(numbers(SequenceSet::parse("4:*").value(), 6) == std::vector<uint32_t>{4, 5, 6});
  CHECK(numbers(SequenceSet::parse("8:9").value(), 6).empty());
  CHECK(numbers(SequenceSet::parse("5:9").value(), 6) == std::vector<uint32_t>{5, 6});
  CHECK(numbers(SequenceSet::parse("1:*").value(), 0).empty());
  // The top of the 32-bit range terminates.
  std::vector<uint32_t> top;
  SequenceSet::parse("4294967294:*").value().forEachNumber(
      4294967295U, [&](uint32_t n) { top.push_back(n); });
  CHECK(top == std::vector<uint32_t>{4294967294U, 4294967295U});
}

TEST_CASE("forEachIndex maps UID sets onto a sorted UID list", "[imap][sequence]") {
  const std::vector<uint32_t> uids = {3, 5, 9, 10, 42, 100};
  auto indexes = [&](const char* set) {
    std::vector<size_t> out;
    SequenceSet::parse(set).value().forEachIndex(uids, [&](size_t i) { out.push_back(i); });
    return out;
  };
  CHECK(indexes("1:4") == std::vector<size_t>{0});
  CHECK(indexes("5:10") == std::vector<size_t>{1, 2, 3});
  CHECK(indexes("*") == std::vector<size_t>{5});
  CHECK(indexes("200:*") == std::vector<size_t>{5});  // RFC 3501 §6.4.8
  CHECK(indexes("11:41") == std::vector<size_t>{});
  CHECK(indexes("1:*") == std::vector<size_t>{0, 1, 2, 3, 4, 5});
  CHECK(indexes("100,3,42") == std::vector<size_t>{0, 4, 5});
  std::vector<size_t> none;
  SequenceSet::parse("1:*").value().forEachIndex({}, [&](size_t i) { none.push_back(i); });
  CHECK(none.empty());
}

TEST_CASE("compact formatting", "[imap][sequence]") {
  CHECK(formatSequence(std::vector<uint32_t>{}) == "");
  CHECK(formatSequence(std::vector<uint32_t>{1, 2, 3, 7}) == "1:3,7");
  CHECK(formatSequence(std::vector<uint32_t>{5}) == "5");
  // Order is kept (COPYUID source and destination correspond item by item).
  CHECK(formatSequence(std::vector<uint32_t>{9, 10, 3, 4, 5}) == "9:10,3:5");
  CHECK(formatSequence(std::vector<uint32_t>{4294967294U, 4294967295U, 1}) ==
        "4294967294:4294967295,1");
  auto s = SequenceSet::fromValues(std::vector<uint32_t>{7, 1, 3, 2, 2, 8, 0});
  CHECK(s.str() == "1:3,7:8");
  auto r = s.resolve(0);
  CHECK(formatRanges(r) == "1:3,7:8");
}

TEST_CASE("round trip: values -> set -> values", "[imap][sequence]") {
  std::vector<uint32_t> values;
  for (uint32_t i = 1; i < 500; i += (i % 7) + 1) values.push_back(i);
  auto s = SequenceSet::parse(formatSequence(values));
  REQUIRE(s.ok());
  CHECK(numbers(s.value(), 1000) == values);
}
