// c-ares on libevent: the channel's sockets become libevent events through
// the socket state callback, one Timer drives ares_timeout, and finished
// lookups are delivered from a zero-delay Timer so that a callback never runs
// inside mx()/addresses() nor inside c-ares' own processing (where destroying
// the Resolver would free the channel under c-ares' feet).
// Trust: answers are untrusted; c-ares parses them and every host name is
// re-checked by normalizeName before it leaves this file.
// Standards: RFC 1035, RFC 3596, RFC 5321 §5.1, RFC 7505.
#include "dns/resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <variant>

#include "event/event.hpp"

namespace yubin::dns {

namespace {

constexpr size_t kMaxName = 253;
constexpr size_t kMaxLabel = 63;

bool isNameChar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// A numeric IPv4 or IPv6 address in its canonical text form, or "".
std::string numericAddress(std::string_view s) {
  if (s.empty() || s.size() > INET6_ADDRSTRLEN) return {};
  std::string z(s);
  char buf[INET6_ADDRSTRLEN];
  in_addr a4{};
  if (inet_pton(AF_INET, z.c_str(), &a4) == 1) {
    return inet_ntop(AF_INET, &a4, buf, sizeof buf) ? std::string(buf) : std::string();
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, z.c_str(), &a6) == 1) {
    return inet_ntop(AF_INET6, &a6, buf, sizeof buf) ? std::string(buf) : std::string();
  }
  return {};
}

// How a c-ares status maps onto ours. ECANCELLED / EDESTRUCTION never get
// here: those lookups are dropped without a callback.
Status mapStatus(int rc) {
  switch (rc) {
    case ARES_SUCCESS:
      return Status::Ok;
    case ARES_ENODATA:
      return Status::NoData;
    case ARES_ENOTFOUND:
      return Status::NxDomain;
    case ARES_EFORMERR:
    case ARES_EBADRESP:
    case ARES_EBADNAME:
    case ARES_EBADQUERY:
    case ARES_EBADFAMILY:
      return Status::BadAnswer;
    default:  // ESERVFAIL, EREFUSED, ENOTIMP, ETIMEOUT, ECONNREFUSED, ENOMEM, ...
      return Status::TempFail;
  }
}

std::string caresError(int rc) { return std::string("DNS: ") + ares_strerror(rc); }

bool dropped(int rc) { return rc == ARES_ECANCELLED || rc == ARES_EDESTRUCTION; }

// A port in 1..65535, or -1.
int parsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return -1;
  int port = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    port = port * 10 + (c - '0');
  }
  return port >= 1 && port <= 65535 ? port : -1;
}

// Parses "addr", "addr:port", "[addr]", "[addr]:port" into a c-ares node.
Result<ares_addr_port_node> parseServer(std::string_view s) {
  auto bad = [&](const char* why) {
    return Error{"resolver server \"" + std::string(s) + "\": " + why};
  };
  std::string host;
  int port = 0;  // 0 = the default, 53
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    host = std::string(s.substr(1, close - 1));
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':port' after ']'");
      port = parsePort(rest.substr(1));
      if (port < 0) return bad("port is not a number in 1..65535");
    }
  } else {
    size_t colon = s.find(':');
    if (colon != std::string_view::npos && s.find(':', colon + 1) == std::string_view::npos) {
      host = std::string(s.substr(0, colon));  // IPv4:port
      port = parsePort(s.substr(colon + 1));
      if (port < 0) return bad("port is not a number in 1..65535");
    } else {
      host = std::string(s);  // bare IPv4, or bare IPv6 (several colons)
    }
  }
  ares_addr_port_node node{};
  if (inet_pton(AF_INET, host.c_str(), &node.addr.addr4) == 1) {
    node.family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), &node.addr.addr6) == 1) {
    node.family = AF_INET6;
  } else {
    return bad("not a numeric IPv4 or IPv6 address");
  }
  node.udp_port = port;
  node.tcp_port = port;
  return node;
}

void fillAddresses(int family, const unsigned char* abuf, int alen, std::vector<std::string>* out,
                   int* rc) {
  hostent* host = nullptr;
  *rc = family == AF_INET6 ? ares_parse_aaaa_reply(abuf, alen, &host, nullptr, nullptr)
                           : ares_parse_a_reply(abuf, alen, &host, nullptr, nullptr);
  if (*rc != ARES_SUCCESS || host == nullptr) {
    if (host) ares_free_hostent(host);
    return;
  }
  char buf[INET6_ADDRSTRLEN];
  for (char** p = host->h_addr_list; p && *p; ++p) {
    if (host->h_addrtype != family) continue;
    if (inet_ntop(family, *p, buf, sizeof buf)) out->emplace_back(buf);
  }
  ares_free_hostent(host);
  if (out->empty()) *rc = ARES_ENODATA;
}

}  // namespace

