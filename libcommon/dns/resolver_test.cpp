// Unit tests for dns: the Resolver against a canned loopback responder
// (MX parsing and order, NoData, NxDomain, SERVFAIL/REFUSED, timeouts,
// malformed and hostile answers, AAAA + A merge, TCP fallback, CNAME chains,
// cancellation on destruction, many lookups in flight), name checks, server
// strings, and the pure route() choice (RFC 5321 §5.1, RFC 7505).
#include "dns/resolver.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <set>

#include "dns/dns_testing.hpp"
#include "event/event_testing.hpp"

namespace ev = yubin::event;
using yubin::UniqueFd;
using namespace yubin::dns;
using namespace yubin::dns::testing;
using namespace std::chrono_literals;

namespace {

// An event loop, a responder and a resolver pointed at it only.
struct Fixture {
  explicit Fixture(FakeServer::Handler handler, ResolverSettings settings = {},
                   const std::string& address = "127.0.0.1")
      : base(ev::newEventBase().value()), server(base.get(), std::move(handler), address) {
    if (settings.servers.empty()) settings.servers = {server.server()};
    if (settings.timeout == 5000ms) settings.timeout = 2000ms;
    auto r = Resolver::create(base.get(), settings);
    if (!r) FAIL(r.error().message);
    resolver = std::move(*r);
  }

  // Runs the loop until pred() holds; false if the watchdog fired first.
  template <class Pred>
  bool runUntil(Pred pred, std::chrono::seconds limit = 10s) {
    ev::testing::Watchdog dog(base.get(), limit);
    while (!pred() && !dog.fired()) event_base_loop(base.get(), EVLOOP_ONCE);
    return pred();
  }

