// mtad's remote delivery; see remote.hpp.
#include "mtad/remote.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/log.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"

namespace yubin::mtad {
namespace {

using smtp::ClientReply;
using smtp::localReply;

std::string trim(std::string_view s) {
  size_t a = 0;
  size_t b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) --b;
  return std::string(s.substr(a, b - a));
}

bool isIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::optional<uint16_t> parsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

}  // namespace

// ---------------------------------------------------------------- parsing

std::optional<TlsPolicy> parseTlsPolicy(std::string_view s) {
  std::string v = toLower(trim(s));
  if (v == "none") return TlsPolicy::None;
  if (v == "may") return TlsPolicy::May;
  if (v == "encrypt") return TlsPolicy::Encrypt;
  if (v == "verify") return TlsPolicy::Verify;
  return std::nullopt;
}

const char* tlsPolicyName(TlsPolicy p) {
  switch (p) {
    case TlsPolicy::None:
      return "none";
    case TlsPolicy::May:
      return "may";
    case TlsPolicy::Encrypt:
      return "encrypt";
    case TlsPolicy::Verify:
      return "verify";
  }
  return "?";
}

Result<std::map<std::string, TlsPolicy>> parseTlsPolicies(const std::vector<std::string>& items) {
  std::map<std::string, TlsPolicy> out;
  for (const auto& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos)
      return Error{"tls_policy: \"" + item + "\" is not domain=policy", EINVAL};
    std::string domain = toLower(trim(std::string_view(item).substr(0, eq)));
    if (!domain.empty() && domain.back() == '.') domain.pop_back();
    auto p = parseTlsPolicy(std::string_view(item).substr(eq + 1));
    if (domain.empty() || !p)
      return Error{"tls_policy: \"" + item + "\": want domain=none|may|encrypt|verify", EINVAL};
    out[domain] = *p;
  }
  return out;
}

Result<RelayHost> parseRelayHost(std::string_view in, uint16_t defaultPort) {
  std::string s = trim(in);
  RelayHost r;
  r.port = defaultPort;
  std::string_view rest;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos) return Error{"relay_host: missing ']' in " + s, EINVAL};
    r.host = s.substr(1, close - 1);
    r.mxLookup = false;
    rest = std::string_view(s).substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return Error{"relay_host: junk after ']' in " + s, EINVAL};
    if (!rest.empty()) rest.remove_prefix(1);
    else rest = {};
  } else {
    size_t colon = s.find(':');
    if (colon != std::string::npos && s.find(':', colon + 1) != std::string::npos)
      return Error{"relay_host: write an IPv6 address in brackets: " + s, EINVAL};
    r.host = s.substr(0, colon);
    if (colon != std::string::npos) {
      rest = std::string_view(s).substr(colon + 1);
      if (rest.empty()) return Error{"relay_host: empty port in " + s, EINVAL};
    }
  }
  if (r.host.empty()) return Error{"relay_host: no host in \"" + s + "\"", EINVAL};
  if (!rest.empty()) {
    auto p = parsePort(rest);
    if (!p) return Error{"relay_host: bad port in " + s, EINVAL};
    r.port = *p;
  }
  if (isIpLiteral(r.host)) r.mxLookup = false;
  r.host = toLower(r.host);
  return r;
}