std::string_view statusName(Status s) {
  switch (s) {
    case Status::Ok:
      return "ok";
    case Status::NoData:
      return "nodata";
    case Status::NxDomain:
      return "nxdomain";
    case Status::TempFail:
      return "tempfail";
    case Status::BadAnswer:
      return "badanswer";
  }
  return "unknown";
}

Result<std::string> normalizeName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return Error{"empty domain name"};
  if (name.size() > kMaxName) return Error{"domain name longer than 253 octets"};
  std::string out;
  out.reserve(name.size());
  size_t label = 0;
  for (unsigned char c : name) {
    if (c >= 0x80) return Error{"non-ASCII domain name (an IDNA A-label is required)"};
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
    if (c == '.') {
      if (label == 0) return Error{"empty label in domain name"};
      label = 0;
    } else {
      if (!isNameChar(c)) return Error{"invalid character in domain name"};
      if (++label > kMaxLabel) return Error{"label longer than 63 octets in domain name"};
    }
    out.push_back(static_cast<char>(c));
  }
  if (label == 0) return Error{"empty label in domain name"};
  return out;
}

struct Resolver::Impl {
  using Seconds = std::chrono::seconds;
  // A finished query hands its answer and how long it may be kept to one
  // of these: straight to the caller, or to the cache and its waiters.
  using MxFinish = std::function<void(MxAnswer, Seconds)>;
  using AddrFinish = std::function<void(AddressAnswer, Seconds)>;
  struct MxQuery {
    Impl* impl;
    std::string name;
    MxFinish done;
  };
  struct AddrQuery {
    Impl* impl = nullptr;
    std::string name;
    AddrFinish done;
    int remaining = 2;
    int rc6 = ARES_ENOTFOUND;
    int rc4 = ARES_ENOTFOUND;
    Seconds ttl6{0}, ttl4{0};
    std::vector<std::string> v6, v4;
  };

  Impl(event_base* b, CacheSettings cs)
      : base(b),
        timeoutTimer(b, [this] { onTimeout(); }),
        deliverTimer(b, [this] { deliver(); }),
        alive(std::make_shared<int>(0)),
        cacheSettings(std::move(cs)),
        cache(cacheSettings.maxEntries) {}

  ~Impl() {
    destroying = true;
    // Runs every pending c-ares callback with ARES_EDESTRUCTION, which frees
    // each query without calling its user callback, and closes the sockets
    // (the state callback then drops their events).
    if (channel) ares_destroy(channel);
    events.clear();
    ready.clear();
    backlog.clear();
    mxWaiters.clear();
    addrWaiters.clear();
  }

  bool caching() const { return cacheSettings.maxEntries > 0; }
  std::chrono::steady_clock::time_point now() const {
    return cacheSettings.clock ? cacheSettings.clock() : std::chrono::steady_clock::now();
  }

  // An answer for every caller waiting on `key`, and for the cache.
  template <class Answer, class Waiters>
  void finish(Waiters& waiting, const std::string& key, Answer answer, Seconds ttl) {
    if (ttl.count() > 0) cache.put(key, answer, now() + ttl);
    auto it = waiting.find(key);
    if (it == waiting.end()) return;
    auto callers = std::move(it->second);
    waiting.erase(it);
    for (auto& done : callers) {
      post([done = std::move(done), a = answer]() mutable { done(std::move(a)); });
    }
  }

  // Starts (or joins, or answers from the cache) a lookup of `key`; start
  // is called with the finisher when a query must go out.
  template <class Answer, class Waiters, class Start>
  void lookup(Waiters& waiting, std::string key, std::function<void(Answer)> done, Start start) {
    if (!caching()) {
      start([this, done = std::move(done)](Answer a, Seconds) mutable {
        post([done = std::move(done), a = std::move(a)]() mutable { done(std::move(a)); });
      });
      return;
    }
    if (const auto* hit = cache.find(key, now())) {
      ++stats.cacheHits;
      post([done = std::move(done), a = std::get<Answer>(*hit)]() mutable { done(std::move(a)); });
      return;
    }
    auto [it, fresh] = waiting.try_emplace(key);
    it->second.push_back(std::move(done));
    if (!fresh) {
      ++stats.merged;
      return;
    }
    // `waiting` is one of this Impl's maps: it outlives every query.
    start([this, &waiting, key](Answer a, Seconds ttl) {
      finish(waiting, key, std::move(a), ttl);
    });
  }

