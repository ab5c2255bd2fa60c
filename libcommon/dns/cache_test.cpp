// Unit tests for the resolver's answer cache: TTLs read from raw messages
// (well-formed, compressed, hostile, cut short at every length), the
// keep-how-long rule (RFC 2308 negative caching, caps, temporary failures),
// the bounded LRU map, and the Resolver with its cache on against the
// canned responder: hits, expiry on a test clock, negative and SERVFAIL
// answers, merged identical lookups, eviction, case-insensitive names and
// destruction with callers waiting.
#include "dns/cache.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <random>

#include "dns/dns_testing.hpp"
#include "dns/resolver.hpp"
#include "event/event_testing.hpp"

namespace ev = yubin::event;
using namespace yubin::dns;
using namespace yubin::dns::testing;
using namespace std::chrono_literals;

namespace {

// A raw DNS message: header, one question, answer and authority records.
struct Message {
  std::string question = Reply::encodeName("example.test") + Reply::u16(kTypeMx) + Reply::u16(1);
  std::vector<std::string> answers = {}, authority = {};
  uint16_t qdcount = 1;

  static std::string rr(const std::string& owner, uint16_t type, uint32_t ttl,
                        const std::string& rdata) {
    return owner + Reply::u16(type) + Reply::u16(1) + Reply::u32(ttl) +
           Reply::u16(static_cast<uint16_t>(rdata.size())) + rdata;
  }
  static std::string soaData(uint32_t minimum, const std::string& mname = Reply::encodeName("ns.t")) {
    return mname + Reply::encodeName("h.t") + Reply::u32(1) + Reply::u32(2) + Reply::u32(3) +
           Reply::u32(4) + Reply::u32(minimum);
  }
  std::string bytes() const {
    std::string out = Reply::u16(0x1234) + Reply::u16(0x8180) + Reply::u16(qdcount) +
                      Reply::u16(static_cast<uint16_t>(answers.size())) +
                      Reply::u16(static_cast<uint16_t>(authority.size())) + Reply::u16(0) +
                      question;
    for (const auto& a : answers) out += a;
    for (const auto& a : authority) out += a;
    return out;
  }
};

const std::string kPtr = std::string("\xc0\x0c", 2);  // -> the question's name
const std::string kMx = Reply::u16(10) + Reply::encodeName("mx.example.test");
const std::string kA = std::string("\x7f\x00\x00\x01", 4);

std::optional<MessageTtls> ttlsOf(const std::string& m) {
  return messageTtls(reinterpret_cast<const unsigned char*>(m.data()), m.size());
}

}  // namespace

TEST_CASE("messageTtls reads the answer's smallest TTL and the SOA's negative TTL") {
  struct Case {
    const char* what;
    Message msg;
    std::optional<uint32_t> answer, negative;
  };
  auto c = GENERATE_COPY(values<Case>({
      {"empty answer", Message{}, std::nullopt, std::nullopt},
      {"one MX", Message{.answers = {Message::rr(kPtr, kTypeMx, 3600, kMx)}}, 3600u, std::nullopt},
      {"smallest of several",
       Message{.answers = {Message::rr(kPtr, kTypeMx, 3600, kMx), Message::rr(kPtr, kTypeMx, 120, kMx),
                           Message::rr(kPtr, kTypeMx, 900, kMx)}},
       120u, std::nullopt},
      {"a CNAME chain counts",
       Message{.answers = {Message::rr(kPtr, kTypeCname, 30, Reply::encodeName("b.test")),
                           Message::rr(Reply::encodeName("b.test"), kTypeA, 86400, kA)}},
       30u, std::nullopt},
      {"top bit set is zero (RFC 2181 §8)",
       Message{.answers = {Message::rr(kPtr, kTypeA, 0x80000010u, kA)}}, 0u, std::nullopt},
      {"SOA: minimum smaller",
       Message{.authority = {Message::rr(kPtr, kTypeSoa, 600, Message::soaData(120))}},
       std::nullopt, 120u},
      {"SOA: TTL smaller",
       Message{.authority = {Message::rr(kPtr, kTypeSoa, 30, Message::soaData(3600))}},
       std::nullopt, 30u},
      {"SOA with compressed names",
       Message{.authority = {Message::rr(kPtr, kTypeSoa, 500,
                                         kPtr + kPtr + std::string(16, '\0') + Reply::u32(77))}},
       std::nullopt, 77u},
      {"first SOA wins; other authority records are ignored",
       Message{.authority = {Message::rr(kPtr, 2, 5, Reply::encodeName("ns.t")),
                             Message::rr(kPtr, kTypeSoa, 400, Message::soaData(300)),
                             Message::rr(kPtr, kTypeSoa, 10, Message::soaData(10))}},
       std::nullopt, 300u},
      {"no question",
       Message{.question = "", .answers = {Message::rr(kPtr, kTypeA, 42, kA)}, .qdcount = 0}, 42u,
       std::nullopt},
  }));
  CAPTURE(c.what);
  auto t = ttlsOf(c.msg.bytes());
  REQUIRE(t);
  CHECK(t->answer == c.answer);
  CHECK(t->negative == c.negative);
}

