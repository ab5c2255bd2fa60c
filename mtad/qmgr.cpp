// mtad's queue manager; see qmgr.hpp.
#include "mtad/qmgr.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "base/log.hpp"
#include "base/strings.hpp"
#include "config/config.hpp"
#include "mtad/bounce.hpp"

namespace yubin::mtad {
namespace {

using queue::RcptState;
using queue::RcptStatus;
using smtp::ClientReply;
using smtp::localReply;

int64_t nowSeconds() { return static_cast<int64_t>(::time(nullptr)); }

const char* targetStatusName(TargetStatus s) {
  switch (s) {
    case TargetStatus::Delivered:
      return "delivered";
    case TargetStatus::Deferred:
      return "deferred";
    case TargetStatus::Failed:
      return "bounced";
    case TargetStatus::Remote:
      return "remote";
    case TargetStatus::NotTried:
      return "not tried";
  }
  return "?";
}

// RFC 3461 §4.1 / RFC 3464 §2.3.3: a delivered target gets a success report
// when NOTIFY asks for one, unless the server that took it over SMTP also
// took NOTIFY (the report is then its job); otherwise we say "relayed".
bool wantsSuccessReport(const queue::Recipient& rcpt, const TargetOutcome& t) {
  return t.status == TargetStatus::Delivered && wantsSuccessDsn(rcpt.notify) &&
         !(t.remote && t.dsnPassed);
}

// The log line of one target's outcome in this attempt (`v`: its
// recipient's verdict).
void logOutcome(const std::string& id, const queue::Recipient& rcpt, const TargetOutcome& t,
                const Verdict& v, bool expired, int64_t now) {
  const char* i = id.c_str();
  std::string reply = t.reply.summary();
  std::string via = t.via.empty() ? std::string() : " relay=" + t.via;
  if (t.status != TargetStatus::Deferred) {
    YLOG_INFO("%s id=%s rcpt=%s to=%s%s reply=\"%s\"", targetStatusName(t.status), i,
              rcpt.address.c_str(), t.address.c_str(), via.c_str(), reply.c_str());
  } else if (expired) {
    YLOG_INFO("bounced id=%s rcpt=%s to=%s%s why=\"queue lifetime exceeded\" reply=\"%s\"", i,
              rcpt.address.c_str(), t.address.c_str(), via.c_str(), reply.c_str());
  } else if (!v.split.empty()) {
    YLOG_INFO("deferred id=%s rcpt=%s to=%s%s next=\"with a new message\" reply=\"%s\"", i,
              rcpt.address.c_str(), t.address.c_str(), via.c_str(), reply.c_str());
  } else {
    YLOG_INFO("deferred id=%s rcpt=%s to=%s%s attempts=%u next_in=%llds reply=\"%s\"", i,
              rcpt.address.c_str(), t.address.c_str(), via.c_str(), v.state.attempts,
              static_cast<long long>(v.state.nextAttempt - now), reply.c_str());
  }
}

}  // namespace

// ---------------------------------------------------------------- pure parts

std::chrono::seconds retryDelay(uint32_t attempts, const RetryPolicy& policy) {
  int64_t min = std::max<int64_t>(policy.min.count(), 1);
  int64_t max = std::max<int64_t>(policy.max.count(), min);
  int64_t d = min;
  for (uint32_t i = 1; i < attempts && d < max; ++i) d *= 2;
  return std::chrono::seconds(std::min(d, max));
}

TargetStatus classify(const ClientReply& reply) {
  if (reply.code >= 200 && reply.code < 300) return TargetStatus::Delivered;
  if (reply.code >= 500 && reply.code < 600) return TargetStatus::Failed;
  return TargetStatus::Deferred;
}

Verdict decide(const RcptState& old, const std::vector<TargetOutcome>& targets, int64_t now,
               int64_t arrival, const RetryPolicy& policy) {
  Verdict v;
  v.state = old;
  const bool expired = now >= arrival + policy.lifetime.count();
  const TargetOutcome* firstDelivered = nullptr;
  const TargetOutcome* firstDeferred = nullptr;
  size_t finals = 0;
  size_t deferred = 0;
  std::vector<std::string> open;  // targets not final
  for (const auto& t : targets) {
    switch (t.status) {
      case TargetStatus::Delivered:
        ++finals;
        if (!firstDelivered) firstDelivered = &t;
        break;
      case TargetStatus::Failed:
        ++finals;
        v.failures.push_back({t.address, dsnStatus(t.reply), t.reply});
        break;
      case TargetStatus::Deferred:
        if (expired) {
          ++finals;
          // RFC 3463 X.4.7: delivery time expired; the last reply explains.
          v.failures.push_back({t.address, "5.4.7", t.reply});
        } else {
          ++deferred;
          if (!firstDeferred) firstDeferred = &t;
          open.push_back(t.address);
        }
        break;
      case TargetStatus::Remote:
        v.remotePending = true;
        open.push_back(t.address);
        break;
      case TargetStatus::NotTried:
        open.push_back(t.address);
        break;
    }
  }
  if (finals > 0) {
    v.state.attempts = old.attempts + 1;
    v.state.lastAttempt = now;
    v.state.nextAttempt = 0;
    if (firstDelivered) {
      v.state.status = RcptStatus::Delivered;
      v.state.reply = firstDelivered->reply.summary();
    } else {
      v.state.status = RcptStatus::Bounced;
      v.state.reply = v.failures.front().reply.summary();
    }
    if (!open.empty()) {
      v.split = std::move(open);
      v.remotePending = false;  // they travel with the new message
    }
    return v;
  }
  if (deferred > 0) {
    v.state.status = RcptStatus::Deferred;
    v.state.attempts = old.attempts + 1;
    v.state.lastAttempt = now;
    v.state.nextAttempt = now + retryDelay(v.state.attempts, policy).count();
    v.state.reply = firstDeferred->reply.summary();
  }
  // Only remote targets: unchanged, still to do.
  return v;
}

bool isFinal(RcptStatus s) { return s == RcptStatus::Delivered || s == RcptStatus::Bounced; }

bool isDue(const RcptState& s, int64_t now) {
  return s.status == RcptStatus::Pending ||
         (s.status == RcptStatus::Deferred && s.nextAttempt <= now);
}

bool allFinal(const queue::MessageState& state) {
  return std::all_of(state.rcpts.begin(), state.rcpts.end(),
                     [](const RcptState& r) { return isFinal(r.status); });
}

int64_t nextWake(const queue::MessageState& state) {
  int64_t next = 0;
  for (const auto& r : state.rcpts) {
    if (r.status != RcptStatus::Deferred) continue;
    int64_t t = std::max<int64_t>(r.nextAttempt, 1);
    if (next == 0 || t < next) next = t;
  }
  return next;
}

// ---------------------------------------------------------------- settings

QmgrSettings QmgrSettings::fromConfig(const config::Config& cfg, const std::string& hostname,
                                      const std::string& catchall) {
  QmgrSettings s;
  s.hostname = hostname;
  s.catchall = catchall;
  s.retry.min = cfg.duration("mtad", "retry_min");
  s.retry.max = cfg.duration("mtad", "retry_max");
  s.retry.lifetime = cfg.duration("mtad", "max_queue_lifetime");
  s.maxLmtp = std::max<uint64_t>(cfg.integer("mtad", "lmtp_connections"), 1);
  s.lmtp.socketPath = cfg.str("mtad", "lmtp_socket");
  s.lmtp.lhloName = hostname;
  s.delayWarning = cfg.duration("mtad", "delay_warning");
  auto domains = cfg.list("global", "domains");
  s.postmaster = "postmaster@" + (domains.empty() ? hostname : toLower(domains.front()));

  s.remoteEnabled = cfg.boolean("mtad", "remote_delivery");
  RemoteSettings& r = s.remote;
  r.helo = hostname;
  r.port = static_cast<uint16_t>(std::clamp<uint64_t>(cfg.integer("mtad", "remote_port"), 1, 65535));
  r.maxConnections = std::max<uint64_t>(cfg.integer("mtad", "remote_connections"), 1);
  r.maxPerDestination = std::max<uint64_t>(cfg.integer("mtad", "remote_connections_per_domain"), 1);
  r.tlsPolicy = parseTlsPolicy(cfg.str("mtad", "tls_policy")).value_or(TlsPolicy::May);
  auto policies = parseTlsPolicies(cfg.list("mtad", "tls_domain_policy"));
  if (policies)
    r.tlsPolicies = std::move(*policies);
  else
    s.remoteError = policies.error().message;
  r.tlsCaFile = cfg.str("mtad", "tls_ca_file");
  const std::string relay = cfg.str("mtad", "relay_host");
  const std::string relayTls = cfg.str("mtad", "relay_tls");
  r.relayTls = relayTls == "implicit" ? RelayTls::Implicit
               : relayTls == "none"   ? RelayTls::None
                                      : RelayTls::StartTls;
  if (!relay.empty()) {
    auto h = parseRelayHost(relay, r.relayTls == RelayTls::Implicit ? 465 : 25);
    if (h)
      r.relay = std::move(*h);
    else
      s.remoteError = h.error().message;
  }
  r.relayVerify = cfg.boolean("mtad", "relay_tls_verify");
  r.relayAuthFile = cfg.str("mtad", "relay_auth_file");
  r.dns.servers = cfg.list("mtad", "dns_servers");
  // The cache's time bounds are CacheSettings' defaults (1 h, 15 min, 60 s
  // without SOA, 5 s for failures); only its size is a setting.
  r.dns.cache.maxEntries = static_cast<size_t>(cfg.integer("mtad", "dns_cache_size"));
  r.connection.connectTimeout = cfg.duration("mtad", "remote_connect_timeout");
  // The connection cache: how long a connection with no message waiting
  // stays open for the next message to its destination.
  r.connection.idleTimeout = cfg.duration("mtad", "remote_connection_cache_time");
  s.stateRetry = cfg.duration("mtad", "state_save_retry");
  // Remote: more messages under way than connections, so that a
  // connection that ends a message finds the next one for the same
  // destination already waiting (RemoteDelivery's per-destination queues)
  // instead of being closed for another destination.
  s.maxDeliveries =
      s.maxLmtp + (s.remoteEnabled ? r.maxConnections + std::max<size_t>(2 * r.maxConnections, 100) : 0);
  return s;
}

// ---------------------------------------------------------------- the manager

struct Qmgr::Delivery {
  explicit Delivery(queue::QueueId i) : id(std::move(i)) {}
  queue::QueueId id;
  std::optional<queue::QueueFile> file;
  queue::MessageState state;  // as loaded
  queue::MessageState next;   // being decided
  int64_t now = 0;
  std::vector<bool> due;
  std::vector<std::vector<TargetOutcome>> outcomes;  // per recipient
  // LMTP recipients (unique user addresses) and where each reply goes:
  // (recipient index, target index).
  std::vector<std::string> lmtpRcpts;
  std::vector<std::vector<std::pair<size_t, size_t>>> lmtpMap;
  size_t batchStart = 0;
  size_t batchSize = 0;
  bool retried = false;
  std::unique_ptr<LmtpClient> client;
  bool lmtpSlot = false;  // holds one of maxLmtp
  // Remote jobs, one per domain: the recipients sent, and for each where
  // its reply goes (recipient index, target index).
  struct Remote {
    std::string domain;
    std::vector<std::string> rcpts;
    std::vector<std::vector<std::pair<size_t, size_t>>> map;
  };
  std::vector<Remote> remote;
  size_t partsPending = 0;  // the LMTP run and the remote jobs not done yet
  bool quarantined = false;
  size_t sidePending = 0;  // side messages (split copy, DSN) being committed
  std::set<queue::CommitTicket> tickets;
  // Admin actions: deferred recipients are due now (flush, retry,
  // release); or every recipient not final is bounced, from `area`, and
  // bounceDone is told how it went.
  bool forced = false;
  queue::Area area = queue::Area::Queue;
  std::vector<AdminDone> bounceDone;
  size_t bounced = 0;
  // A state save or removal of this message is in flight (stateIo); the
  // last part ended meanwhile and waits for it (partsEnded).
  bool saving = false;
  bool partsEnded = false;
};

Qmgr::Qmgr(event_base* base, queue::Queue& queue, auth::Directory& directory, QmgrSettings settings)
    : base_(base),
      queue_(queue),
      directory_(directory),
      settings_(std::move(settings)),
      wake_(base, [this] { pump(); }),
      kicker_(base,
              [this] {
                runAdminQueue();
                finished_.clear();
                deadClients_.clear();
                std::erase_if(retiredRemote_, [](const auto& r) { return r->idle(); });
                pump();
                if (stopping_ && idle() && onIdle_) {
                  auto fn = std::move(onIdle_);
                  onIdle_ = nullptr;
                  fn();
                }
              }),
      rescan_(base, [this] { rescan(); }) {}

Qmgr::~Qmgr() {
  for (auto& [id, d] : active_)
    for (auto t : d->tickets) queue_.cancelCallback(t);
  for (auto t : stopSaves_) queue_.cancelCallback(t);
}

Status Qmgr::start() {
  if (settings_.remoteEnabled) {
    if (!settings_.remoteError.empty()) return Error{settings_.remoteError, EINVAL};
    auto r = RemoteDelivery::create(base_, settings_.remote);
    if (!r) return Error{"remote delivery: " + r.error().message};
    remote_ = std::move(*r);
    if (settings_.remote.relay)
      YLOG_INFO("remote delivery through relay host=%s port=%u", settings_.remote.relay->host.c_str(),
                settings_.remote.relay->port);
  }
  auto ids = queue_.scan();
  if (!ids) return Error{"queue scan: " + ids.error().message, ids.error().errnum};
  int64_t now = nowSeconds();
  for (const auto& id : *ids) schedule(id, now);
  YLOG_INFO("queue manager started messages=%zu lmtp=%s max_deliveries=%zu", ids->size(),
            settings_.lmtp.socketPath.c_str(), settings_.maxDeliveries);
  rescan_.arm(std::chrono::seconds(std::max<int64_t>(settings_.retry.max.count(), 60)));
  return {};
}

void Qmgr::queued(const queue::QueueId& id) {
  if (stopping_) return;  // found by the scan at the next start
  schedule(id, nowSeconds());
}

void Qmgr::reload(QmgrSettings settings) {
  if (settings.remoteEnabled) {
    // New jobs go to a new RemoteDelivery; the old one finishes its jobs.
    Result<std::unique_ptr<RemoteDelivery>> r =
        settings.remoteError.empty() ? RemoteDelivery::create(base_, settings.remote)
                                     : Result<std::unique_ptr<RemoteDelivery>>(
                                           Error{settings.remoteError, EINVAL});
    if (!r) {
      YLOG_ERROR("reload: remote delivery keeps the old settings error=\"%s\"",
                 r.error().message.c_str());
      settings.remote = settings_.remote;
      settings.remoteEnabled = settings_.remoteEnabled && remote_ != nullptr;
    } else {
      if (remote_) {
        remote_->closeIdle();
        retiredRemote_.push_back(std::move(remote_));
      }
      remote_ = std::move(*r);
    }
  }
  settings_ = std::move(settings);
  // Idle connections were made with the old settings (socket path).
  for (auto& c : idleClients_) deadClients_.push_back(std::move(c));
  idleClients_.clear();
  kick();
}

void Qmgr::stop(std::function<void()> idle) {
  stopping_ = true;
  onIdle_ = std::move(idle);
  wake_.cancel();
  rescan_.cancel();
  for (auto& c : idleClients_) {
    c->close();
    deadClients_.push_back(std::move(c));
  }
  idleClients_.clear();
  // Cached connections close; messages waiting for a connection are
  // answered "not tried" and stay as they were.
  if (remote_) remote_->stop();
  for (auto& r : retiredRemote_) r->stop();
  YLOG_INFO("queue manager stopping active=%zu unsaved=%zu", active_.size(), unsaved_.size());
  saveUnsavedAtStop();
  kick();
}

void Qmgr::saveUnsavedAtStop() {
  for (const auto& [id, state] : unsaved_) {
    if (active_.count(id)) continue;  // its attempt saves it (or keeps it)
    queue::QueueId qid = id;
    auto ticket = std::make_shared<queue::CommitTicket>(0);
    *ticket = queue_.saveStateLater(id, state, [this, qid, ticket](Status st) {
      stopSaves_.erase(*ticket);
      if (st) {
        unsaved_.erase(qid);
        YLOG_INFO("delivery state saved at stop id=%s", qid.str().c_str());
      } else {
        YLOG_ERROR("delivery state not saved at stop: the recipients it reached will be "
                   "delivered again after a restart id=%s error=\"%s\"",
                   qid.str().c_str(), st.error().message.c_str());
      }
      kick();
    });
    stopSaves_.insert(*ticket);
  }
}

bool Qmgr::known(const queue::QueueId& id) const {
  return waiting_.count(id) || readySet_.count(id) || active_.count(id) || parked_.count(id);
}

void Qmgr::schedule(const queue::QueueId& id, int64_t when) {
  if (active_.count(id) || readySet_.count(id)) return;
  parked_.erase(id);
  auto it = waiting_.find(id);
  if (it != waiting_.end()) {
    if (when >= it->second) return;
    byTime_.erase({it->second, id});
    it->second = when;
  } else {
    waiting_.emplace(id, when);
  }
  byTime_.insert({when, id});
  kick();
}

void Qmgr::kick() { kicker_.arm(std::chrono::milliseconds(0)); }

void Qmgr::pump() {
  int64_t now = nowSeconds();
  while (!byTime_.empty() && byTime_.begin()->first <= now) {
    queue::QueueId id = byTime_.begin()->second;
    byTime_.erase(byTime_.begin());
    waiting_.erase(id);
    if (readySet_.insert(id).second) ready_.push_back(id);
  }
  while (!stopping_ && active_.size() < settings_.maxDeliveries && !ready_.empty()) {
    queue::QueueId id = ready_.front();
    ready_.pop_front();
    readySet_.erase(id);
    begin(id);
  }
  if (!byTime_.empty() && !stopping_) {
    int64_t wait = std::max<int64_t>(byTime_.begin()->first - now, 0);
    wake_.arm(std::chrono::seconds(wait));
  } else {
    wake_.cancel();
  }
}

void Qmgr::rescan() {
  auto ids = queue_.scan();
  if (!ids) {
    YLOG_WARN("queue scan failed error=\"%s\"", ids.error().message.c_str());
  } else {
    int64_t now = nowSeconds();
    size_t added = 0;
    for (const auto& id : *ids) {
      if (known(id)) continue;
      schedule(id, now);
      ++added;
    }
    if (added) YLOG_INFO("queue scan found new messages count=%zu", added);
  }
  rescan_.arm(std::chrono::seconds(std::max<int64_t>(settings_.retry.max.count(), 60)));
}

void Qmgr::begin(const queue::QueueId& id) {
  auto [it, inserted] = active_.emplace(id, std::make_unique<Delivery>(id));
  if (!inserted) fatal("queue manager: %s delivered twice at once", id.str().c_str());
  Delivery& d = *it->second;
  d.now = nowSeconds();
  d.forced = forced_.erase(id) > 0;
  if (auto b = bounces_.find(id); b != bounces_.end()) {
    d.area = b->second.first;
    d.bounceDone = std::move(b->second.second);
    bounces_.erase(b);
  }
  auto f = queue_.load(id, d.area);
  if (!f) {
    int e = f.error().errnum;
    if (e == ENOENT) {
      YLOG_DEBUG("queue message gone id=%s", id.str().c_str());
      unsaved_.erase(id);
      finish(d, 0, false);
    } else if (e == EBADMSG) {
      finish(d, 0, false);  // load() quarantined it
    } else {
      YLOG_WARN("cannot open queued message id=%s error=\"%s\"", id.str().c_str(),
                f.error().message.c_str());
      finish(d, d.now + retryDelay(1, settings_.retry).count(), false);
    }
    return;
  }
  d.file.emplace(std::move(*f));
  const size_t n = d.file->envelope().recipients.size();
  auto st = queue_.loadState(id, n);
  if (!st) {
    if (st.error().errnum == EBADMSG) {
      YLOG_ERROR("corrupt state file id=%s error=\"%s\"", id.str().c_str(),
                 st.error().message.c_str());
      if (auto q = queue_.quarantine(id); !q)
        YLOG_ERROR("queue cannot quarantine id=%s error=\"%s\"", id.str().c_str(),
                   q.error().message.c_str());
      finish(d, 0, false);
    } else {
      YLOG_WARN("cannot read state id=%s error=\"%s\"", id.str().c_str(),
                st.error().message.c_str());
      finish(d, d.now + retryDelay(1, settings_.retry).count(), false);
    }
    return;
  }
  d.state = std::move(*st);
  d.next = d.state;
  if (auto u = unsaved_.find(id); u != unsaved_.end()) {
    if (u->second.rcpts.size() == n) {
      // The last attempt's outcomes could not be saved: they are the
      // truth, and they are saved before anything is delivered again.
      d.state = u->second;
      d.next = d.state;
      stateIo(d, &d.state, [this](Delivery& d, Status st) {
        if (!st) {
          YLOG_WARN("delivery state still not saved, message waits id=%s error=\"%s\"",
                    d.id.str().c_str(), st.error().message.c_str());
          finish(d, nowSeconds() + std::max<int64_t>(settings_.stateRetry.count(), 1), false);
          return;
        }
        unsaved_.erase(d.id);
        YLOG_INFO("delivery state saved after an earlier failure id=%s", d.id.str().c_str());
        proceed(d);
      });
      return;
    }
    unsaved_.erase(u);
  }
  proceed(d);
}

void Qmgr::proceed(Delivery& d) {
  const queue::QueueId& id = d.id;
  const size_t n = d.file->envelope().recipients.size();
  if (allFinal(d.state)) {
    // A crash between the last saveState and remove().
    saveAndFinish(d);
    return;
  }
  if (!d.bounceDone.empty()) {
    // The admin's bounce: every recipient not final fails now, through
    // settle() like any failure (DSN first, then the state, then removal).
    const queue::Envelope& env = d.file->envelope();
    d.due.assign(n, false);
    d.outcomes.assign(n, {});
    for (size_t i = 0; i < n; ++i) {
      if (isFinal(d.state.rcpts[i].status)) continue;
      d.due[i] = true;
      ++d.bounced;
      d.outcomes[i].push_back({env.recipients[i].address, TargetStatus::Failed,
                               localReply(554, "5.0.0", "bounced by the administrator")});
    }
    YLOG_NOTICE("bounce requested by the administrator id=%s rcpts=%zu", id.str().c_str(),
                d.bounced);
    settle(d);
    return;
  }
  plan(d);
}

void Qmgr::plan(Delivery& d) {
  const queue::Envelope& env = d.file->envelope();
  const size_t n = env.recipients.size();
  d.due.assign(n, false);
  d.outcomes.assign(n, {});
  std::map<std::string, size_t> lmtpIndex;
  std::map<std::string, size_t> remoteIndex;  // domain -> d.remote
  std::map<std::string, size_t> remoteRcpt;   // address -> index in its job
  bool anyDue = false;
  for (size_t i = 0; i < n; ++i) {
    const RcptState& rs = d.state.rcpts[i];
    if (!isDue(rs, d.now) && !(d.forced && rs.status == RcptStatus::Deferred)) continue;
    d.due[i] = true;
    anyDue = true;
    const std::string& addr = env.recipients[i].address;
    auto& out = d.outcomes[i];
    auth::Resolution res = directory_.resolve(addr);
    if (res.status == auth::Resolution::Status::UnknownUser && !settings_.catchall.empty()) {
      YLOG_INFO("unknown user goes to the catch-all id=%s rcpt=%s catchall=%s", d.id.str().c_str(),
                addr.c_str(), settings_.catchall.c_str());
      res = directory_.resolve(settings_.catchall);
    }
    switch (res.status) {
      case auth::Resolution::Status::Ok:
        for (const auto& u : res.users) {
          auto [pos, added] = lmtpIndex.emplace(u.address, d.lmtpRcpts.size());
          if (added) {
            d.lmtpRcpts.push_back(u.address);
            d.lmtpMap.emplace_back();
          }
          d.lmtpMap[pos->second].push_back({i, out.size()});
          out.push_back({u.address, TargetStatus::Deferred, ClientReply()});
        }
        for (const auto& r : res.remote) {
          if (!remote_) {
            out.push_back({r, TargetStatus::Remote,
                           localReply(451, "4.4.0", "remote delivery not available")});
            continue;
          }
          size_t at = r.rfind('@');
          std::string domain = toLower(at == std::string::npos ? r : r.substr(at + 1));
          auto [pos, added] = remoteIndex.emplace(domain, d.remote.size());
          if (added) d.remote.push_back({domain, {}, {}});
          Delivery::Remote& job = d.remote[pos->second];
          auto [rpos, radded] = remoteRcpt.emplace(r, job.rcpts.size());
          if (radded) {
            job.rcpts.push_back(r);
            job.map.emplace_back();
          }
          job.map[rpos->second].push_back({i, out.size()});
          TargetOutcome t{r, TargetStatus::Deferred,
                          localReply(451, "4.4.0", "remote delivery did not answer")};
          t.remote = true;
          out.push_back(std::move(t));
        }
        if (out.empty())
          out.push_back({addr, TargetStatus::Failed,
                         localReply(550, "5.1.1", addr + ": address has no destination")});
        break;
      case auth::Resolution::Status::UnknownUser:
        out.push_back(
            {addr, TargetStatus::Failed, localReply(550, "5.1.1", addr + ": unknown user")});
        break;
      case auth::Resolution::Status::BadAddress:
        out.push_back({addr, TargetStatus::Failed,
                       localReply(550, "5.1.3", addr + ": bad recipient address")});
        break;
      case auth::Resolution::Status::AliasError:
      case auth::Resolution::Status::TempFail:
        // The admin can fix these: try again later.
        out.push_back({addr, TargetStatus::Deferred, localReply(451, "4.3.0", res.error)});
        break;
    }
  }
  if (!anyDue) {
    int64_t wake = nextWake(d.state);
    finish(d, wake, wake == 0);
    return;
  }
  d.partsPending = (d.lmtpRcpts.empty() ? 0 : 1) + d.remote.size();
  if (d.partsPending == 0) {
    settle(d);
    return;
  }
  for (size_t k = 0; k < d.remote.size(); ++k) startRemote(d, k);
  if (!d.lmtpRcpts.empty()) startLmtp(d);
}

void Qmgr::startLmtp(Delivery& d) {
  if (lmtpSlots_ >= std::max<size_t>(settings_.maxLmtp, 1)) {
    lmtpWaiting_.push_back(d.id);
    return;
  }
  ++lmtpSlots_;
  d.lmtpSlot = true;
  d.batchStart = 0;
  runLmtp(d);
}

void Qmgr::endLmtp(Delivery& d) {
  releaseClient(std::move(d.client));
  if (!d.lmtpSlot) return;
  d.lmtpSlot = false;
  --lmtpSlots_;
  while (!lmtpWaiting_.empty() && lmtpSlots_ < std::max<size_t>(settings_.maxLmtp, 1)) {
    queue::QueueId next = lmtpWaiting_.front();
    lmtpWaiting_.pop_front();
    auto it = active_.find(next);
    if (it == active_.end()) continue;
    ++lmtpSlots_;
    it->second->lmtpSlot = true;
    it->second->batchStart = 0;
    runLmtp(*it->second);
  }
}

void Qmgr::startRemote(Delivery& d, size_t k) {
  const queue::Envelope& env = d.file->envelope();
  const Delivery::Remote& job = d.remote[k];
  RemoteJob rj;
  rj.domain = job.domain;
  rj.file = &*d.file;
  rj.logId = d.id.str();
  SmtpMessage& m = rj.message;
  m.sender = env.nullSender ? std::string() : env.sender;
  m.body = env.body;
  m.smtputf8 = env.smtputf8;
  m.ret = env.ret;
  m.envid = env.envid;
  m.size = d.file->size();
  for (size_t j = 0; j < job.rcpts.size(); ++j) {
    // DSN parameters of the queued recipient the target came from (the
    // first one, when an address is reached by several).
    const queue::Recipient& orig = env.recipients[job.map[j].front().first];
    SmtpRecipient r;
    r.address = job.rcpts[j];
    r.notify = orig.notify;
    if (!orig.orcptType.empty()) {
      r.orcptType = orig.orcptType;
      r.orcpt = orig.orcpt;
    } else if (orig.address != r.address) {
      r.orcptType = "rfc822";
      r.orcpt = orig.address;
    }
    m.recipients.push_back(std::move(r));
  }
  Delivery* dp = &d;
  remote_->deliver(std::move(rj),
                   [this, dp, k](RemoteResult r) { remoteDone(*dp, k, std::move(r)); });
}

void Qmgr::remoteDone(Delivery& d, size_t k, RemoteResult result) {
  const Delivery::Remote& job = d.remote[k];
  for (size_t j = 0; j < job.rcpts.size() && j < result.replies.size(); ++j) {
    for (auto [rcpt, target] : job.map[j]) {
      TargetOutcome& t = d.outcomes[rcpt][target];
      t.reply = result.replies[j];
      t.status = result.notTried ? TargetStatus::NotTried : classify(t.reply);
      t.dsnPassed = result.dsnPassed;
      t.via = result.host;
    }
  }
  partDone(d);
}

void Qmgr::partDone(Delivery& d) {
  if (d.partsPending == 0) fatal("queue manager: delivery part count underflow");
  if (--d.partsPending > 0) {
    if (!d.quarantined) saveDelivered(d);
    return;
  }
  if (d.saving) {
    d.partsEnded = true;  // saveDelivered's callback goes on
    return;
  }
  endParts(d);
}

void Qmgr::endParts(Delivery& d) {
  d.partsEnded = false;
  if (d.quarantined) {
    finish(d, 0, false);
    return;
  }
  settle(d);
}

void Qmgr::runLmtp(Delivery& d) {
  if (!d.client) d.client = acquireClient();
  d.batchSize = std::min(d.lmtpRcpts.size() - d.batchStart,
                         std::max<size_t>(settings_.maxRecipientsPerTransaction, 1));
  const queue::Envelope& env = d.file->envelope();
  LmtpRequest req;
  req.sender = env.nullSender ? std::string() : env.sender;
  req.body = env.body;
  req.smtputf8 = env.smtputf8;
  req.recipients.assign(d.lmtpRcpts.begin() + static_cast<ptrdiff_t>(d.batchStart),
                        d.lmtpRcpts.begin() + static_cast<ptrdiff_t>(d.batchStart + d.batchSize));
  req.file = &*d.file;
  req.logId = d.id.str();
  Delivery* dp = &d;
  d.client->send(std::move(req), [this, dp](LmtpResult r) { lmtpDone(*dp, std::move(r)); });
}

void Qmgr::lmtpDone(Delivery& d, LmtpResult result) {
  if (result.retryable && !d.retried) {
    // mdad closed the idle connection as we reused it: nothing was
    // delivered; once more on a new connection.
    d.retried = true;
    YLOG_DEBUG("lmtp connection went stale, reconnecting id=%s", d.id.str().c_str());
    runLmtp(d);
    return;
  }
  if (result.fileError && result.fileError->errnum == EBADMSG) {
    endLmtp(d);
    if (auto q = queue_.quarantine(d.id); !q)
      YLOG_ERROR("queue cannot quarantine id=%s error=\"%s\"", d.id.str().c_str(),
                 q.error().message.c_str());
    d.quarantined = true;
    partDone(d);
    return;
  }
  for (size_t k = 0; k < d.batchSize && k < result.replies.size(); ++k) {
    const ClientReply& reply = result.replies[k];
    for (auto [rcpt, target] : d.lmtpMap[d.batchStart + k]) {
      TargetOutcome& t = d.outcomes[rcpt][target];
      t.reply = reply;
      t.status = classify(reply);
    }
  }
  d.batchStart += d.batchSize;
  if (d.batchStart < d.lmtpRcpts.size()) {
    d.retried = false;
    runLmtp(d);
    return;
  }
  endLmtp(d);
  partDone(d);
}

void Qmgr::saveDelivered(Delivery& d) {
  if (d.saving) return;  // one save at a time; settle() saves the rest
  const queue::Envelope& env = d.file->envelope();
  queue::MessageState next = d.state;
  std::vector<size_t> done;
  for (size_t i = 0; i < d.due.size(); ++i) {
    const std::vector<TargetOutcome>& out = d.outcomes[i];
    if (!d.due[i] || out.empty()) continue;
    const queue::Recipient& rcpt = env.recipients[i];
    // Only a real 2xx makes a target Delivered: the placeholders of the
    // parts still running are Deferred.
    if (!std::all_of(out.begin(), out.end(), [&](const TargetOutcome& t) {
          return t.status == TargetStatus::Delivered && !wantsSuccessReport(rcpt, t);
        }))
      continue;
    next.rcpts[i] = decide(d.state.rcpts[i], out, d.now, env.arrivalTime, settings_.retry).state;
    done.push_back(i);
  }
  if (done.empty()) return;
  auto saved = std::make_shared<queue::MessageState>(std::move(next));
  stateIo(d, saved.get(), [this, saved, done](Delivery& d, Status st) {
    if (!st) {
      // settle() saves them with the rest.
      YLOG_WARN("cannot save delivery state yet id=%s error=\"%s\"", d.id.str().c_str(),
                st.error().message.c_str());
    } else {
      const queue::Envelope& env = d.file->envelope();
      for (size_t i : done) {
        Verdict v;
        v.state = saved->rcpts[i];
        for (const auto& t : d.outcomes[i])
          logOutcome(d.id.str(), env.recipients[i], t, v, false, d.now);
        d.due[i] = false;  // settle() leaves it alone
        d.next.rcpts[i] = saved->rcpts[i];
      }
      d.state = *saved;
    }
    if (d.partsEnded)
      endParts(d);
    else if (st && d.partsPending > 0)
      saveDelivered(d);  // parts that answered meanwhile (after a failure: settle())
  });
}

void Qmgr::settle(Delivery& d) {
  const queue::Envelope& env = d.file->envelope();
  const char* id = d.id.str().c_str();
  std::vector<std::pair<size_t, std::string>> splitTargets;
  std::vector<size_t> splitRcpts;
  std::vector<std::pair<size_t, Verdict::Failure>> dsn;
  std::vector<std::pair<size_t, Verdict::Failure>> delayed;
  std::vector<std::pair<size_t, Verdict::Failure>> succeeded;
  const bool expired = d.now >= env.arrivalTime + settings_.retry.lifetime.count();
  const int64_t warnAt = env.arrivalTime + settings_.delayWarning.count();
  for (size_t i = 0; i < d.due.size(); ++i) {
    if (!d.due[i]) continue;
    const queue::Recipient& rcpt = env.recipients[i];
    Verdict v = decide(d.state.rcpts[i], d.outcomes[i], d.now, env.arrivalTime, settings_.retry);
    for (const auto& t : d.outcomes[i]) {
      if (t.status == TargetStatus::Remote || t.status == TargetStatus::NotTried) continue;
      logOutcome(d.id.str(), rcpt, t, v, expired, d.now);
      if (wantsSuccessReport(rcpt, t))
        succeeded.push_back({i, {t.address, "2.0.0", t.reply, t.remote ? "relayed" : "delivered"}});
    }
    // The attempt that crosses the delay_warning age sends the one warning.
    if (v.state.status == RcptStatus::Deferred && v.split.empty() &&
        settings_.delayWarning.count() > 0 && wantsDelayDsn(rcpt.notify) &&
        d.state.rcpts[i].lastAttempt < warnAt && d.now >= warnAt) {
      for (const auto& t : d.outcomes[i])
        if (t.status == TargetStatus::Deferred)
          delayed.push_back({i, {t.address, dsnStatus(t.reply), t.reply, "delayed"}});
    }
    d.next.rcpts[i] = v.state;
    if (v.remotePending && remoteLogged_.insert(d.id).second)
      YLOG_NOTICE("remote delivery not available: remote recipients stay queued id=%s", id);
    if (!v.split.empty()) {
      for (auto& a : v.split) splitTargets.push_back({i, std::move(a)});
      splitRcpts.push_back(i);
    }
    if (!v.failures.empty() && !wantsFailureDsn(rcpt.notify)) {
      YLOG_INFO("no bounce: NOTIFY without FAILURE id=%s rcpt=%s", id, rcpt.address.c_str());
      continue;
    }
    for (auto& f : v.failures) dsn.push_back({i, std::move(f)});
  }
  if (!splitTargets.empty()) enqueueSplit(d, splitTargets, std::move(splitRcpts));
  if (!dsn.empty()) {
    // RFC 5321 §4.5.5 / §6.1: never a report to <>. A failed message from
    // <> goes to the postmaster once; a failed report to the postmaster
    // stops here.
    bool toPostmaster = !settings_.postmaster.empty();
    for (const auto& [i, f] : dsn)
      if (iequals(env.recipients[i].address, settings_.postmaster)) toPostmaster = false;
    if (!env.nullSender)
      enqueueDsn(d, std::move(dsn), DsnKind::Failure, env.sender);
    else if (toPostmaster)
      enqueueDsn(d, std::move(dsn), DsnKind::Failure, settings_.postmaster);
    else
      YLOG_NOTICE("bounce dropped: the failed message is itself a report to the postmaster "
                  "(sender <>) id=%s rcpts=%zu",
                  id, dsn.size());
  }
  if (!env.nullSender) {
    if (!delayed.empty()) enqueueDsn(d, std::move(delayed), DsnKind::Delay, env.sender);
    if (!succeeded.empty()) enqueueDsn(d, std::move(succeeded), DsnKind::Success, env.sender);
  }
  if (d.sidePending == 0) saveAndFinish(d);
}

namespace {

// A side message failed: its recipients are tried again later, as if the
// attempt had failed temporarily.
void revertTo(queue::MessageState& next, const queue::MessageState& old,
              const std::vector<size_t>& rcpts, int64_t now, const RetryPolicy& policy,
              const std::string& why) {
  for (size_t i : rcpts) {
    RcptState s = old.rcpts[i];
    s.status = RcptStatus::Deferred;
    s.attempts += 1;
    s.lastAttempt = now;
    s.nextAttempt = now + retryDelay(s.attempts, policy).count();
    s.reply = "451 4.3.0 " + why;
    next.rcpts[i] = s;
  }
}

// Streams the message bytes of `file` into `msg`; with `headers`, only the
// header section.
Status copyMessage(const queue::QueueFile& file, queue::PendingMessage& msg, bool headers) {
  auto reader = file.reader();
  HeaderSection section;
  std::string part;
  for (;;) {
    auto chunk = reader.next();
    if (!chunk) return chunk.error();
    if (chunk->empty()) return {};
    if (!headers) {
      if (auto st = msg.append(*chunk); !st) return st;
      continue;
    }
    part.clear();
    section.feed(*chunk, part);
    if (auto st = msg.append(part); !st) return st;
    if (section.done()) return {};
  }
}

}  // namespace

void Qmgr::enqueueSplit(Delivery& d, const std::vector<std::pair<size_t, std::string>>& targets,
                        std::vector<size_t> rcpts) {
  const queue::Envelope& env = d.file->envelope();
  queue::Envelope e = env;
  e.recipients.clear();
  std::set<std::string> seen;
  for (const auto& [i, address] : targets) {
    if (!seen.insert(address).second) continue;
    const queue::Recipient& orig = env.recipients[i];
    queue::Recipient r;
    r.address = address;
    r.notify = orig.notify;
    if (!orig.orcptType.empty()) {
      r.orcptType = orig.orcptType;
      r.orcpt = orig.orcpt;
    } else {
      r.orcptType = "rfc822";
      r.orcpt = orig.address;
    }
    e.recipients.push_back(std::move(r));
  }
  auto msg = queue_.begin(e);
  Status copied = msg ? copyMessage(*d.file, *msg, false) : Status(msg.error());
  if (!copied) {
    YLOG_ERROR("cannot queue the remaining targets id=%s error=\"%s\"", d.id.str().c_str(),
               copied.error().message.c_str());
    if (msg) msg->abort();
    revertTo(d.next, d.state, rcpts, d.now, settings_.retry,
             "cannot queue the remaining targets: " + copied.error().message);
    return;
  }
  ++d.sidePending;
  Delivery* dp = &d;
  auto ticket = std::make_shared<queue::CommitTicket>(0);
  *ticket = queue_.commit(std::move(*msg), [this, dp, rcpts, ticket](Result<queue::QueueId> r) {
    dp->tickets.erase(*ticket);
    if (r) {
      YLOG_INFO("remaining targets moved id=%s new=%s", dp->id.str().c_str(), r->str().c_str());
      for (size_t i : rcpts)
        dp->next.rcpts[i].reply += " (other targets queued as " + r->str() + ")";
      queued(*r);
    } else {
      YLOG_ERROR("cannot queue the remaining targets id=%s error=\"%s\"", dp->id.str().c_str(),
                 r.error().message.c_str());
      revertTo(dp->next, dp->state, rcpts, dp->now, settings_.retry,
               "cannot queue the remaining targets: " + r.error().message);
    }
    sideDone(*dp);
  });
  d.tickets.insert(*ticket);
}

void Qmgr::enqueueDsn(Delivery& d, std::vector<std::pair<size_t, Verdict::Failure>> failures,
                      DsnKind kind, const std::string& to) {
  const queue::Envelope& env = d.file->envelope();
  const bool revert = kind == DsnKind::Failure;
  DsnRequest req;
  req.kind = kind;
  req.reportingMta = settings_.hostname;
  req.queueId = d.id.str();
  req.sender = to;
  req.envid = env.envid;
  req.arrivalTime = env.arrivalTime;
  req.now = d.now;
  // RFC 3461 §4.3: RET is about failure reports; the others carry headers.
  req.headersOnly = env.ret == queue::Ret::Headers || kind != DsnKind::Failure;
  req.eightBit = env.body == queue::Body::EightBitMime || env.body == queue::Body::BinaryMime;
  req.boundary = makeBoundary(d.id.str());
  std::vector<size_t> rcpts;
  for (const auto& [i, f] : failures) {
    const queue::Recipient& orig = env.recipients[i];
    DsnRecipient r;
    r.finalRecipient = f.address;
    if (!orig.orcptType.empty()) {
      r.originalType = orig.orcptType;
      r.originalRecipient = orig.orcpt;
    } else if (f.address != orig.address) {
      r.originalType = "rfc822";
      r.originalRecipient = orig.address;
    }
    r.status = f.status;
    r.diagnostic = f.reply.summary();
    r.lastAttempt = d.now;
    r.action = f.action;
    if (kind == DsnKind::Delay)
      r.willRetryUntil = env.arrivalTime + settings_.retry.lifetime.count();
    req.recipients.push_back(std::move(r));
    if (revert && (rcpts.empty() || rcpts.back() != i)) rcpts.push_back(i);
  }
  static const char* const kKinds[] = {"bounce", "delay report", "success report"};
  const char* what = kKinds[static_cast<int>(kind)];
  DsnParts parts = makeDsn(req);

  queue::Envelope e;
  e.nullSender = true;
  queue::Recipient dest;
  dest.address = to;
  e.recipients.push_back(std::move(dest));
  e.body = req.eightBit ? queue::Body::EightBitMime : queue::Body::Unspecified;
  e.smtputf8 = env.smtputf8;
  e.arrivalTime = d.now;
  e.heloName = settings_.hostname;

  auto msg = queue_.begin(e);
  Status built = msg ? msg->append(parts.head) : Status(msg.error());
  if (built) built = copyMessage(*d.file, *msg, req.headersOnly);
  if (built) built = msg->append(parts.tail);
  if (!built) {
    YLOG_ERROR("cannot queue %s id=%s error=\"%s\"", what, d.id.str().c_str(),
               built.error().message.c_str());
    if (msg) msg->abort();
    revertTo(d.next, d.state, rcpts, d.now, settings_.retry,
             "cannot queue the bounce: " + built.error().message);
    return;
  }
  ++d.sidePending;
  Delivery* dp = &d;
  std::string sender = to;
  size_t count = failures.size();
  auto ticket = std::make_shared<queue::CommitTicket>(0);
  *ticket = queue_.commit(
      std::move(*msg), [this, dp, rcpts, ticket, sender, count, what](Result<queue::QueueId> r) {
        dp->tickets.erase(*ticket);
        if (r) {
          YLOG_INFO("%s queued id=%s dsn=%s to=<%s> rcpts=%zu", what, dp->id.str().c_str(),
                    r->str().c_str(), sender.c_str(), count);
          queued(*r);
        } else {
          YLOG_ERROR("cannot queue %s id=%s error=\"%s\"", what, dp->id.str().c_str(),
                     r.error().message.c_str());
          revertTo(dp->next, dp->state, rcpts, dp->now, settings_.retry,
                   "cannot queue the bounce: " + r.error().message);
        }
        sideDone(*dp);
      });
  d.tickets.insert(*ticket);
}

void Qmgr::sideDone(Delivery& d) {
  if (d.sidePending == 0) fatal("queue manager: side message count underflow");
  if (--d.sidePending == 0) saveAndFinish(d);
}

void Qmgr::stateIo(Delivery& d, const queue::MessageState* state,
                   std::function<void(Delivery&, Status)> then) {
  if (d.saving) fatal("queue manager: two state operations at once for %s", d.id.str().c_str());
  d.saving = true;
  Delivery* dp = &d;
  auto ticket = std::make_shared<queue::CommitTicket>(0);
  auto done = [this, dp, ticket, then = std::move(then)](Status st) {
    dp->tickets.erase(*ticket);
    dp->saving = false;
    then(*dp, std::move(st));
  };
  // The callback never runs inside the call: *ticket is set first.
  *ticket = state ? queue_.saveStateLater(d.id, *state, std::move(done))
                  : queue_.removeLater(d.id, std::move(done));
  d.tickets.insert(*ticket);
}

void Qmgr::saveAndFinish(Delivery& d) {
  if (allFinal(d.next)) {
    // Every recipient is final: removing the message is the one durable
    // step needed (its state file goes with it). Saving the final state
    // first would cost two more fsyncs per message for a file deleted at
    // once. A crash before the removal delivers again, as a crash between
    // the delivery and the save would.
    stateIo(d, nullptr, [this](Delivery& d, Status st) {
      if (st || st.error().errnum == ENOENT) {
        YLOG_INFO("removed id=%s: every recipient done", d.id.str().c_str());
        remoteLogged_.erase(d.id);
        unsaved_.erase(d.id);
        finish(d, 0, false);
        return;
      }
      YLOG_ERROR("cannot remove delivered message id=%s error=\"%s\"", d.id.str().c_str(),
                 st.error().message.c_str());
      // Keep the outcomes, so the recipients done are not tried again.
      saveNext(d);
    });
    return;
  }
  if (d.next == d.state) {
    int64_t wake = nextWake(d.next);
    finish(d, wake, wake == 0);
    return;
  }
  saveNext(d);
}

void Qmgr::saveNext(Delivery& d) {
  stateIo(d, &d.next, [this](Delivery& d, Status st) {
    if (!st) {
      keepUnsaved(d, st.error());
      return;
    }
    unsaved_.erase(d.id);
    if (allFinal(d.next)) {  // the removal failed: try it again later
      finish(d, d.now + retryDelay(1, settings_.retry).count(), false);
      return;
    }
    int64_t wake = nextWake(d.next);
    finish(d, wake, wake == 0);
  });
}

void Qmgr::keepUnsaved(Delivery& d, const Error& e) {
  // The outcomes stay known here, so the recipients reached are not
  // delivered again while mtad runs (a restart before a save succeeds
  // forgets them: they are delivered again, at least once). The message
  // waits: its next attempt first saves them, then goes on.
  if (stopping_)
    YLOG_ERROR("delivery state not saved at stop: the recipients it reached will be delivered "
               "again after a restart id=%s error=\"%s\"",
               d.id.str().c_str(), e.message.c_str());
  else
    YLOG_ERROR("cannot save delivery state, kept in memory id=%s retry_in=%llds error=\"%s\"",
               d.id.str().c_str(), static_cast<long long>(settings_.stateRetry.count()),
               e.message.c_str());
  unsaved_[d.id] = d.next;
  finish(d, nowSeconds() + std::max<int64_t>(settings_.stateRetry.count(), 1), false);
}

void Qmgr::finish(Delivery& d, int64_t next, bool parked) {
  queue::QueueId id = d.id;
  endLmtp(d);
  auto it = active_.find(id);
  if (it == active_.end())
    fatal("queue manager: finishing %s, which is not active", id.str().c_str());
  if (!d.bounceDone.empty()) {
    Result<std::string> r = std::string();
    if (!d.file)
      r = Error{"no message " + id.str() + " in the queue", ENOENT};
    else if (allFinal(d.next))
      r = "bounced " + std::to_string(d.bounced) + (d.bounced == 1 ? " recipient" : " recipients");
    else
      r = Error{"the report could not be queued (see the log): the recipients stay deferred",
                EAGAIN};
    for (auto& done : d.bounceDone) answer(std::move(done), r);
    d.bounceDone.clear();
  }
  finished_.push_back(std::move(it->second));
  active_.erase(it);
  if (next > 0)
    schedule(id, next);
  else if (parked)
    parked_.insert(id);
  if (auto w = afterActive_.find(id); w != afterActive_.end()) {
    for (auto& fn : w->second) adminQueue_.push_back(std::move(fn));
    afterActive_.erase(w);
  }
  kick();
}

// ---------------------------------------------------------------- admin actions

void Qmgr::answer(AdminDone done, Result<std::string> r) {
  adminQueue_.push_back([done = std::move(done), r = std::move(r)] { done(r); });
  kick();
}

void Qmgr::runAdminQueue() {
  // An action may queue more (an answer): take the list first.
  while (!adminQueue_.empty()) {
    auto fns = std::move(adminQueue_);
    adminQueue_.clear();
    for (auto& fn : fns) fn();
  }
}

queue::Area Qmgr::locate(const queue::QueueId& id) const {
  struct stat st;
  for (queue::Area a : {queue::Area::Queue, queue::Area::Hold})
    if (::lstat(queue::filePath(queue_.spoolDir(), a, id).c_str(), &st) == 0 && S_ISREG(st.st_mode))
      return a;
  return queue::Area::Tmp;
}

void Qmgr::forget(const queue::QueueId& id) {
  if (auto it = waiting_.find(id); it != waiting_.end()) {
    byTime_.erase({it->second, id});
    waiting_.erase(it);
  }
  if (readySet_.erase(id)) std::erase(ready_, id);
  parked_.erase(id);
  forced_.erase(id);
}

void Qmgr::whenInactive(const queue::QueueId& id, std::function<void()> fn) {
  if (active_.count(id)) {
    YLOG_INFO("admin action waits for the attempt under way id=%s", id.str().c_str());
    afterActive_[id].push_back(std::move(fn));
  } else {
    adminQueue_.push_back(std::move(fn));
    kick();
  }
}

namespace {
Error noSuchMessage(const queue::QueueId& id) {
  return Error{"no message " + id.str() + " in the queue", ENOENT};
}
}  // namespace

void Qmgr::flush(AdminDone done) {
  if (stopping_) return answer(std::move(done), Error{"mtad is stopping", EAGAIN});
  int64_t now = nowSeconds();
  std::vector<queue::QueueId> ids;
  for (const auto& [id, when] : waiting_) ids.push_back(id);
  for (const auto& id : parked_) ids.push_back(id);
  for (const auto& id : ids) {
    forced_.insert(id);
    schedule(id, now);
  }
  YLOG_NOTICE("flush requested by the administrator messages=%zu", ids.size());
  answer(std::move(done), "scheduled " + std::to_string(ids.size()) +
                              (ids.size() == 1 ? " message" : " messages"));
}

void Qmgr::retry(const queue::QueueId& id, AdminDone done) {
  if (stopping_) return answer(std::move(done), Error{"mtad is stopping", EAGAIN});
  queue::Area a = locate(id);
  if (a == queue::Area::Hold)
    return answer(std::move(done),
                  Error{"message " + id.str() + " is on hold: release it instead", EBUSY});
  if (a != queue::Area::Queue) return answer(std::move(done), noSuchMessage(id));
  YLOG_NOTICE("retry requested by the administrator id=%s", id.str().c_str());
  if (active_.count(id)) return answer(std::move(done), std::string("an attempt is under way"));
  forced_.insert(id);
  schedule(id, nowSeconds());
  answer(std::move(done), std::string("scheduled"));
}

void Qmgr::hold(const queue::QueueId& id, AdminDone done) {
  if (stopping_) return answer(std::move(done), Error{"mtad is stopping", EAGAIN});
  if (locate(id) == queue::Area::Tmp) return answer(std::move(done), noSuchMessage(id));
  whenInactive(id, [this, id, done = std::move(done)] {
    queue::Area a = locate(id);
    if (a == queue::Area::Hold) return done(std::string("already on hold"));
    if (a != queue::Area::Queue) return done(noSuchMessage(id));  // delivered meanwhile
    forget(id);
    bounces_.erase(id);
    if (auto st = queue_.hold(id); !st) {
      YLOG_ERROR("cannot hold id=%s error=\"%s\"", id.str().c_str(), st.error().message.c_str());
      schedule(id, nowSeconds());
      return done(st.error());
    }
    YLOG_NOTICE("held by the administrator id=%s", id.str().c_str());
    done(std::string("held"));
  });
}

void Qmgr::release(const queue::QueueId& id, AdminDone done) {
  if (stopping_) return answer(std::move(done), Error{"mtad is stopping", EAGAIN});
  queue::Area a = locate(id);
  if (a == queue::Area::Queue)
    return answer(std::move(done), Error{"message " + id.str() + " is not on hold", EBUSY});
  if (a != queue::Area::Hold) return answer(std::move(done), noSuchMessage(id));
  whenInactive(id, [this, id, done = std::move(done)] {
    if (locate(id) != queue::Area::Hold) return done(noSuchMessage(id));
    if (auto st = queue_.release(id); !st) {
      YLOG_ERROR("cannot release id=%s error=\"%s\"", id.str().c_str(),
                 st.error().message.c_str());
      return done(st.error());
    }
    YLOG_NOTICE("released by the administrator id=%s", id.str().c_str());
    forced_.insert(id);
    schedule(id, nowSeconds());
    done(std::string("released"));
  });
}

void Qmgr::remove(const queue::QueueId& id, AdminDone done) {
  if (stopping_) return answer(std::move(done), Error{"mtad is stopping", EAGAIN});
  if (locate(id) == queue::Area::Tmp) return answer(std::move(done), noSuchMessage(id));
  whenInactive(id, [this, id, done = std::move(done)] {
    if (locate(id) == queue::Area::Tmp) return done(noSuchMessage(id));  // delivered meanwhile
    forget(id);
    bounces_.erase(id);
    remoteLogged_.erase(id);
    unsaved_.erase(id);
    if (auto st = queue_.remove(id); !st) {
      YLOG_ERROR("cannot delete id=%s error=\"%s\"", id.str().c_str(), st.error().message.c_str());
      if (locate(id) == queue::Area::Queue) schedule(id, nowSeconds());
      return done(st.error());
    }
    YLOG_NOTICE("deleted by the administrator id=%s", id.str().c_str());
    done(std::string("deleted"));
  });
}

void Qmgr::bounce(const queue::QueueId& id, AdminDone done) {
  if (stopping_) return answer(std::move(done), Error{"mtad is stopping", EAGAIN});
  if (locate(id) == queue::Area::Tmp) return answer(std::move(done), noSuchMessage(id));
  whenInactive(id, [this, id, done = std::move(done)] {
    queue::Area a = locate(id);
    if (a == queue::Area::Tmp) return done(noSuchMessage(id));
    // begin() sees the request and bounces instead of delivering; a held
    // message is bounced from hold/.
    forget(id);
    auto& entry = bounces_[id];
    entry.first = a;
    entry.second.push_back(done);
    if (readySet_.insert(id).second) ready_.push_front(id);
    kick();
  });
}

std::unique_ptr<LmtpClient> Qmgr::acquireClient() {
  while (!idleClients_.empty()) {
    auto c = std::move(idleClients_.back());
    idleClients_.pop_back();
    if (c->ready()) return c;
    deadClients_.push_back(std::move(c));
  }
  auto c = std::make_unique<LmtpClient>(base_, settings_.lmtp);
  LmtpClient* raw = c.get();
  c->setOnIdleClose([this, raw] { dropIdleClient(raw); });
  return c;
}

void Qmgr::releaseClient(std::unique_ptr<LmtpClient> c) {
  if (!c) return;
  if (!stopping_ && c->ready() && idleClients_.size() < settings_.maxLmtp) {
    idleClients_.push_back(std::move(c));
    return;
  }
  if (!c->disconnected()) c->close();
  deadClients_.push_back(std::move(c));
  kick();
}

void Qmgr::dropIdleClient(LmtpClient* c) {
  for (auto it = idleClients_.begin(); it != idleClients_.end(); ++it) {
    if (it->get() != c) continue;
    deadClients_.push_back(std::move(*it));
    idleClients_.erase(it);
    kick();
    return;
  }
}

}  // namespace yubin::mtad