  static void onSockState(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Impl*>(data);
    self->events.erase(fd);  // safe even from the event's own callback (libevent 2.1)
    if (self->destroying || (!readable && !writable)) return;
    short what = EV_PERSIST;
    if (readable) what |= EV_READ;
    if (writable) what |= EV_WRITE;
    event::Event ev(event_new(self->base, fd, what, &Impl::onSocket, self));
    if (!ev || event_add(ev.get(), nullptr) != 0) {
      // Without an event the query can only end by its timeout: still correct.
      return;
    }
    self->events.emplace(fd, std::move(ev));
  }

  static void onSocket(evutil_socket_t fd, short what, void* data) {
    auto* self = static_cast<Impl*>(data);
    ares_process_fd(self->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    self->rearm();
  }

  void onTimeout() {
    ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm();
  }

  void rearm() {
    timeval tv{};
    if (ares_timeout(channel, nullptr, &tv) == nullptr) {
      timeoutTimer.cancel();
      return;
    }
    auto ms = std::chrono::milliseconds(static_cast<int64_t>(tv.tv_sec) * 1000 +
                                        (tv.tv_usec + 999) / 1000);
    timeoutTimer.arm(ms);
  }

  // Starts queued lookups while fewer than maxQueries queries are out. A
  // burst of thousands of UDP queries would overflow socket buffers (ours or
  // the server's) and turn into timeouts; the backlog keeps it steady.
  void pump() {
    if (pumping || destroying) return;
    pumping = true;
    while (!backlog.empty() && onWire < maxQueries) {
      auto start = std::move(backlog.front());
      backlog.pop_front();
      start();
    }
    pumping = false;
  }

  void startMx(std::string name, MxFinish done) {
    auto* q = new MxQuery{this, std::move(name), std::move(done)};
    ++onWire;
    ++stats.queries;
    std::string qname = q->name;  // q may be gone when ares_query returns
    ares_query(channel, qname.c_str(), ns_c_in, ns_t_mx, &Impl::onMx, q);
  }

  void startAddresses(std::string name, AddrFinish done) {
    auto* q = new AddrQuery;
    q->impl = this;
    q->name = std::move(name);
    q->done = std::move(done);
    // Both queries go out before either can complete: a synchronous failure
    // of the first must not free q while the second still needs it, so the
    // first runs with remaining == 2.
    onWire += 2;
    stats.queries += 2;
    std::string qname = q->name;
    ares_query(channel, qname.c_str(), ns_c_in, ns_t_aaaa, &Impl::onAaaa, q);
    ares_query(channel, qname.c_str(), ns_c_in, ns_t_a, &Impl::onA, q);
  }

  void post(std::function<void()> fn) {
    ready.push_back(std::move(fn));
    if (!deliverTimer.pending()) deliverTimer.arm(std::chrono::milliseconds(0));
  }

  void deliver() {
    std::weak_ptr<int> token = alive;
    // Only what is ready now: a callback that starts a lookup which fails at
    // once gets its answer on the next turn of the loop.
    std::deque<std::function<void()>> batch;
    batch.swap(ready);
    while (!batch.empty()) {
      auto fn = std::move(batch.front());
      batch.pop_front();
      --inFlight;
      fn();
      if (token.expired()) return;  // the callback destroyed the Resolver
    }
  }

  static void onMx(void* arg, int rc, int /*timeouts*/, unsigned char* abuf, int alen) {
    std::unique_ptr<MxQuery> q(static_cast<MxQuery*>(arg));
    Impl* impl = q->impl;
    --impl->onWire;
    if (dropped(rc)) return;
    MxAnswer answer;
    if (rc == ARES_SUCCESS) {
      ares_mx_reply* mx = nullptr;
      rc = ares_parse_mx_reply(abuf, alen, &mx);
      if (rc == ARES_SUCCESS) {
        size_t invalid = 0;
        for (ares_mx_reply* r = mx; r; r = r->next) {
          std::string_view host = r->host ? r->host : "";
          if (host.empty() || host == ".") {
            answer.records.push_back({r->priority, ""});
            continue;
          }
          auto name = normalizeName(host);
          if (!name) {
            ++invalid;
            continue;
          }
          answer.records.push_back({r->priority, std::move(*name)});
        }
        ares_free_data(mx);
        std::stable_sort(
            answer.records.begin(), answer.records.end(),
            [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
        if (answer.records.empty() && invalid == 0) {
          // Only other types (a CNAME to a name without MX, say).
          answer.status = Status::NoData;
          answer.error = "DNS: no MX record for " + q->name;
        } else if (answer.records.empty()) {
          answer.status = Status::BadAnswer;
          answer.error = "DNS: MX of " + q->name + ": no valid exchange host name";
        } else {
          answer.status = Status::Ok;
          if (invalid) {
            answer.error = "DNS: MX of " + q->name + ": " + std::to_string(invalid) +
                           " record(s) with an invalid host name ignored";
          }
        }
      }
    }
    if (rc != ARES_SUCCESS) {
      answer.status = mapStatus(rc);
      answer.error = caresError(rc) + " (MX " + q->name + ")";
    }
    Seconds ttl = cacheTtl(answer.status, ttlsOf(abuf, alen), impl->cacheSettings);
    q->done(std::move(answer), ttl);
    impl->pump();
  }

  static void onAddr(void* arg, int rc, int /*timeouts*/, unsigned char* abuf, int alen,
                     int family) {
    auto* q = static_cast<AddrQuery*>(arg);
    Impl* impl = q->impl;
    --impl->onWire;
    int& out = family == AF_INET6 ? q->rc6 : q->rc4;
    out = rc;
    if (rc == ARES_SUCCESS)
      fillAddresses(family, abuf, alen, family == AF_INET6 ? &q->v6 : &q->v4, &out);
    if (!dropped(rc)) {
      (family == AF_INET6 ? q->ttl6 : q->ttl4) =
          cacheTtl(mapStatus(out), ttlsOf(abuf, alen), impl->cacheSettings);
    }
    if (--q->remaining > 0) return;
    std::unique_ptr<AddrQuery> owned(q);
    if (dropped(q->rc6) || dropped(q->rc4)) return;
    AddressAnswer answer = combine(*q);
    // The merged answer is as old as its shorter-lived half.
    q->done(std::move(answer), std::min(q->ttl6, q->ttl4));
    impl->pump();
  }
  static void onAaaa(void* arg, int rc, int timeouts, unsigned char* abuf, int alen) {
    onAddr(arg, rc, timeouts, abuf, alen, AF_INET6);
  }
  static void onA(void* arg, int rc, int timeouts, unsigned char* abuf, int alen) {
    onAddr(arg, rc, timeouts, abuf, alen, AF_INET);
  }

  static std::optional<MessageTtls> ttlsOf(const unsigned char* abuf, int alen) {
    if (abuf == nullptr || alen <= 0) return std::nullopt;
    return messageTtls(abuf, static_cast<size_t>(alen));
  }

  static AddressAnswer combine(AddrQuery& q) {
    AddressAnswer answer;
    for (auto* list : {&q.v6, &q.v4}) {
      for (auto& a : *list) {
        if (std::find(answer.addresses.begin(), answer.addresses.end(), a) ==
            answer.addresses.end()) {
          answer.addresses.push_back(std::move(a));
        }
      }
    }
    Status s6 = mapStatus(q.rc6), s4 = mapStatus(q.rc4);
    auto describe = [&](int rc, const char* type) {
      return caresError(rc) + " (" + type + " " + q.name + ")";
    };
    if (!answer.addresses.empty()) {
      answer.status = Status::Ok;
      if (s6 != Status::Ok && s6 != Status::NoData && s6 != Status::NxDomain) {
        answer.error = describe(q.rc6, "AAAA");
      } else if (s4 != Status::Ok && s4 != Status::NoData && s4 != Status::NxDomain) {
        answer.error = describe(q.rc4, "A");
      }
      return answer;
    }
    // Neither family gave an address: the worse outcome wins.
    auto rank = [](Status s) {
      switch (s) {
        case Status::TempFail:
          return 4;
        case Status::BadAnswer:
          return 3;
        case Status::NoData:
        case Status::Ok:  // parsed fine but nothing of this family: no data
          return 2;
        case Status::NxDomain:
          return 1;
      }
      return 4;
    };
    bool sixWorse = rank(s6) >= rank(s4);
    Status s = sixWorse ? s6 : s4;
    if (s == Status::Ok) s = Status::NoData;
    answer.status = s;
    answer.error = sixWorse ? describe(q.rc6, "AAAA") : describe(q.rc4, "A");
    return answer;
  }

  event_base* base;
  ares_channel channel = nullptr;
  std::unordered_map<int, event::Event> events;
  event::Timer timeoutTimer;
  event::Timer deliverTimer;
  std::deque<std::function<void()>> ready;
  size_t inFlight = 0;  // lookups whose callback has not run
  size_t onWire = 0;    // c-ares queries started and not finished
  size_t maxQueries = 100;
  bool pumping = false;
  std::deque<std::function<void()>> backlog;  // lookups waiting for room
  bool destroying = false;
  std::shared_ptr<int> alive;  // expires with the Impl; deliver() watches it

  CacheSettings cacheSettings;
  TtlCache<std::variant<MxAnswer, AddressAnswer>> cache;
  // Callers waiting for a lookup on the wire, by cache key.
  std::unordered_map<std::string, std::vector<std::function<void(MxAnswer)>>> mxWaiters;
  std::unordered_map<std::string, std::vector<std::function<void(AddressAnswer)>>> addrWaiters;
  ResolverStats stats;
};

Resolver::Resolver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Resolver::~Resolver() = default;

Result<std::unique_ptr<Resolver>> Resolver::create(event_base* base, const ResolverSettings& s) {
  static std::once_flag once;
  static int initRc = ARES_SUCCESS;
  std::call_once(once, [] { initRc = ares_library_init(ARES_LIB_INIT_ALL); });
  if (initRc != ARES_SUCCESS) return Error{"c-ares init: " + std::string(ares_strerror(initRc))};
  if (s.timeout.count() <= 0 || s.timeout.count() > 600000) {
    return Error{"resolver timeout must be between 1 ms and 600 s"};
  }
  if (s.tries < 1 || s.tries > 10) return Error{"resolver tries must be between 1 and 10"};
  if (s.maxQueries < 2) return Error{"resolver maxQueries must be at least 2"};

  std::vector<ares_addr_port_node> nodes;
  for (const auto& server : s.servers) {
    auto node = parseServer(server);
    if (!node) return node.error();
    nodes.push_back(*node);
  }
  for (size_t i = 0; i + 1 < nodes.size(); ++i) nodes[i].next = &nodes[i + 1];

  if (s.cache.maxTtl.count() < 0 || s.cache.negativeMaxTtl.count() < 0 ||
      s.cache.negativeTtl.count() < 0 || s.cache.tempFailTtl.count() < 0) {
    return Error{"resolver cache times must not be negative"};
  }
  auto impl = std::make_unique<Impl>(base, s.cache);
  impl->maxQueries = static_cast<size_t>(s.maxQueries);
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  opts.sock_state_cb = &Impl::onSockState;
  opts.sock_state_cb_data = impl.get();
  opts.timeout = static_cast<int>(s.timeout.count());
  opts.tries = s.tries;
  // No search list, no /etc/hosts: a mail domain is always absolute.
  opts.flags = ARES_FLAG_NOSEARCH;
  std::string devNull = "/dev/null";
  if (!nodes.empty()) {
    // Explicit servers: do not read the machine's resolv.conf at all.
    mask |= ARES_OPT_RESOLVCONF;
    opts.resolvconf_path = devNull.data();
  }
  int rc = ares_init_options(&impl->channel, &opts, mask);
  if (rc != ARES_SUCCESS) {
    impl->channel = nullptr;
    return Error{"c-ares init: " + std::string(ares_strerror(rc))};
  }
  if (!nodes.empty()) {
    rc = ares_set_servers_ports(impl->channel, nodes.data());
    if (rc != ARES_SUCCESS) return Error{"c-ares servers: " + std::string(ares_strerror(rc))};
  }
  return std::unique_ptr<Resolver>(new Resolver(std::move(impl)));
}

void Resolver::mx(std::string_view domain, std::function<void(MxAnswer)> done) {
  Impl& impl = *impl_;
  ++impl.inFlight;
  ++impl.stats.lookups;
  auto name = normalizeName(domain);
  if (!name) {
    MxAnswer a{Status::BadAnswer,
               {},
               "DNS: MX of \"" + std::string(domain) + "\": " + name.error().message};
    impl.post([done = std::move(done), a = std::move(a)]() mutable { done(std::move(a)); });
    return;
  }
  std::string key = "mx " + *name;
  impl.lookup<MxAnswer>(impl.mxWaiters, std::move(key), std::move(done),
                        [&impl, n = std::move(*name)](Impl::MxFinish finish) mutable {
                          impl.backlog.push_back(
                              [&impl, n = std::move(n), finish = std::move(finish)]() mutable {
                                impl.startMx(std::move(n), std::move(finish));
                              });
                        });
  impl.pump();
  impl.rearm();
}

void Resolver::addresses(std::string_view host, std::function<void(AddressAnswer)> done) {
  Impl& impl = *impl_;
  ++impl.inFlight;
  ++impl.stats.lookups;
  std::string numeric = numericAddress(host);
  if (!numeric.empty()) {
    AddressAnswer a{Status::Ok, {numeric}, {}};
    impl.post([done = std::move(done), a = std::move(a)]() mutable { done(std::move(a)); });
    return;
  }
  auto name = normalizeName(host);
  if (!name) {
    AddressAnswer a{Status::BadAnswer,
                    {},
                    "DNS: address of \"" + std::string(host) + "\": " + name.error().message};
    impl.post([done = std::move(done), a = std::move(a)]() mutable { done(std::move(a)); });
    return;
  }
  std::string key = "addresses " + *name;
  impl.lookup<AddressAnswer>(impl.addrWaiters, std::move(key), std::move(done),
                             [&impl, n = std::move(*name)](Impl::AddrFinish finish) mutable {
                               impl.backlog.push_back(
                                   [&impl, n = std::move(n), finish = std::move(finish)]() mutable {
                                     impl.startAddresses(std::move(n), std::move(finish));
                                   });
                             });
  impl.pump();
  impl.rearm();
}

size_t Resolver::pending() const { return impl_->inFlight; }

ResolverStats Resolver::stats() const {
  ResolverStats s = impl_->stats;
  s.cached = impl_->cache.size();
  s.evictions = impl_->cache.evictions();
  return s;
}

Route route(const MxAnswer& answer, std::string_view domain, std::mt19937& rng) {
  Route r;
  r.error = answer.error;
  switch (answer.status) {
    case Status::NxDomain:
      r.kind = Route::Kind::NoSuchDomain;
      return r;
    case Status::TempFail:
    case Status::BadAnswer:
      r.kind = Route::Kind::TempFail;
      return r;
    case Status::NoData:
    case Status::Ok:
      break;
  }
  auto implicit = [&] {
    auto name = normalizeName(domain);
    if (!name) {
      r.kind = Route::Kind::TempFail;
      r.error = "implicit MX for \"" + std::string(domain) + "\": " + name.error().message;
      return r;
    }
    r.kind = Route::Kind::Hosts;
    r.hosts.push_back({0, std::move(*name)});
    return r;
  };
  if (answer.status == Status::NoData || answer.records.empty()) return implicit();

  std::vector<MxRecord> hosts;
  for (const auto& rec : answer.records) {
    if (!rec.host.empty()) hosts.push_back(rec);
  }
  if (hosts.empty()) {
    r.kind = Route::Kind::NullMx;
    return r;
  }
  std::stable_sort(hosts.begin(), hosts.end(), [](const MxRecord& a, const MxRecord& b) {
    return a.preference < b.preference;
  });
  // A host listed twice is kept at its best (first, after sorting) preference.
  std::vector<MxRecord> unique;
  for (auto& h : hosts) {
    bool seen = std::any_of(unique.begin(), unique.end(),
                            [&](const MxRecord& u) { return u.host == h.host; });
    if (!seen) unique.push_back(std::move(h));
  }
  // Fisher-Yates within each run of equal preference (RFC 5321 §5.1: spread
  // the load over equally preferred hosts).
  for (size_t begin = 0; begin < unique.size();) {
    size_t end = begin + 1;
    while (end < unique.size() && unique[end].preference == unique[begin].preference) ++end;
    for (size_t i = end - 1; i > begin; --i) {
      std::uniform_int_distribution<size_t> pick(begin, i);
      std::swap(unique[i], unique[pick(rng)]);
    }
    begin = end;
  }
  r.kind = Route::Kind::Hosts;
  r.hosts = std::move(unique);
  return r;
}

}  // namespace yubin::dns