TEST_CASE("messageTtls refuses malformed messages") {
  Message good{.answers = {Message::rr(kPtr, kTypeMx, 60, kMx)},
               .authority = {Message::rr(kPtr, kTypeSoa, 60, Message::soaData(60))}};
  std::string full = good.bytes();
  REQUIRE(ttlsOf(full));
  // Cut short at every length: the counts promise more than is there.
  for (size_t n = 0; n < full.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(ttlsOf(full.substr(0, n)));
  }
  struct Case {
    const char* what;
    std::string bytes;
  };
  auto c = GENERATE_COPY(values<Case>({
      {"reserved label type 0x40",
       Message{.question = std::string("\x41", 1) + std::string(65, 'a') + '\0' + Reply::u32(0)}
           .bytes()},
      {"reserved label type 0x80",
       Message{.question = std::string("\x81x\0", 3) + Reply::u32(0)}.bytes()},
      {"rdlength past the end",
       Message{.answers = {Message::rr(kPtr, kTypeA, 60, kA).substr(0, 10) + Reply::u16(400) + kA}}
           .bytes()},
      {"SOA rdata too short for MINIMUM",
       Message{.authority = {Message::rr(kPtr, kTypeSoa, 60, Message::soaData(60).substr(0, 25))}}
           .bytes()},
      {"SOA names run past rdata",
       Message{.authority = {Message::rr(kPtr, kTypeSoa, 60, std::string("\x3f", 1) + "abc")}}
           .bytes()},
      {"name of 200 one-octet labels without end",
       [] {
         std::string q;
         for (int i = 0; i < 200; ++i) q += std::string("\x01x", 2);
         return Message{.question = q + '\0' + Reply::u32(0)}.bytes();
       }()},
      {"counts larger than the records", [] {
         std::string m = Message{.answers = {Message::rr(kPtr, kTypeA, 60, kA)}}.bytes();
         m[6] = '\xff';
         return m;
       }()},
  }));
  CAPTURE(c.what);
  CHECK_FALSE(ttlsOf(c.bytes));
  CHECK_FALSE(messageTtls(nullptr, 0));
}

TEST_CASE("messageTtls survives random and mutated bytes") {
  std::mt19937 rng(20261128);
  std::string base = Message{.answers = {Message::rr(kPtr, kTypeMx, 60, kMx)},
                             .authority = {Message::rr(kPtr, kTypeSoa, 60, Message::soaData(9))}}
                         .bytes();
  for (int i = 0; i < 20000; ++i) {
    std::string m = base;
    int flips = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < flips; ++k) m[rng() % m.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) m.resize(rng() % (m.size() + 1));
    auto t = ttlsOf(m);  // any answer is fine; not crashing (and ASan) is the test
    if (t && t->negative) CHECK(*t->negative <= 0x7fffffffu);
  }
}

