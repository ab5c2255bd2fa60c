// The mtad daemon object; see mtad.hpp.
#include "mtad/mtad.hpp"

#include <sys/resource.h>

#include <algorithm>

#include "base/log.hpp"
#include "mtad/connection.hpp"
#include "mtad/control.hpp"

namespace yubin::mtad {
ServerSettings ServerSettings::fromConfig(const config::Config& cfg) {
  ServerSettings s;
  s.smtp.mode = smtp::Mode::Smtp;
  s.smtp.hostname = cfg.hostname();
  s.smtp.maxMessageSize = cfg.size("mtad", "max_message_size");
  s.smtp.maxRecipients = cfg.integer("mtad", "max_recipients");
  s.smtp.maxErrors = static_cast<unsigned>(cfg.integer("mtad", "max_errors"));
  s.smtp.normalizeBareLf = cfg.str("mtad", "bare_lf") == "normalize";
  s.smtp.commandTimeout = cfg.duration("mtad", "command_timeout");
  s.smtp.dataTimeout = cfg.duration("mtad", "data_timeout");
  s.smtp.dataMinRate = static_cast<uint64_t>(cfg.integer("mtad", "data_min_rate"));
  s.maxConnections = cfg.integer("mtad", "max_connections");
  s.maxConnectionsPerIp = cfg.integer("mtad", "max_connections_per_ip");
  s.catchall = cfg.str("mtad", "catchall");
  s.tls = cfg.boolean("mtad", "tls") && !cfg.str("global", "tls_cert").empty();
  return s;
}

namespace {

constexpr size_t kQueueWriteBuffer = size_t{128} * 1024;
// The most spare queue files kept ready (the reserve follows the demand:
// about 1.5 times the messages in progress at once, plus 32).
constexpr size_t kQueueSpares = 128;

// Each session holds one descriptor; max_connections of them need a limit
// above the usual soft 1024. Raise the soft limit (up to the hard one, which
// needs no privilege) and say so when even that is short.
void raiseFdLimit(uint64_t maxConnections) {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = static_cast<rlim_t>(maxConnections) + 1024;  // + queue, listeners, LMTP
  if (rl.rlim_cur >= want) return;
  rlim_t target = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
  if (target > rl.rlim_cur) {
    rl.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  }
  if (target < want)
    YLOG_WARN("open file limit %llu is below max_connections + 1024 = %llu; raise the hard limit",
              static_cast<unsigned long long>(target), static_cast<unsigned long long>(want));
}

// RFC 5321 §4.5.1: every local domain must take mail for postmaster. Said
// once at start (and at each reload), per domain, as `yubinctl check` does.
void warnPostmaster(auth::Directory& directory, const config::Config& cfg) {
  for (const auto& d : directory.domainsWithoutPostmaster())
    YLOG_WARN(
        "postmaster@%s reaches no one (RFC 5321 requires it): RCPT TO:<postmaster@%s> gets "
        "550; add an alias in %s or set [global] postmaster",
        d.c_str(), d.c_str(), cfg.str("global", "aliases_file").c_str());
}

}  // namespace

Mtad::Mtad() = default;
Mtad::~Mtad() {
  control_.reset();
  pickup_.reset();
  connections_.clear();
  qmgr_.reset();
  listeners_.clear();
  queue_.reset();
}

Status Mtad::start(service::Context& ctx) {
  ctx_ = &ctx;
  base_ = ctx.base();
  const config::Config& cfg = ctx.config();
  settings_ = ServerSettings::fromConfig(cfg);
  raiseFdLimit(settings_.maxConnections);

  // A message is staged in memory and its queue file created, written,
  // fsynced and renamed by the committer's threads (createOnFlush): on a
  // busy queue, where files come and go, creating one costs ext4 a scan
  // for an inode not recently deleted, and on the event loop that stalls
  // every session (half the loop's time in bench/smtp-ingest's 100 KB
  // profile). A message larger than the buffer has its file created when
  // the buffer first fills. 128 KiB holds most mail; only sessions inside
  // DATA hold it.
  // Spare files (maxSpares): a message is written into an empty queue file
  // made ahead of need whose name is already durable, so its commit is one
  // file fsync (no rename, no directory fsync on the way to the 250), and
  // no file is created on the loop even for a message larger than the
  // buffer. With none ready, the commit takes the tmp/ + rename path.
  auto q = queue::Queue::open({.spoolDir = cfg.str("global", "spool_dir"),
                               .writeBuffer = kQueueWriteBuffer,
                               .createOnFlush = true,
                               .maxSpares = kQueueSpares});
  if (!q) return Error{"queue: " + q.error().message, q.error().errnum};
  queue_ = std::move(*q);
  if (auto st = queue_->attachLoop(base_); !st) return st;

  directory_ = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(cfg));
  if (auto st = directory_->reload(); !st)
    YLOG_WARN("user database: %s (recipients get 451 until it is fixed)",
              st.error().message.c_str());
  warnPostmaster(*directory_, cfg);
  policy_ = std::make_unique<InboundPolicy>(*directory_, settings_.catchall);
  submissionPolicy_ = std::make_unique<SubmissionInPolicy>(*policy_);

  tls_ = settings_.tls ? ctx.tls() : nullptr;
  settings_.smtp.tlsAvailable = tls_ != nullptr;