  MxAnswer mx(const std::string& domain) {
    std::optional<MxAnswer> got;
    resolver->mx(domain, [&](MxAnswer a) { got = std::move(a); });
    REQUIRE_FALSE(got);  // never inside the call
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

  ev::EventBase base;
  FakeServer server;
  std::unique_ptr<Resolver> resolver;
};

std::vector<std::string> hostsOf(const std::vector<MxRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(std::to_string(r.preference) + " " + r.host);
  return out;
}

}  // namespace

TEST_CASE("statusName names every status") {
  CHECK(statusName(Status::Ok) == "ok");
  CHECK(statusName(Status::NoData) == "nodata");
  CHECK(statusName(Status::NxDomain) == "nxdomain");
  CHECK(statusName(Status::TempFail) == "tempfail");
  CHECK(statusName(Status::BadAnswer) == "badanswer");
}

TEST_CASE("normalizeName accepts LDH names and refuses the rest") {
  struct Case {
    std::string in;
    std::string out;  // "" = refused
  };
  auto c = GENERATE(values<Case>({
      {"example.com", "example.com"},
      {"Example.COM.", "example.com"},
      {"mx-1.example.org", "mx-1.example.org"},
      {"_dmarc.example", "_dmarc.example"},
      {"localhost", "localhost"},
      {"xn--bcher-kva.example", "xn--bcher-kva.example"},
      {std::string(63, 'a') + ".example", std::string(63, 'a') + ".example"},
      {"", ""},
      {".", ""},
      {"..", ""},
      {"a..b", ""},
      {".a", ""},
      {"a.b..", ""},
      {"bücher.example", ""},
      {"exa mple.com", ""},
      {"exa\\.mple.com", ""},
      {"a\x01.com", ""},
      {std::string("a\0b.com", 7), ""},
      {std::string(64, 'a') + ".example", ""},
      {std::string(250, 'a').insert(60, ".").insert(120, ".").insert(180, ".") + ".example", ""},
  }));
  auto r = normalizeName(c.in);
  CAPTURE(c.in);
  if (c.out.empty()) {
    CHECK_FALSE(r.ok());
    if (!r) CHECK_FALSE(r.error().message.empty());
  } else {
    REQUIRE(r.ok());
    CHECK(*r == c.out);
  }
}

TEST_CASE("create refuses bad server strings and accepts good ones") {
  auto base = ev::newEventBase().value();
  for (std::string good :
       {"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353", "[::1]", "[2001:db8::53]:53"}) {
    ResolverSettings s;
    s.servers = {good};
    auto r = Resolver::create(base.get(), s);
    CAPTURE(good);
    CHECK(r.ok());
  }
  for (std::string bad :
       {"", "dns.example", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:53x", "[::1",
        "[::1]53", "[::1]:", "[127.0.0.1.5]:53", "1.2.3.4:5:6x", "::1]:53"}) {
    ResolverSettings s;
    s.servers = {bad};
    auto r = Resolver::create(base.get(), s);
    CAPTURE(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("resolver server") != std::string::npos);
  }
  // No servers: the system's resolv.conf (read, never queried here).
  CHECK(Resolver::create(base.get(), ResolverSettings{}).ok());
  ResolverSettings s;
  s.servers = {"127.0.0.1"};
  s.tries = 0;
  CHECK_FALSE(Resolver::create(base.get(), s).ok());
  s.tries = 2;
  s.timeout = 0ms;
  CHECK_FALSE(Resolver::create(base.get(), s).ok());
  s.timeout = 100ms;
  s.maxQueries = 1;
  CHECK_FALSE(Resolver::create(base.get(), s).ok());
}

TEST_CASE("MX records are parsed, lowercased and sorted by preference") {
  Fixture f([](const Question& q) -> std::optional<std::string> {
    if (q.type != kTypeMx) return Reply(q, kRefused).bytes();
    return Reply(q)
        .mx(20, "backup.example.net")
        .mx(10, "MX1.Example.NET")
        .mx(10, "mx2.example.net.")
        .mx(30, "mx1.example.net")
        .bytes();
  });
  MxAnswer a = f.mx("Example.NET");
  REQUIRE(a.status == Status::Ok);
  CHECK(a.error.empty());
  CHECK(hostsOf(a.records) == std::vector<std::string>{"10 mx1.example.net", "10 mx2.example.net",
                                                       "20 backup.example.net",
                                                       "30 mx1.example.net"});
  REQUIRE(f.server.questions().size() == 1);
  CHECK(f.server.questions()[0].name == "example.net");  // lowercased before sending
  CHECK(f.server.questions()[0].type == kTypeMx);
  CHECK(f.resolver->pending() == 0);
}

TEST_CASE("the null MX comes back as an empty host") {
  Fixture f(
      [](const Question& q) -> std::optional<std::string> { return Reply(q).mx(0, ".").bytes(); });
  MxAnswer a = f.mx("nomail.example");
  REQUIRE(a.status == Status::Ok);
  CHECK(a.records == std::vector<MxRecord>{{0, ""}});
}

TEST_CASE("MX records with hostile exchange names are dropped") {
  Fixture f([](const Question& q) -> std::optional<std::string> {
    if (q.name == "mixed.example") {
      return Reply(q)
          .mx(10, "bad host.example")
          .mx(20, "good.example")
          .mx(5, "x\\y.example")
          .bytes();
    }
    return Reply(q).mx(10, std::string("evil\0.example", 13)).mx(20, "semi;colon.example").bytes();
  });
  MxAnswer mixed = f.mx("mixed.example");
  REQUIRE(mixed.status == Status::Ok);
  CHECK(hostsOf(mixed.records) == std::vector<std::string>{"20 good.example"});
  CHECK(mixed.error.find("2 record(s)") != std::string::npos);
  MxAnswer all = f.mx("allbad.example");
  CHECK(all.status == Status::BadAnswer);
  CHECK(all.records.empty());
  CHECK_FALSE(all.error.empty());
}

TEST_CASE("DNS outcomes map onto Status") {
  struct Case {
    std::string name;
    Status want;
  };
  Fixture f([](const Question& q) -> std::optional<std::string> {
    if (q.name == "nodata.example") return Reply(q).bytes();
    if (q.name == "cname-only.example") return Reply(q).cname("target.example").bytes();
    if (q.name == "servfail.example") return Reply(q, kServFail).bytes();
    if (q.name == "refused.example") return Reply(q, kRefused).bytes();
    if (q.name == "notimp.example") return Reply(q, kNotImp).bytes();
    if (q.name == "formerr.example") return Reply(q, kFormErr).bytes();
    if (q.name == "wrongtype.example") return Reply(q).a("192.0.2.1").bytes();
    if (q.name == "truncated-rr.example") {
      std::string b = Reply(q).mx(10, "mx.example").bytes();
      return b.substr(0, b.size() - 5);  // the answer's RDATA cut short
    }
    if (q.name == "overlong-count.example") {
      std::string b = Reply(q).mx(10, "mx.example").bytes();
      b[7] = 3;  // ANCOUNT 3, one record present
      return b;
    }
    return Reply(q, kNxDomain).bytes();
  });
  auto c = GENERATE(values<Case>({
      {"nodata.example", Status::NoData},
      {"cname-only.example", Status::NoData},
      {"nxdomain.example", Status::NxDomain},
      {"servfail.example", Status::TempFail},
      {"refused.example", Status::TempFail},
      {"notimp.example", Status::TempFail},
      {"formerr.example", Status::BadAnswer},
      {"wrongtype.example", Status::NoData},
      {"truncated-rr.example", Status::BadAnswer},
      {"overlong-count.example", Status::BadAnswer},
  }));
  CAPTURE(c.name);
  auto start = std::chrono::steady_clock::now();
  MxAnswer a = f.mx(c.name);
  CHECK(statusName(a.status) == statusName(c.want));
  CHECK(a.records.empty());
  CHECK(a.error.find(c.name) != std::string::npos);
  // An answer, even a failure, is used at once: no waiting for a timeout.
  CHECK(std::chrono::steady_clock::now() - start < 1500ms);
}

TEST_CASE("a silent server gives TempFail after the configured tries") {
  ResolverSettings s;
  s.timeout = 100ms;
  s.tries = 2;
  Fixture f([](const Question&) -> std::optional<std::string> { return std::nullopt; }, s);
  auto start = std::chrono::steady_clock::now();
  MxAnswer a = f.mx("silent.example");
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(a.status == Status::TempFail);
  CHECK(a.error.find("imeout") != std::string::npos);
  CHECK(f.server.udpQueries() == 2);
  // 100 ms, then 200 ms for the second round (c-ares doubles per round).
  CHECK(took >= 250ms);
  CHECK(took < 2000ms);
}

TEST_CASE("garbage and unrelated packets are ignored, then the lookup times out") {
  ResolverSettings s;
  s.timeout = 100ms;
  s.tries = 1;
  Fixture f(
      [](const Question& q) -> std::optional<std::string> {
        if (q.name == "short.example") return std::string("\x12\x34\x81", 3);
        // Right ID, another question: c-ares must not take it (spoofing).
        Question other = q;
        other.wire = Reply::encodeName("other.example") + Reply::u16(kTypeMx) + Reply::u16(1);
        return Reply(other).mx(10, "attacker.example").bytes();
      },
      s);
  CHECK(f.mx("short.example").status == Status::TempFail);
  CHECK(f.mx("spoof.example").status == Status::TempFail);
}

TEST_CASE("random answers never crash the resolver") {
  std::mt19937 rng(12345);
  Fixture f([&](const Question& q) -> std::optional<std::string> {
    std::string b = Reply(q).mx(10, "mx.example").a("192.0.2.1").aaaa("2001:db8::1").bytes();
    // Keep the header's ID and the question (so c-ares takes the packet),
    // then mangle what follows: flips, cuts and appended noise.
    size_t keep = 12 + q.wire.size();
    std::uniform_int_distribution<int> op(0, 2), byte(0, 255);
    for (int i = 0; i < 4; ++i) {
      switch (op(rng)) {
        case 0:
          b[std::uniform_int_distribution<size_t>(keep, b.size() - 1)(rng)] =
              static_cast<char>(byte(rng));
          break;
        case 1:
          b.resize(std::uniform_int_distribution<size_t>(keep, b.size())(rng));
          if (b.size() == keep) b += '\0';
          break;
        default:
          b += static_cast<char>(byte(rng));
      }
    }
    b[7] = static_cast<char>(byte(rng) % 4);  // ANCOUNT 0..3
    return b;
  });
  std::map<std::string, int> seen;
  for (int i = 0; i < 150; ++i) {
    MxAnswer m = f.mx("fuzz" + std::to_string(i) + ".example");
    for (const auto& r : m.records) {
      if (!r.host.empty()) CHECK(normalizeName(r.host).ok());
    }
    ++seen[std::string(statusName(m.status))];
    AddressAnswer a = f.addresses("host" + std::to_string(i) + ".example");
    ++seen[std::string(statusName(a.status))];
  }
  CHECK(seen["badanswer"] + seen["ok"] + seen["nodata"] > 0);
  CHECK(f.resolver->pending() == 0);
}

TEST_CASE("addresses merges AAAA and A, IPv6 first, without duplicates") {
  Fixture f([](const Question& q) -> std::optional<std::string> {
    if (q.name == "dual.example") {
      if (q.type == kTypeAaaa)
        return Reply(q).aaaa("2001:db8::1").aaaa("::1").aaaa("2001:db8::1").bytes();
      return Reply(q).a("127.0.0.2").a("192.0.2.7").a("127.0.0.2").bytes();
    }
    if (q.name == "v4only.example") {
      if (q.type == kTypeAaaa) return Reply(q).bytes();
      return Reply(q).a("127.0.0.3").bytes();
    }
    if (q.name == "v6only.example") {
      if (q.type == kTypeAaaa) return Reply(q).aaaa("2001:db8::5").bytes();
      return Reply(q).bytes();
    }
    if (q.name == "alias.example") {
      return q.type == kTypeA
                 ? Reply(q).cname("real.example").a("127.0.0.9", "real.example").bytes()
                 : Reply(q).cname("real.example").bytes();
    }
    if (q.name == "v6broken.example") {
      if (q.type == kTypeAaaa) return Reply(q, kServFail).bytes();
      return Reply(q).a("127.0.0.4").bytes();
    }
    if (q.name == "bothfail.example") return Reply(q, kServFail).bytes();
    if (q.name == "nodata.example") return Reply(q).bytes();
    if (q.name == "half.example") {
      if (q.type == kTypeAaaa) return Reply(q, kNxDomain).bytes();
      return Reply(q).bytes();
    }
    if (q.name == "bad.example") {
      if (q.type == kTypeAaaa) return Reply(q, kNxDomain).bytes();
      std::string b = Reply(q).a("127.0.0.1").bytes();
      return b.substr(0, b.size() - 2);
    }
    return Reply(q, kNxDomain).bytes();
  });

  AddressAnswer dual = f.addresses("dual.example");
  REQUIRE(dual.status == Status::Ok);
  CHECK(dual.addresses == std::vector<std::string>{"2001:db8::1", "::1", "127.0.0.2", "192.0.2.7"});
  CHECK(dual.error.empty());

  CHECK(f.addresses("v4only.example").addresses == std::vector<std::string>{"127.0.0.3"});
  CHECK(f.addresses("v6only.example").addresses == std::vector<std::string>{"2001:db8::5"});
  CHECK(f.addresses("alias.example").addresses == std::vector<std::string>{"127.0.0.9"});

  AddressAnswer partial = f.addresses("v6broken.example");
  CHECK(partial.status == Status::Ok);
  CHECK(partial.addresses == std::vector<std::string>{"127.0.0.4"});
  CHECK(partial.error.find("AAAA") != std::string::npos);

  struct Case {
    std::string name;
    Status want;
  };
  for (const Case& c :
       {Case{"bothfail.example", Status::TempFail}, Case{"nodata.example", Status::NoData},
        Case{"half.example", Status::NoData}, Case{"bad.example", Status::BadAnswer},
        Case{"missing.example", Status::NxDomain}}) {
    AddressAnswer a = f.addresses(c.name);
    CAPTURE(c.name);
    CHECK(statusName(a.status) == statusName(c.want));
    CHECK(a.addresses.empty());
    CHECK(a.error.find(c.name) != std::string::npos);
  }
}

TEST_CASE("numeric hosts and bad names are answered without a query, later") {
  Fixture f(
      [](const Question& q) -> std::optional<std::string> { return Reply(q, kNxDomain).bytes(); });
  AddressAnswer v4 = f.addresses("127.0.0.5");
  CHECK(v4.status == Status::Ok);
  CHECK(v4.addresses == std::vector<std::string>{"127.0.0.5"});
  AddressAnswer v6 = f.addresses("0:0::1");
  CHECK(v6.addresses == std::vector<std::string>{"::1"});
  for (std::string bad : {"", "bücher.example", "a..b", "with space.example"}) {
    CAPTURE(bad);
    CHECK(f.mx(bad).status == Status::BadAnswer);
    AddressAnswer a = f.addresses(bad);
    CHECK(a.status == Status::BadAnswer);
    CHECK_FALSE(a.error.empty());
  }
  CHECK(f.server.udpQueries() == 0);
  CHECK(f.resolver->pending() == 0);
}

TEST_CASE("a truncated UDP answer is retried over TCP") {
  Fixture f([](const Question& q) -> std::optional<std::string> {
    if (!q.tcp) return Reply(q).truncated().bytes();
    Reply r(q);
    for (int i = 0; i < 40; ++i)
      r.mx(static_cast<uint16_t>(i), "mx" + std::to_string(i) + ".big.example");
    return r.bytes();
  });
  MxAnswer a = f.mx("big.example");
  REQUIRE(a.status == Status::Ok);
  REQUIRE(a.records.size() == 40);
  CHECK(a.records[0] == MxRecord{0, "mx0.big.example"});
  CHECK(a.records[39] == MxRecord{39, "mx39.big.example"});
  CHECK(f.server.udpQueries() == 1);
  CHECK(f.server.tcpQueries() == 1);
}

TEST_CASE("a server on ::1 answers") {
  {
    // Some containers have no IPv6 loopback: nothing to test there.
    UniqueFd probe(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    if (!probe || ::bind(probe.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      WARN("no IPv6 loopback; skipped");
      return;
    }
  }
  Fixture f(
      [](const Question& q) -> std::optional<std::string> {
        return Reply(q).mx(5, "v6.example").bytes();
      },
      {}, "::1");
  CHECK(f.server.server().front() == '[');
  MxAnswer a = f.mx("example.org");
  CHECK(a.records == std::vector<MxRecord>{{5, "v6.example"}});
}

TEST_CASE("the second server is asked when the first says nothing") {
  auto base = ev::newEventBase().value();
  FakeServer silent(base.get(),
                    [](const Question&) -> std::optional<std::string> { return std::nullopt; });
  FakeServer good(base.get(), [](const Question& q) -> std::optional<std::string> {
    return Reply(q).mx(1, "mx.example").bytes();
  });
  ResolverSettings s;
  s.servers = {silent.server(), good.server()};
  s.timeout = 100ms;
  auto r = Resolver::create(base.get(), s);
  REQUIRE(r.ok());
  std::optional<MxAnswer> got;
  (*r)->mx("example.com", [&](MxAnswer a) { got = std::move(a); });
  ev::testing::Watchdog dog(base.get());
  while (!got && !dog.fired()) event_base_loop(base.get(), EVLOOP_ONCE);
  REQUIRE(got);
  CHECK(got->status == Status::Ok);
  CHECK(silent.udpQueries() == 1);
  CHECK(good.udpQueries() == 1);
}

TEST_CASE("destroying the Resolver cancels pending lookups without callbacks") {
  Fixture f([](const Question&) -> std::optional<std::string> { return std::nullopt; });
  int called = 0;
  for (int i = 0; i < 20; ++i) {
    f.resolver->mx("pending" + std::to_string(i) + ".example", [&](MxAnswer) { ++called; });
    f.resolver->addresses("host" + std::to_string(i) + ".example",
                          [&](AddressAnswer) { ++called; });
  }
  REQUIRE(f.runUntil([&] { return f.server.udpQueries() == 60; }));
  // One already answered (a bad name) but not yet delivered is dropped too.
  f.resolver->mx("bad name", [&](MxAnswer) { ++called; });
  CHECK(f.resolver->pending() == 41);
  f.resolver.reset();
  event_base_loop(f.base.get(), EVLOOP_NONBLOCK);
  CHECK(called == 0);
}

TEST_CASE("a callback may destroy the Resolver or start another lookup") {
  Fixture f([](const Question& q) -> std::optional<std::string> {
    return Reply(q).mx(10, "mx." + q.name).bytes();
  });
  std::vector<std::string> got;
  f.resolver->mx("first.example", [&](MxAnswer a) {
    got.push_back(a.records.at(0).host);
    f.resolver->mx("second.example", [&](MxAnswer b) {
      got.push_back(b.records.at(0).host);
      f.resolver.reset();  // from inside its own callback
    });
  });
  REQUIRE(f.runUntil([&] { return f.resolver == nullptr; }));
  event_base_loop(f.base.get(), EVLOOP_NONBLOCK);
  CHECK(got == std::vector<std::string>{"mx.first.example", "mx.second.example"});

  // Two answers delivered in one turn: the first destroys the Resolver, the
  // second is never called.
  auto r = Resolver::create(f.base.get(), ResolverSettings{{f.server.server()}});
  REQUIRE(r.ok());
  f.resolver = std::move(*r);
  int calls = 0;
  f.resolver->mx("bad name", [&](MxAnswer) {
    ++calls;
    f.resolver.reset();
  });
  f.resolver->mx("bad name 2", [&](MxAnswer) { ++calls; });
  REQUIRE(f.runUntil([&] { return f.resolver == nullptr; }));
  event_base_loop(f.base.get(), EVLOOP_NONBLOCK);
  CHECK(calls == 1);
}

TEST_CASE("many lookups in flight each get their own answer") {
  Fixture f([](const Question& q) -> std::optional<std::string> {
    if (q.type == kTypeMx) return Reply(q).mx(7, "mx." + q.name).bytes();
    if (q.type == kTypeA) return Reply(q).a("127.0.0.8").bytes();
    return Reply(q).bytes();
  });
  constexpr int kN = 400;
  std::map<std::string, std::string> answers;
  int addrs = 0;
  for (int i = 0; i < kN; ++i) {
    std::string name = "d" + std::to_string(i) + ".example";
    f.resolver->mx(name, [&answers, name](MxAnswer a) {
      answers[name] = a.status == Status::Ok ? a.records.at(0).host : "failed";
    });
    f.resolver->addresses(name, [&addrs](AddressAnswer a) {
      if (a.addresses == std::vector<std::string>{"127.0.0.8"}) ++addrs;
    });
  }
  CHECK(f.resolver->pending() == 2 * kN);
  REQUIRE(f.runUntil([&] { return f.resolver->pending() == 0; }, 30s));
  REQUIRE(answers.size() == kN);
  for (const auto& [name, host] : answers) CHECK(host == "mx." + name);
  CHECK(addrs == kN);
}

TEST_CASE("at most maxQueries queries are on the wire; the rest wait their turn") {
  ResolverSettings s;
  s.timeout = 100ms;
  s.tries = 1;
  s.maxQueries = 10;
  Fixture f([](const Question&) -> std::optional<std::string> { return std::nullopt; }, s);
  int done = 0;
  for (int i = 0; i < 30; ++i) {
    f.resolver->mx("wave" + std::to_string(i) + ".example", [&](MxAnswer a) {
      CHECK(a.status == Status::TempFail);
      ++done;
    });
  }
  auto start = std::chrono::steady_clock::now();
  REQUIRE(f.runUntil([&] { return f.server.udpQueries() >= 10; }));
  CHECK(f.server.udpQueries() == 10);
  REQUIRE(f.runUntil([&] { return done == 30; }));
  // Three waves of ten, each ending with its 100 ms timeout.
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  CHECK(f.server.udpQueries() == 30);
}

TEST_CASE("route: the hosts to try from an MX answer") {
  std::mt19937 rng(1);
  struct Case {
    const char* what;
    MxAnswer answer;
    Route::Kind kind;
    std::vector<std::string> hosts;  // for fixed orders
  };
  auto c = GENERATE(values<Case>({
      {"ordered",
       {Status::Ok, {{20, "b.example"}, {10, "a.example"}, {30, "c.example"}}, ""},
       Route::Kind::Hosts,
       {"10 a.example", "20 b.example", "30 c.example"}},
      {"nodata is the implicit MX",
       {Status::NoData, {}, "no MX"},
       Route::Kind::Hosts,
       {"0 dest.example"}},
      {"ok without records is the implicit MX",
       {Status::Ok, {}, ""},
       Route::Kind::Hosts,
       {"0 dest.example"}},
      {"null MX", {Status::Ok, {{0, ""}}, ""}, Route::Kind::NullMx, {}},
      {"null MX at another preference", {Status::Ok, {{10, ""}}, ""}, Route::Kind::NullMx, {}},
      {"several null MX", {Status::Ok, {{0, ""}, {5, ""}}, ""}, Route::Kind::NullMx, {}},
      {"null MX among hosts is dropped",
       {Status::Ok, {{0, ""}, {10, "mx.example"}}, ""},
       Route::Kind::Hosts,
       {"10 mx.example"}},
      {"duplicate host kept at its best preference",
       {Status::Ok, {{30, "a.example"}, {10, "a.example"}, {20, "b.example"}}, ""},
       Route::Kind::Hosts,
       {"10 a.example", "20 b.example"}},
      {"IP literal kept as a name",
       {Status::Ok, {{10, "192.0.2.1"}}, ""},
       Route::Kind::Hosts,
       {"10 192.0.2.1"}},
      {"nxdomain", {Status::NxDomain, {}, "gone"}, Route::Kind::NoSuchDomain, {}},
      {"tempfail", {Status::TempFail, {}, "timeout"}, Route::Kind::TempFail, {}},
      {"badanswer is temporary", {Status::BadAnswer, {}, "garbage"}, Route::Kind::TempFail, {}},
  }));
  CAPTURE(c.what);
  Route r = route(c.answer, "Dest.Example.", rng);
  CHECK(static_cast<int>(r.kind) == static_cast<int>(c.kind));
  CHECK(hostsOf(r.hosts) == c.hosts);
  CHECK(r.error == c.answer.error);
}

TEST_CASE("route: an invalid domain for the implicit MX is a temporary failure") {
  std::mt19937 rng(1);
  Route r = route(MxAnswer{Status::NoData, {}, ""}, "bad domain", rng);
  CHECK(r.kind == Route::Kind::TempFail);
  CHECK(r.hosts.empty());
  CHECK_FALSE(r.error.empty());
}

TEST_CASE("route: equal preferences are shuffled, groups stay in order") {
  MxAnswer answer{
      Status::Ok, {{10, "a1"}, {10, "a2"}, {10, "a3"}, {20, "b1"}, {20, "b2"}, {5, "first"}}, ""};
  std::mt19937 rng(42);
  std::map<std::string, int> firstOfTen;
  std::set<std::vector<std::string>> orders;
  constexpr int kRuns = 3000;
  for (int i = 0; i < kRuns; ++i) {
    Route r = route(answer, "x.example", rng);
    REQUIRE(r.hosts.size() == 6);
    CHECK(r.hosts[0].host == "first");
    for (size_t k = 1; k < 4; ++k) CHECK(r.hosts[k].preference == 10);
    for (size_t k = 4; k < 6; ++k) CHECK(r.hosts[k].preference == 20);
    ++firstOfTen[r.hosts[1].host];
    std::vector<std::string> order;
    for (const auto& h : r.hosts) order.push_back(h.host);
    orders.insert(order);
  }
  // 3! * 2! = 12 orders, each host of the 10 group first about a third of the time.
  CHECK(orders.size() == 12);
  for (const char* h : {"a1", "a2", "a3"}) {
    CAPTURE(h);
    CHECK(firstOfTen[h] > kRuns / 3 - 200);
    CHECK(firstOfTen[h] < kRuns / 3 + 200);
  }
}