TEST_CASE("cacheTtl: positive, negative and failed answers") {
  CacheSettings s;
  s.maxTtl = 3600s;
  s.negativeMaxTtl = 900s;
  s.negativeTtl = 60s;
  s.tempFailTtl = 5s;
  struct Case {
    Status status;
    std::optional<MessageTtls> ttls;
    std::chrono::seconds want;
  };
  auto c = GENERATE(values<Case>({
      {Status::Ok, MessageTtls{300u, std::nullopt}, 300s},
      {Status::Ok, MessageTtls{86400u, std::nullopt}, 3600s},  // capped
      {Status::Ok, MessageTtls{0u, std::nullopt}, 0s},
      {Status::Ok, MessageTtls{}, 0s},  // no answer TTL known
      {Status::Ok, std::nullopt, 0s},   // unparsable
      {Status::NxDomain, MessageTtls{std::nullopt, 120u}, 120s},
      {Status::NxDomain, MessageTtls{std::nullopt, 86400u}, 900s},  // capped
      {Status::NoData, MessageTtls{std::nullopt, 0u}, 0s},
      {Status::NoData, MessageTtls{}, 60s},  // no SOA: the short default
      {Status::NxDomain, std::nullopt, 0s},
      {Status::TempFail, std::nullopt, 5s},
      {Status::TempFail, MessageTtls{3600u, std::nullopt}, 5s},
      {Status::BadAnswer, MessageTtls{}, 5s},
  }));
  CAPTURE(statusName(c.status));
  CHECK(cacheTtl(c.status, c.ttls, s) == c.want);
  s.negativeTtl = 2000s;  // a default above the cap is capped too
  CHECK(cacheTtl(Status::NoData, MessageTtls{}, s) == 900s);
}

TEST_CASE("TtlCache: expiry, least recently used eviction, replacement") {
  using Clock = std::chrono::steady_clock;
  Clock::time_point t0{};
  TtlCache<int> cache(3);
  cache.put("a", 1, t0 + 10s);
  cache.put("b", 2, t0 + 20s);
  cache.put("c", 3, t0 + 30s);
  REQUIRE(cache.find("a", t0));
  CHECK(*cache.find("a", t0) == 1);
  cache.put("d", 4, t0 + 40s);  // full: "b" is the least recently used
  CHECK(cache.size() == 3);
  CHECK(cache.evictions() == 1);
  CHECK_FALSE(cache.find("b", t0));
  CHECK(cache.find("c", t0));
  CHECK(cache.find("d", t0));
  // Expired at exactly its time, and dropped when met.
  CHECK(cache.find("a", t0 + 9s));
  CHECK_FALSE(cache.find("a", t0 + 10s));
  CHECK(cache.size() == 2);
  // Replacing keeps one entry with the new value and time.
  cache.put("c", 33, t0 + 100s);
  CHECK(cache.size() == 2);
  REQUIRE(cache.find("c", t0 + 50s));
  CHECK(*cache.find("c", t0 + 50s) == 33);
  // Size 0 keeps nothing.
  TtlCache<int> none(0);
  none.put("x", 1, t0 + 10s);
  CHECK(none.size() == 0);
  CHECK_FALSE(none.find("x", t0));
}

namespace {

// A responder that answers from a per-name table, a resolver with the
// cache on and a clock the test moves.
struct CacheFixture {
  using Clock = std::chrono::steady_clock;
  explicit CacheFixture(FakeServer::Handler handler, CacheSettings cache = defaults())
      : base(ev::newEventBase().value()), server(base.get(), std::move(handler)) {
    ResolverSettings s;
    s.servers = {server.server()};
    s.timeout = 200ms;
    s.tries = 1;
    s.cache = std::move(cache);
    s.cache.clock = [this] { return now; };
    auto r = Resolver::create(base.get(), s);
    if (!r) FAIL(r.error().message);
    resolver = std::move(*r);
  }
  static CacheSettings defaults() {
    CacheSettings c;
    c.maxEntries = 100;
    return c;
  }

  template <class Pred>
  bool runUntil(Pred pred) {
    ev::testing::Watchdog dog(base.get(), 10s);
    while (!pred() && !dog.fired()) event_base_loop(base.get(), EVLOOP_ONCE);
    return pred();
  }
  MxAnswer mx(const std::string& domain) {
    std::optional<MxAnswer> got;
    resolver->mx(domain, [&](MxAnswer a) { got = std::move(a); });
    REQUIRE_FALSE(got);  // never inside the call, not even from the cache
    REQUIRE(runUntil([&] { return got.has_value(); }));
    return *got;
  }
  AddressAnswer addresses(const std::string& host) {
    std::optional<AddressAnswer> got;
    resolver->addresses(host, [&](AddressAnswer a) { got = std::move(a); });
    REQUIRE_FALSE(got);
    REQUIRE(runUntil([&] { return got.has_value(); }));
    return *got;
  }
  int queries() const { return server.udpQueries() + server.tcpQueries(); }