  for (auto& fd : ctx.takeListeners("listen")) {
    auto l = event::Listener::create(
        base_, std::move(fd),
        [this](UniqueFd c, const event::Peer& p) { accept(std::move(c), p, false); });
    if (!l) return l.error();
    YLOG_INFO("listening on %s", (*l)->name().c_str());
    listeners_.push_back(std::move(*l));
  }
  if (listeners_.empty()) return Error{"no [mtad] listen sockets"};
  // msad's handoff: who may connect is the socket's mode and group
  // ([mtad] submission_socket_mode, _group: msad's group).
  for (auto& fd : ctx.takeListeners("submission_socket")) {
    auto l = event::Listener::create(
        base_, std::move(fd),
        [this](UniqueFd c, const event::Peer& p) { accept(std::move(c), p, true); });
    if (!l) return l.error();
    YLOG_INFO("listening on %s (submission from msad)", (*l)->name().c_str());
    listeners_.push_back(std::move(*l));
  }

  qmgr_ = std::make_unique<Qmgr>(
      base_, *queue_, *directory_,
      QmgrSettings::fromConfig(cfg, settings_.smtp.hostname, settings_.catchall));
  if (auto st = qmgr_->start(); !st) return st;
  // The admin's queue commands, from yubin-master (absent when run alone).
  for (auto& fd : ctx.takeListeners(ipc::kQueueChannelName)) {
    auto c = QueueControl::create(base_, std::move(fd), *queue_, *qmgr_);
    if (!c) return Error{"queue channel: " + c.error().message};
    control_ = std::move(*c);
  }
  // yubin-sendmail's maildrop. Without it mtad still runs (root's
  // yubin-sendmail keeps dropping; the files wait for the next start).
  pickup_ = std::make_unique<Pickup>(base_, *queue_, *directory_, PickupSettings::fromConfig(cfg),
                                     [this](const queue::QueueId& id) { queued(id); });
  if (auto st = pickup_->start(); !st) {
    YLOG_ERROR("pickup: %s (local submission waits in the maildrop)", st.error().message.c_str());
    pickup_.reset();
  }
  return {};
}

void Mtad::queued(const queue::QueueId& id) {
  if (qmgr_) qmgr_->queued(id);
}

void Mtad::exitWhenIdle() {
  if (stopping_ && connections_.empty() && (!qmgr_ || qmgr_->idle()) &&
      (!pickup_ || pickup_->idle()) && ctx_)
    ctx_->exit();
}

void Mtad::accept(UniqueFd fd, const event::Peer& peer, bool submission) {
  smtp::Settings s = settings_.smtp;
  s.clientAddress = peer.ip;
  if (submission) {
    // msad already read the message from its client and repaired bare LFs;
    // it does not speak TLS to us.
    s.normalizeBareLf = true;
    s.tlsAvailable = false;
  }
  s.logId = connections_.nextSessionId();
  std::optional<smtp::Reply> refusal;
  if (stopping_) {
    refusal = smtp::reply(smtp::ReplyId::ShuttingDown, settings_.smtp.hostname);
  } else if (connections_.size() >= settings_.maxConnections) {
    refusal = smtp::reply(smtp::ReplyId::TooManyConnections, settings_.smtp.hostname);
  } else if (!peer.isUnix && connections_.fromIp(peer.ip) >= settings_.maxConnectionsPerIp) {
    refusal = smtp::reply(smtp::ReplyId::TooManyFromAddress, settings_.smtp.hostname);
  }
  if (refusal)
    YLOG_NOTICE("connection refused client=%s reason=\"%s\"", peer.text().c_str(),
                refusal->text.c_str());
  Connection* raw = connections_.add(
      std::make_unique<Connection>(*this, std::move(fd), peer, std::move(s), submission), peer.ip);
  if (auto st = raw->start(refusal); !st) {
    YLOG_WARN("cannot start session client=%s error=\"%s\"", peer.text().c_str(),
              st.error().message.c_str());
    closed(raw);
  }
}

void Mtad::closed(Connection* c) {
  if (connections_.remove(c)) exitWhenIdle();
}

void Mtad::reload(const config::Config& cfg) {
  ServerSettings s = ServerSettings::fromConfig(cfg);
  // The skeleton reloads the certificate itself.
  if (ctx_) tls_ = s.tls ? ctx_->tls() : nullptr;
  s.smtp.tlsAvailable = tls_ != nullptr && s.tls;
  s.tls = s.smtp.tlsAvailable;
  settings_ = s;
  // Connections hold a reference to the policy: update it in place.
  policy_->setCatchall(settings_.catchall);
  directory_->setPostmaster(cfg.str("global", "postmaster"));
  warnPostmaster(*directory_, cfg);
  if (qmgr_)
    qmgr_->reload(QmgrSettings::fromConfig(cfg, settings_.smtp.hostname, settings_.catchall));
  if (pickup_) pickup_->reload(PickupSettings::fromConfig(cfg));
  YLOG_INFO("reloaded");
}

void Mtad::stop(service::Context& ctx) {
  stopping_ = true;
  for (auto& l : listeners_) l->disable();
  connections_.forEach([](Connection& c) { c.shutdown(); });
  // Deliveries under way finish (their outcome is saved); none start.
  if (qmgr_) qmgr_->stop([this] { exitWhenIdle(); });
  if (pickup_) pickup_->stop([this] { exitWhenIdle(); });
  (void)ctx;
  exitWhenIdle();
}

}  // namespace yubin::mtad
