// Asynchronous DNS for outbound mail: MX and address (AAAA + A) lookups with
// c-ares driven by the process's libevent loop, and the pure choice of the
// hosts to try for a domain from its MX answer.
// Trust: the answers come from the network (a resolver we are told to trust,
// but its bytes are untrusted): c-ares parses them, and every host name we
// hand on is checked to be a plain LDH name. Runs in mtad after the privilege
// drop. Single-threaded: one Resolver per event loop.
// Standards: RFC 1035 (DNS), RFC 3596 (AAAA), RFC 5321 §5.1 (MX and the
// implicit MX), RFC 7505 (null MX), RFC 5890 (names are A-labels here).
//
// Decisions:
// - Names are ASCII: the queue holds A-labels already. A name with a byte
//   >= 0x80, an empty label, a label over 63 octets, a name over 253 octets,
//   or a character other than letters, digits, '-' and '_' is refused with
//   BadAnswer before any query is sent. One trailing dot is allowed (the
//   name is always absolute: no search list is ever applied).
// - Queries go only to DNS (ares_query): never /etc/hosts, never a search
//   domain. With ResolverSettings::servers set, c-ares does not even read
//   /etc/resolv.conf, so tests never reach the machine's resolver.
// - CNAMEs: the recursive resolver follows them and c-ares' parsers walk the
//   chain inside the answer. A truncated UDP answer is retried over TCP by
//   c-ares.
// - Loopback or `localhost` targets are not refused here: deciding whether an
//   MX points back at ourselves (RFC 5321 §5.1 "the SMTP client itself") is
//   the caller's policy, and tests rely on 127.0.0.x.
// - An MX whose exchange is an IP literal (RFC 5321 §5.1 says it must be a
//   name) is kept as the name it is given; addresses() of a numeric address
//   returns that address without a query, so such an MX (and a relay host
//   spelled as an address) still works, as with most MTAs' resolvers.
// - MX records whose exchange is not a valid host name (c-ares shows odd
//   bytes as "\DDD" escapes) are dropped from the answer; if none is left,
//   the answer is BadAnswer.
// - Cache (ResolverSettings::cache, off unless maxEntries > 0): answers are
//   kept for their TTL within the bounds of cache.hpp, shared by every
//   caller, and a lookup that is already on the wire is not sent again:
//   the later callers wait for the same answer. Nothing else changes: a
//   cached answer is delivered from the loop like a fresh one.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "dns/cache.hpp"

namespace yubin::dns {

enum class Status : uint8_t {
  Ok,         // records in the answer
  NoData,     // the name exists, no record of this type
  NxDomain,   // the name does not exist
  TempFail,   // SERVFAIL, REFUSED, timeout, no server reachable: try later
  BadAnswer,  // malformed/truncated-beyond-repair answer, bad name: treat as temporary
};
// "ok", "nodata", "nxdomain", "tempfail", "badanswer": for logs and tests.
std::string_view statusName(Status);

// host is lowercase without a trailing dot; "" is the null MX's "." (RFC 7505).
struct MxRecord {
  uint16_t preference = 0;
  std::string host;
  bool operator==(const MxRecord&) const = default;
};
// records are sorted by preference (stable: equal preferences in answer
// order); error says what went wrong when status is not Ok, for the log and
// for the "last reply" of a deferred recipient.
struct MxAnswer {
  Status status = Status::TempFail;
  std::vector<MxRecord> records;
  std::string error;
};
// Numeric addresses ("2001:db8::1", "192.0.2.1"), IPv6 ones first then IPv4,
// each family in answer order, no duplicates. Status is Ok when either family
// gave addresses (error then notes a failed other family); otherwise the worse
// of the two outcomes: TempFail, then BadAnswer, then NoData, then NxDomain
// (NxDomain only when both say so).
struct AddressAnswer {
  Status status = Status::TempFail;
  std::vector<std::string> addresses;
  std::string error;
};

struct ResolverSettings {
  // "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353"; the same port is used
  // for UDP and TCP. Empty = the servers of /etc/resolv.conf.
  std::vector<std::string> servers;
  // Per try. c-ares tries each server in turn, `tries` rounds, and doubles the
  // timeout after every full round over the servers: with one server, a
  // lookup that gets no answer at all fails after timeout * (2^tries - 1)
  // (5 s + 10 s with the defaults).
  std::chrono::milliseconds timeout{5000};
  int tries = 2;
  // DNS queries on the wire at once (an address lookup is two); further
  // lookups wait in order. Keeps a burst of lookups from overflowing UDP
  // socket buffers and turning into timeouts.
  int maxQueries = 100;
  // Answer cache and merging of identical lookups; off by default.
  CacheSettings cache{};
};

// Counters since the Resolver was made, for logs, tests and benchmarks.
struct ResolverStats {
  uint64_t lookups = 0;    // mx() and addresses() calls
  uint64_t cacheHits = 0;  // answered from the cache
  uint64_t merged = 0;     // joined an identical lookup already in flight
  uint64_t queries = 0;    // DNS queries sent (an address lookup is two)
  uint64_t evictions = 0;  // live entries dropped for room
  size_t cached = 0;       // entries held now (expired ones included until met)
};

class Resolver {
 public:
  // Fails on a server string that is not an address[:port], or when c-ares
  // cannot be set up.
  static Result<std::unique_ptr<Resolver>> create(event_base* base, const ResolverSettings& s);
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;
  ~Resolver();  // cancels pending lookups; their callbacks are never called

  // Callbacks always run later from the event loop, never inside the call.
  // A callback may start new lookups or destroy the Resolver.
  void mx(std::string_view domain, std::function<void(MxAnswer)> done);
  void addresses(std::string_view host, std::function<void(AddressAnswer)> done);  // AAAA + A
  // Lookups started whose callback has not run yet.
  size_t pending() const;
  ResolverStats stats() const;

 private:
  struct Impl;
  explicit Resolver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Pure (RFC 5321 §5.1, RFC 7505): the hosts to try for a domain, from its MX answer.
struct Route {
  enum class Kind : uint8_t { Hosts, NullMx, NoSuchDomain, TempFail } kind = Kind::TempFail;
  std::vector<MxRecord>
      hosts;  // in the order to try: by preference, equal preferences shuffled with rng
  std::string error;
};
// NoData (or Ok with no record) -> implicit MX: the domain itself (lowercase,
// no trailing dot), preference 0. NxDomain -> NoSuchDomain. Only null MX
// entries (one "." at any preference, or several) -> NullMx. TempFail /
// BadAnswer -> TempFail with the answer's error. An MX list with the null MX
// among real hosts: the "." entries are dropped. A host listed twice is tried
// once, at its best preference. Removing ourselves and the less preferred
// hosts (RFC 5321 §5.1) is left to the caller, which knows its own names.
Route route(const MxAnswer& answer, std::string_view domain, std::mt19937& rng);

// The checks the Resolver applies to a name before querying it: lowercase,
// one trailing dot removed; an Error says why a name is refused.
Result<std::string> normalizeName(std::string_view name);

}  // namespace yubin::dns