  Clock::time_point now = Clock::time_point{} + 1000s;
  ev::EventBase base;
  FakeServer server;
  std::unique_ptr<Resolver> resolver;
};

}  // namespace

TEST_CASE("cache: a positive answer is reused until its TTL, then asked again") {
  int serial = 0;
  CacheFixture f([&](const Question& q) -> std::optional<std::string> {
    ++serial;
    return Reply(q).ttl(120).mx(10, "mx" + std::to_string(serial) + ".example").bytes();
  });
  CHECK(f.mx("example.test").records.at(0).host == "mx1.example");
  CHECK(f.queries() == 1);
  f.now += 119s;
  CHECK(f.mx("Example.TEST.").records.at(0).host == "mx1.example");  // same name, same entry
  CHECK(f.queries() == 1);
  f.now += 1s;
  CHECK(f.mx("example.test").records.at(0).host == "mx2.example");
  CHECK(f.queries() == 2);
  auto st = f.resolver->stats();
  CHECK(st.lookups == 3);
  CHECK(st.cacheHits == 1);
  CHECK(st.queries == 2);
  CHECK(st.cached == 1);
}

TEST_CASE("cache: TTLs are capped by maxTtl") {
  auto c = CacheFixture::defaults();
  c.maxTtl = 60s;
  CacheFixture f(
      [](const Question& q) -> std::optional<std::string> {
        return Reply(q).ttl(86400).mx(10, "mx.example").bytes();
      },
      c);
  f.mx("example.test");
  f.now += 59s;
  f.mx("example.test");
  CHECK(f.queries() == 1);
  f.now += 1s;
  f.mx("example.test");
  CHECK(f.queries() == 2);
}

TEST_CASE("cache: negative answers are kept for the SOA minimum or the default") {
  CacheFixture f([](const Question& q) -> std::optional<std::string> {
    if (q.name == "gone.test") return Reply(q, kNxDomain).soa(3600, 30, "test").bytes();
    if (q.name == "nosoa.test") return Reply(q, kNxDomain).bytes();
    return Reply(q).soa(600, 45, "test").bytes();  // NODATA
  });
  CHECK(f.mx("gone.test").status == Status::NxDomain);
  CHECK(f.mx("nosoa.test").status == Status::NxDomain);
  CHECK(f.mx("empty.test").status == Status::NoData);
  CHECK(f.queries() == 3);
  f.now += 29s;
  CHECK(f.mx("gone.test").status == Status::NxDomain);
  CHECK(f.mx("nosoa.test").status == Status::NxDomain);
  CHECK(f.mx("empty.test").status == Status::NoData);
  CHECK(f.queries() == 3);
  f.now += 1s;  // 30 s: the SOA minimum of gone.test
  f.mx("gone.test");
  CHECK(f.queries() == 4);
  f.now += 15s;  // 45 s: empty.test's
  f.mx("empty.test");
  f.mx("nosoa.test");
  CHECK(f.queries() == 5);
  f.now += 15s;  // 60 s: the default for an answer without SOA
  f.mx("nosoa.test");
  CHECK(f.queries() == 6);
}

TEST_CASE("cache: SERVFAIL and timeouts are kept for tempFailTtl only") {
  auto c = CacheFixture::defaults();
  c.tempFailTtl = GENERATE(0s, 5s);
  bool answer = false;
  CacheFixture f(
      [&](const Question& q) -> std::optional<std::string> {
        if (q.name == "silent.test") return std::nullopt;
        if (!answer) return Reply(q, kServFail).bytes();
        return Reply(q).mx(10, "mx.example").bytes();
      },
      c);
  CHECK(f.mx("broken.test").status == Status::TempFail);
  CHECK(f.mx("silent.test").status == Status::TempFail);
  CHECK(f.queries() == 2);
  answer = true;
  f.now += 4s;
  CHECK(f.mx("broken.test").status == (c.tempFailTtl > 0s ? Status::TempFail : Status::Ok));
  f.mx("silent.test");
  CHECK(f.queries() == (c.tempFailTtl > 0s ? 2 : 4));
  f.now += 1s;
  CHECK(f.mx("broken.test").status == Status::Ok);
}

