// Unit tests for queue IDs: format, strict validation, ordering.
#include "queue/queue_id.hpp"

#include <catch2/catch.hpp>
#include <set>

using namespace yubin::queue;

TEST_CASE("queue IDs encode time, pid and counter in 16 base32 characters") {
  QueueId a = QueueId::fromParts(0, 0, 0);
  CHECK(a.str() == "0000000000000000");
  QueueId b = QueueId::fromParts(1, 0, 0);
  CHECK(b.str() == "0000000000200000");  // lowest time bit is bit 26 of 80
  QueueId c = QueueId::fromParts(0, 0xfff, 0x3fff);
  CHECK(c.str() == "00000000001zzzzz");
  CHECK(QueueId::fromParts((uint64_t{1} << 54) - 1, 0xfff, 0x3fff).str() == "zzzzzzzzzzzzzzzz");
  // A realistic time round-trips through micros().
  uint64_t t = 1'700'000'000'123'456ull;
  QueueId d = QueueId::fromParts(t, 4242, 17);
  CHECK(d.micros() == t);
  CHECK(QueueId::valid(d.str()));
}

TEST_CASE("queue ID validation is strict") {
  auto bad =
      GENERATE(as<std::string>{}, "", "000000000000000", "00000000000000000", "000000000000000I",
               "000000000000000i", "000000000000000l", "000000000000000o", "000000000000000u",
               "00000000000000/0", "..00000000000000", "000000000000000 ", "0000000000000000\n",
               std::string("00000000000000\0"
                           "0",
                           16),
               "ABCDEFGHJKMNPQRS");
  CAPTURE(bad);
  CHECK_FALSE(QueueId::valid(bad));
  CHECK_FALSE(QueueId::parse(bad));
}

TEST_CASE("IdGenerator is strictly increasing even when the clock stalls or steps back") {
  IdGenerator gen(1234);
  std::vector<QueueId> ids;
  uint64_t clock[] = {1000, 1000, 1000, 999, 500, 1001, 1001, 2000};
  for (uint64_t t : clock) ids.push_back(gen.next(t));
  for (size_t i = 1; i < ids.size(); ++i) CHECK(ids[i - 1].str() < ids[i].str());
  CHECK(ids.back().micros() == 2000);

  // 16384 IDs in one microsecond overflow the counter into the next one.
  IdGenerator g2(1);
  std::set<std::string> seen;
  std::string last;
  for (int i = 0; i < 20000; ++i) {
    QueueId id = g2.next(5000);
    CHECK(id.str() > last);
    last = id.str();
    seen.insert(last);
  }
  CHECK(seen.size() == 20000);
  CHECK(QueueId::parse(last)->micros() == 5001);
}

TEST_CASE("IDs sort by time across processes") {
  IdGenerator p1(1), p2(4095);
  QueueId a = p2.next(100), b = p1.next(101);
  CHECK(a < b);
  CHECK(a.str() < b.str());
  // Real clock: parseable and increasing.
  IdGenerator real(99);
  QueueId x = real.next(), y = real.next();
  CHECK(x < y);
  CHECK(QueueId::parse(x.str()) == x);
}