Result<SmtpCredentials> readAuthFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return errnoError("relay_auth_file " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errnoError("relay_auth_file " + path);
  if (!S_ISREG(st.st_mode)) return Error{"relay_auth_file " + path + " is not a regular file", EINVAL};
  if ((st.st_mode & 077) != 0)
    return Error{"relay_auth_file " + path +
                     " may be read by group or others; it must be mode 0600 or 0400",
                 EPERM};
  if (st.st_size > 65536) return Error{"relay_auth_file " + path + " is too large", EINVAL};
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("relay_auth_file " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = trim(std::string_view(text).substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (line.empty() || line.front() == '#') continue;
    size_t sp = line.find_first_of(" \t");
    if (sp == std::string::npos)
      return Error{"relay_auth_file " + path + ": want \"user password\"", EINVAL};
    SmtpCredentials c;
    c.user = line.substr(0, sp);
    c.password = trim(std::string_view(line).substr(sp + 1));
    if (c.password.empty())
      return Error{"relay_auth_file " + path + ": want \"user password\"", EINVAL};
    return c;
  }
  return Error{"relay_auth_file " + path + " holds no credentials", EINVAL};
}

// ---------------------------------------------------------------- the manager

struct RemoteDelivery::Job {
  uint64_t id = 0;
  RemoteJob job;
  Done done;
  std::string dest;
  bool retried = false;
};

struct RemoteDelivery::Dest {
  std::string key;     // the domain, or "[relay]"
  std::string domain;  // for DNS (the domain; unused for the relay)
  std::deque<uint64_t> waiting;
  size_t slots = 0;  // connections open or being opened
  std::vector<SmtpConnection*> idle;
};

struct RemoteDelivery::Conn {
  std::unique_ptr<SmtpConnection> c;
  std::string dest;
  uint64_t job = 0;
  bool ownsSlot = false;  // an attempt holds the slot until the connection is ready
  size_t served = 0;      // messages sent over it
};

struct RemoteDelivery::Attempt {
  uint64_t id = 0;
  std::string dest;
  uint64_t job = 0;
  std::vector<dns::MxRecord> hosts;
  size_t host = 0;
  std::string hostName;
  bool implicitMx = false;
  bool sawAddress = false;
  std::vector<std::string> addrs;
  size_t addr = 0;
  size_t tried = 0;
  bool plainRetry = false;
  ClientReply last = localReply(451, "4.4.0", "no host could be tried");
};

Result<std::unique_ptr<RemoteDelivery>> RemoteDelivery::create(event_base* base,
                                                               RemoteSettings settings) {
  std::unique_ptr<RemoteDelivery> r(new RemoteDelivery(base, std::move(settings)));
  auto resolver = dns::Resolver::create(base, r->settings_.dns);
  if (!resolver) return Error{"DNS resolver: " + resolver.error().message};
  r->resolver_ = std::move(*resolver);
  auto plain = tls::newClientContext({.verify = false, .caFile = ""});
  if (!plain) return Error{"TLS client: " + plain.error().message};
  r->plainCtx_ = std::move(*plain);
  auto verify = tls::newClientContext({.verify = true, .caFile = ""});
  if (!verify) return Error{"TLS client: " + verify.error().message};
  r->verifyCtx_ = std::move(*verify);
  if (!r->settings_.tlsCaFile.empty() &&
      SSL_CTX_load_verify_locations(r->verifyCtx_.get(), r->settings_.tlsCaFile.c_str(),
                                    nullptr) != 1)
    return Error{"tls_ca_file " + r->settings_.tlsCaFile + ": " + tls::takeErrors()};
  return r;
}

RemoteDelivery::RemoteDelivery(event_base* base, RemoteSettings settings)
    : base_(base),
      settings_(std::move(settings)),
      rng_(std::random_device{}()),
      kicker_(base, [this] { onKick(); }) {}

RemoteDelivery::~RemoteDelivery() {
  for (auto& [raw, conn] : conns_) conn->c->close();
  conns_.clear();
  dead_.clear();
  resolver_.reset();
}

std::string RemoteDelivery::destKey(const std::string& domain) const {
  return settings_.relay ? std::string("[relay]") : domain;
}

TlsPolicy RemoteDelivery::policyFor(const std::string& domain) const {
  auto it = settings_.tlsPolicies.find(domain);
  return it == settings_.tlsPolicies.end() ? settings_.tlsPolicy : it->second;
}

RemoteDelivery::Attempt* RemoteDelivery::attempt(uint64_t id) {
  auto it = attempts_.find(id);
  return it == attempts_.end() ? nullptr : it->second.get();
}

void RemoteDelivery::deliver(RemoteJob job, Done done) {
  if (stopping_) {  // answered from the loop like any result
    RemoteResult r;
    r.replies.assign(job.message.recipients.size(),
                     localReply(421, "4.3.2", "mtad is stopping: not tried"));
    r.notTried = true;
    reports_.emplace_back(std::move(done), std::move(r));
    kick();
    return;
  }
  auto j = std::make_unique<Job>();
  j->id = nextId_++;
  j->dest = destKey(job.domain);
  j->done = std::move(done);
  std::string domain = job.domain;
  j->job = std::move(job);
  uint64_t id = j->id;
  std::string key = j->dest;
  jobs_.emplace(id, std::move(j));
  auto& dest = dests_[key];
  if (!dest) {
    dest = std::make_unique<Dest>();
    dest->key = key;
    dest->domain = domain;
  }
  dest->waiting.push_back(id);
  // From the loop: a failure found at once must not call back inside deliver().
  kick();
}

void RemoteDelivery::kick() { kicker_.arm(std::chrono::milliseconds(0)); }

void RemoteDelivery::onKick() {
  dead_.clear();
  // Reports first: they may queue new jobs that the dispatch below starts.
  std::deque<std::pair<Done, RemoteResult>> reports = std::move(reports_);
  reports_.clear();
  for (auto& [done, result] : reports) done(std::move(result));
  dispatchAll();
  for (auto it = dests_.begin(); it != dests_.end();) {
    const Dest& d = *it->second;
    if (d.waiting.empty() && d.slots == 0 && d.idle.empty())
      it = dests_.erase(it);
    else
      ++it;
  }
}

void RemoteDelivery::dispatchAll() {
  // Destinations with no connection first: a slot that frees up goes to
  // one that has none, not back to whichever sorts first.
  std::vector<std::string> keys;
  for (auto& [k, d] : dests_)
    if (!d->waiting.empty() && d->slots == 0) keys.push_back(k);
  for (auto& [k, d] : dests_)
    if (!d->waiting.empty() && d->slots != 0) keys.push_back(k);
  for (const auto& k : keys) dispatch(k);
}

bool RemoteDelivery::othersStarve(const std::string& key) const {
  size_t total = 0;
  bool starving = false;
  for (const auto& [k, d] : dests_) {
    total += d->slots;
    if (k != key && d->slots == 0 && !d->waiting.empty()) starving = true;
  }
  return starving && total >= std::max<size_t>(settings_.maxConnections, 1);
}

void RemoteDelivery::dispatch(const std::string& key) {
  auto it = dests_.find(key);
  if (it == dests_.end()) return;
  Dest& dest = *it->second;
  while (!dest.waiting.empty()) {
    bool reused = false;
    while (!dest.idle.empty()) {
      SmtpConnection* raw = dest.idle.back();
      dest.idle.pop_back();
      if (raw->ready()) {
        uint64_t jobId = dest.waiting.front();
        dest.waiting.pop_front();
        runJob(*conns_.at(raw), jobId);
        reused = true;
        break;
      }
      dropConnection(raw);
    }
    if (reused) continue;
    if (dest.slots >= std::max<size_t>(settings_.maxPerDestination, 1)) break;
    size_t total = 0;
    for (auto& [k, d] : dests_) total += d->slots;
    if (total >= std::max<size_t>(settings_.maxConnections, 1) && !closeAnIdleConnection()) break;
    uint64_t jobId = dest.waiting.front();
    dest.waiting.pop_front();
    startAttempt(dest, jobId);
  }
}

bool RemoteDelivery::closeAnIdleConnection() {
  for (auto& [k, d] : dests_) {
    if (d->idle.empty()) continue;
    SmtpConnection* raw = d->idle.front();
    dropConnection(raw);
    return true;
  }
  return false;
}

void RemoteDelivery::startAttempt(Dest& dest, uint64_t jobId) {
  ++dest.slots;
  auto a = std::make_unique<Attempt>();
  a->id = nextId_++;
  a->dest = dest.key;
  a->job = jobId;
  uint64_t aid = a->id;
  attempts_.emplace(aid, std::move(a));
  resolveHosts(aid);
}

void RemoteDelivery::resolveHosts(uint64_t aid) {
  Attempt& a = *attempt(aid);
  const Dest& dest = *dests_.at(a.dest);
  std::string name = settings_.relay ? settings_.relay->host : dest.domain;
  if (settings_.relay && !settings_.relay->mxLookup) {
    a.hosts.push_back({0, name});
    nextHost(aid);
    return;
  }
  resolver_->mx(name, [this, aid, name](dns::MxAnswer answer) {
    Attempt* a = attempt(aid);
    if (!a) return;
    dns::Route r = dns::route(answer, name, rng_);
    switch (r.kind) {
      case dns::Route::Kind::NullMx:
        attemptFailed(aid, localReply(556, "5.1.10", name + " does not accept mail (null MX)"),
                      true);
        return;
      case dns::Route::Kind::NoSuchDomain:
        attemptFailed(aid, localReply(550, "5.1.2", "domain " + name + " does not exist"), true);
        return;
      case dns::Route::Kind::TempFail:
        attemptFailed(aid,
                      localReply(451, "4.4.3", "DNS lookup of MX for " + name + " failed: " + r.error),
                      true);
        return;
      case dns::Route::Kind::Hosts:
        break;
    }
    a->implicitMx = answer.records.empty();
    a->hosts = std::move(r.hosts);
    nextHost(aid);
  });
}

void RemoteDelivery::nextHost(uint64_t aid) {
  Attempt& a = *attempt(aid);
  if (a.host >= a.hosts.size() || a.tried >= settings_.maxAddresses) {
    if (a.implicitMx && !a.sawAddress && a.last.code == 550) {
      attemptFailed(aid, a.last, true);
      return;
    }
    attemptFailed(aid, a.last.permanent() ? localReply(451, "4.4.0", a.last.summary()) : a.last,
                  true);
    return;
  }
  a.hostName = a.hosts[a.host++].host;
  std::string host = a.hostName;
  resolver_->addresses(host, [this, aid, host](dns::AddressAnswer answer) {
    Attempt* a = attempt(aid);
    if (!a) return;
    switch (answer.status) {
      case dns::Status::Ok:
        a->sawAddress = true;
        a->addrs = std::move(answer.addresses);
        a->addr = 0;
        a->plainRetry = false;
        nextAddress(aid);
        return;
      case dns::Status::NoData:
      case dns::Status::NxDomain:
        a->last = a->implicitMx
                      ? localReply(550, "5.1.2", "no MX and no address for " + host)
                      : localReply(451, "4.4.4", "no address for MX host " + host);
        break;
      case dns::Status::TempFail:
      case dns::Status::BadAnswer:
        a->last = localReply(451, "4.4.3", "DNS lookup of " + host + " failed: " + answer.error);
        break;
    }
    nextHost(aid);
  });
}

SmtpConnectionSettings RemoteDelivery::connectionSettings(const Dest& dest, const std::string& host,
                                                          bool plain, std::string* error) const {
  (void)host;
  SmtpConnectionSettings s = settings_.connection;
  s.client.helo = settings_.helo;
  s.client.startTls = false;
  s.client.requireTls = false;
  s.client.implicitTls = false;
  s.client.auth.reset();
  s.tlsContext = nullptr;
  s.verify = false;
  if (settings_.relay) {
    SSL_CTX* ctx = settings_.relayVerify ? verifyCtx_.get() : plainCtx_.get();
    switch (settings_.relayTls) {
      case RelayTls::None:
        break;
      case RelayTls::StartTls:
        s.client.startTls = s.client.requireTls = true;
        s.tlsContext = ctx;
        s.verify = settings_.relayVerify;
        break;
      case RelayTls::Implicit:
        s.client.implicitTls = true;
        s.tlsContext = ctx;
        s.verify = settings_.relayVerify;
        break;
    }
    if (!settings_.relayAuthFile.empty()) {
      auto creds = readAuthFile(settings_.relayAuthFile);
      if (!creds) {
        *error = creds.error().message;
        return s;
      }
      s.client.auth = std::move(*creds);
    }
    return s;
  }
  switch (policyFor(dest.domain)) {
    case TlsPolicy::None:
      break;
    case TlsPolicy::May:
      s.client.startTls = !plain;
      s.tlsContext = plainCtx_.get();
      break;
    case TlsPolicy::Encrypt:
      s.client.startTls = s.client.requireTls = true;
      s.tlsContext = plainCtx_.get();
      break;
    case TlsPolicy::Verify:
      s.client.startTls = s.client.requireTls = true;
      s.tlsContext = verifyCtx_.get();
      s.verify = true;
      break;
  }
  return s;
}

void RemoteDelivery::nextAddress(uint64_t aid) {
  Attempt& a = *attempt(aid);
  if (a.addr >= a.addrs.size() || a.tried >= settings_.maxAddresses) {
    nextHost(aid);
    return;
  }
  const Dest& dest = *dests_.at(a.dest);
  std::string error;
  SmtpConnectionSettings cs = connectionSettings(dest, a.hostName, a.plainRetry, &error);
  if (!error.empty()) {
    YLOG_ERROR("remote delivery cannot start: %s", error.c_str());
    attemptFailed(aid, localReply(451, "4.7.0", error), true);
    return;
  }
  ++a.tried;
  SmtpEndpoint ep;
  ep.host = a.hostName;
  ep.ip = a.addrs[a.addr];
  ep.port = settings_.relay ? settings_.relay->port : settings_.port;
  auto conn = std::make_unique<Conn>();
  conn->c = std::make_unique<SmtpConnection>(base_, ep, std::move(cs));
  conn->dest = a.dest;
  SmtpConnection* raw = conn->c.get();
  conns_.emplace(raw, std::move(conn));
  raw->setOnIdleClose([this, raw] {
    dropConnection(raw);
    kick();
  });
  YLOG_DEBUG("smtp client connecting host=%s tls=%s", ep.text().c_str(),
             a.plainRetry ? "none (retry in clear)" : "policy");
  raw->open([this, aid, raw](std::optional<SetupFailure> failure) {
    Attempt* a = attempt(aid);
    if (!a) {
      dropConnection(raw);
      return;
    }
    if (!failure) {
      auto cit = conns_.find(raw);
      if (cit == conns_.end()) fatal("remote delivery: connected a connection that is gone");
      Conn& c = *cit->second;
      c.ownsSlot = true;  // the attempt's slot passes to the connection
      uint64_t jobId = a->job;
      YLOG_INFO("smtp client connected host=%s tls=\"%s\"", raw->endpoint().text().c_str(),
                raw->tlsSession().empty() ? "none" : raw->tlsSession().c_str());
      attempts_.erase(aid);
      runJob(c, jobId);
      return;
    }
    YLOG_INFO("smtp client host failed host=%s reply=\"%s\"", raw->endpoint().text().c_str(),
              failure->reply.summary().c_str());
    a->last = failure->reply;
    dropConnection(raw);
    const Dest& dest = *dests_.at(a->dest);
    if (failure->tls && !settings_.relay && policyFor(dest.domain) == TlsPolicy::May &&
        !a->plainRetry) {
      YLOG_NOTICE("TLS failed under policy may, trying again in clear host=%s",
                  raw->endpoint().text().c_str());
      a->plainRetry = true;
      nextAddress(aid);
      return;
    }
    a->plainRetry = false;
    ++a->addr;
    nextAddress(aid);
  });
}

void RemoteDelivery::attemptFailed(uint64_t aid, const ClientReply& why, bool wholeDestination) {
  auto it = attempts_.find(aid);
  if (it == attempts_.end()) return;
  uint64_t jobId = it->second->job;
  std::string key = it->second->dest;
  attempts_.erase(it);
  Dest& dest = *dests_.at(key);
  --dest.slots;
  auto fail = [&](uint64_t id) {
    auto j = jobs_.find(id);
    if (j == jobs_.end()) return;
    RemoteResult r;
    r.replies.assign(j->second->job.message.recipients.size(), why);
    jobDone(id, std::move(r));
  };
  fail(jobId);
  if (wholeDestination) {
    // The same lookups and hosts would fail the same way now.
    std::deque<uint64_t> waiting = std::move(dest.waiting);
    dest.waiting.clear();
    for (uint64_t id : waiting) fail(id);
  }
  kick();
}

void RemoteDelivery::runJob(Conn& conn, uint64_t jobId) {
  conn.job = jobId;
  ++conn.served;
  Job& j = *jobs_.at(jobId);
  SmtpConnection* raw = conn.c.get();
  raw->send(j.job.message, j.job.file, j.job.logId, [this, raw, jobId](TransactionResult r) {
    auto cit = conns_.find(raw);
    if (cit == conns_.end()) fatal("remote delivery: result from a connection that is gone");
    Conn& c = *cit->second;
    c.job = 0;
    const std::string key = c.dest;
    auto jit = jobs_.find(jobId);
    if (jit != jobs_.end() && r.retryable && !jit->second->retried) {
      // The server closed the reused connection as we used it: nothing was
      // delivered; once more on a new connection.
      jit->second->retried = true;
      YLOG_DEBUG("smtp connection went stale, reconnecting id=%s", jit->second->job.logId.c_str());
      dropConnection(raw);
      if (stopping_) {
        notTried(jobId);
      } else {
        dests_.at(key)->waiting.push_front(jobId);
        kick();
      }
      return;
    }
    RemoteResult result;
    result.replies = std::move(r.replies);
    result.dsnPassed = r.dsnPassed;
    result.host = raw->endpoint().text();
    jobDone(jobId, std::move(result));
    if (raw->ready()) {
      connectionIdle(c);
    } else {
      dropConnection(raw);
    }
    kick();
  });
}

void RemoteDelivery::connectionIdle(Conn& conn) {
  Dest& dest = *dests_.at(conn.dest);
  if (stopping_) {
    dropConnection(conn.c.get());
    return;
  }
  if (!dest.waiting.empty()) {
    // Connection reuse: the next message for the same destination, as
    // long as no other destination waits for a slot with none (then,
    // after kReuseBurst messages, the slot is given up to it).
    if (conn.served < kReuseBurst || !othersStarve(conn.dest)) {
      uint64_t next = dest.waiting.front();
      dest.waiting.pop_front();
      runJob(conn, next);
      return;
    }
    YLOG_DEBUG("smtp connection handed over to a waiting destination host=%s messages=%zu",
               conn.c->endpoint().text().c_str(), conn.served);
    dropConnection(conn.c.get());
    return;
  }
  if (settings_.connection.idleTimeout.count() <= 0) {  // no connection cache
    dropConnection(conn.c.get());
    return;
  }
  // Cached: SmtpConnection's idle timer sends QUIT after idleTimeout; a
  // message for this destination before then reuses it (dispatch()).
  dest.idle.push_back(conn.c.get());
}

void RemoteDelivery::jobDone(uint64_t jobId, RemoteResult result) {
  auto it = jobs_.find(jobId);
  if (it == jobs_.end()) return;
  Done done = std::move(it->second->done);
  jobs_.erase(it);
  // Reported from the loop, so the caller may start new jobs at once.
  reports_.emplace_back(std::move(done), std::move(result));
  kick();
}

void RemoteDelivery::dropConnection(SmtpConnection* raw) {
  auto it = conns_.find(raw);
  if (it == conns_.end()) return;
  auto dit = dests_.find(it->second->dest);
  if (dit != dests_.end()) {
    auto& idle = dit->second->idle;
    idle.erase(std::remove(idle.begin(), idle.end(), raw), idle.end());
    if (it->second->ownsSlot && dit->second->slots > 0) --dit->second->slots;
  }
  if (!raw->closed()) raw->close();
  dead_.push_back(std::move(it->second->c));
  conns_.erase(it);
  kick();
}

void RemoteDelivery::notTried(uint64_t jobId) {
  auto j = jobs_.find(jobId);
  if (j == jobs_.end()) return;
  RemoteResult r;
  r.replies.assign(j->second->job.message.recipients.size(),
                   localReply(421, "4.3.2", "mtad is stopping: not tried"));
  r.notTried = true;
  jobDone(jobId, std::move(r));
}

void RemoteDelivery::stop() {
  if (stopping_) return;
  stopping_ = true;
  closeIdle();
  size_t n = 0;
  for (auto& [k, d] : dests_) {
    std::deque<uint64_t> waiting = std::move(d->waiting);
    d->waiting.clear();
    for (uint64_t id : waiting) {
      notTried(id);
      ++n;
    }
  }
  if (n) YLOG_INFO("remote delivery stopping: messages not tried count=%zu", n);
  kick();
}

void RemoteDelivery::closeIdle() {
  std::vector<SmtpConnection*> idle;
  for (auto& [k, d] : dests_)
    for (auto* c : d->idle) idle.push_back(c);
  for (auto* c : idle) dropConnection(c);
}

}  // namespace yubin::mtad