TEST_CASE("cache: identical lookups in flight share one query") {
  int asked = 0;
  CacheFixture f([&](const Question& q) -> std::optional<std::string> {
    ++asked;
    if (q.type == kTypeMx) return Reply(q).mx(5, "mx.shared.example").bytes();
    if (q.type == kTypeA) return Reply(q).a("127.0.0.9").bytes();
    return Reply(q).bytes();
  });
  std::vector<std::string> mxs, addrs;
  for (int i = 0; i < 5; ++i) {
    f.resolver->mx(i % 2 ? "SHARED.test" : "shared.test",
                   [&](MxAnswer a) { mxs.push_back(a.records.at(0).host); });
    f.resolver->addresses("mx.shared.example",
                          [&](AddressAnswer a) { addrs.push_back(a.addresses.at(0)); });
  }
  CHECK(f.resolver->pending() == 10);
  REQUIRE(f.runUntil([&] { return f.resolver->pending() == 0; }));
  CHECK(mxs == std::vector<std::string>(5, "mx.shared.example"));
  CHECK(addrs == std::vector<std::string>(5, "127.0.0.9"));
  CHECK(asked == 3);  // MX, AAAA, A
  auto st = f.resolver->stats();
  CHECK(st.merged == 8);
  CHECK(st.queries == 3);
}

TEST_CASE("cache: an address answer lives as long as its shorter-lived family") {
  CacheFixture f([](const Question& q) -> std::optional<std::string> {
    if (q.type == kTypeA) return Reply(q).ttl(600).a("127.0.0.5").bytes();
    return Reply(q).soa(900, 20, "test").bytes();  // no AAAA: NODATA for 20 s
  });
  CHECK(f.addresses("host.test").addresses == std::vector<std::string>{"127.0.0.5"});
  CHECK(f.queries() == 2);
  f.now += 19s;
  f.addresses("host.test");
  CHECK(f.queries() == 2);
  f.now += 1s;
  f.addresses("host.test");
  CHECK(f.queries() == 4);
}

TEST_CASE("cache: full, the least recently used answer goes") {
  auto c = CacheFixture::defaults();
  c.maxEntries = 2;
  CacheFixture f(
      [](const Question& q) -> std::optional<std::string> {
        return Reply(q).mx(10, "mx." + q.name).bytes();
      },
      c);
  f.mx("a.test");
  f.mx("b.test");
  f.mx("a.test");  // hit: b.test is now the least recently used
  f.mx("c.test");
  CHECK(f.queries() == 3);
  f.mx("a.test");
  CHECK(f.queries() == 3);
  f.mx("b.test");
  CHECK(f.queries() == 4);
  CHECK(f.resolver->stats().cached == 2);
  CHECK(f.resolver->stats().evictions == 2);
}

TEST_CASE("cache: destroying the Resolver drops callers waiting on a shared lookup") {
  CacheFixture f([](const Question&) -> std::optional<std::string> { return std::nullopt; });
  int called = 0;
  for (int i = 0; i < 3; ++i) f.resolver->mx("slow.test", [&](MxAnswer) { ++called; });
  REQUIRE(f.runUntil([&] { return f.server.udpQueries() == 1; }));
  CHECK(f.resolver->pending() == 3);
  f.resolver.reset();
  event_base_loop(f.base.get(), EVLOOP_NONBLOCK);
  CHECK(called == 0);
}

TEST_CASE("cache: a callback may look the same name up again") {
  CacheFixture f([](const Question& q) -> std::optional<std::string> {
    return Reply(q).mx(10, "mx.example").bytes();
  });
  std::vector<std::string> got;
  f.resolver->mx("again.test", [&](MxAnswer a) {
    got.push_back(a.records.at(0).host);
    f.resolver->mx("again.test", [&](MxAnswer b) { got.push_back(b.records.at(0).host); });
  });
  REQUIRE(f.runUntil([&] { return got.size() == 2; }));
  CHECK(f.queries() == 1);
}

TEST_CASE("create refuses negative cache times") {
  auto base = ev::newEventBase().value();
  ResolverSettings s;
  s.servers = {"127.0.0.1:53"};
  s.cache.maxEntries = 10;
  s.cache.tempFailTtl = -1s;
  CHECK_FALSE(Resolver::create(base.get(), s).ok());
}
