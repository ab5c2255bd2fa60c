// The mdad daemon object; see mdad.hpp.
#include "mdad/mdad.hpp"

#include <unistd.h>

#include <algorithm>

#include "base/log.hpp"
#include "mdad/connection.hpp"
#include "mdad/spool.hpp"
#include "service/privdrop.hpp"

namespace yubin::mdad {
// ---- RecipientPolicy ----

std::optional<smtp::Reply> RecipientPolicy::checkSender(const smtp::Envelope&,
                                                        const mail::Address&) {
  return std::nullopt;
}

std::string RecipientPolicy::addressOf(const mail::Address& rcpt) const {
  if (rcpt.isPostmaster()) {
    const auto& domains = directory_.domains().list();
    return "postmaster@" + (domains.empty() ? std::string("localhost") : domains.front());
  }
  return rcpt.normalized();
}

std::optional<smtp::Reply> RecipientPolicy::checkRecipient(const smtp::Envelope& env,
                                                           const mail::Address& rcpt) {
  std::string address = addressOf(rcpt);
  auth::Resolution r = directory_.resolve(address);
  auto o = resolutionOutcome(r);
  if (!o) return std::nullopt;
  switch (*o) {
    case Outcome::NotLocal:
      YLOG_NOTICE("recipient refused: no local user, mdad does not forward session=%s rcpt=%s",
                  env.clientAddress.c_str(), address.c_str());
      break;
    case Outcome::UnknownUser:
      YLOG_INFO("recipient refused: unknown user session=%s rcpt=%s", env.clientAddress.c_str(),
                address.c_str());
      break;
    default:
      YLOG_WARN("recipient deferred: %s session=%s rcpt=%s", r.error.c_str(),
                env.clientAddress.c_str(), address.c_str());
  }
  return replyFor(*o, false);
}

// ---- Mdad ----

ServerSettings ServerSettings::fromConfig(const config::Config& cfg) {
  ServerSettings s;
  s.smtp.mode = smtp::Mode::Lmtp;
  s.smtp.hostname = cfg.hostname();
  s.smtp.maxMessageSize = cfg.size("mdad", "max_message_size");
  // The client is the local MTA, which already accepted the message: a bare
  // LF is repaired rather than bounced.
  s.smtp.normalizeBareLf = true;
  s.maxConnections = cfg.integer("mdad", "max_connections");
  s.spoolDir = spoolDirOf(cfg);
  // More threads than this only queue up behind the disk.
  s.deliveryWorkers =
      static_cast<size_t>(std::clamp<uint64_t>(cfg.integer("mdad", "delivery_workers"), 1, 64));
  return s;
}

Mdad::Mdad() = default;
Mdad::~Mdad() {
  connections_.clear();  // cancels their deliveries in the pool
  pool_.reset();         // waits for the running ones
  listeners_.clear();
}

Status Mdad::prepare(service::Context& ctx) {
  const config::Config& cfg = ctx.config();
  const std::string dir = spoolDirOf(cfg);
  auto plan = service::planDrop(cfg, "mdad", ::geteuid());
  if (!plan) return plan.error();
  if (plan->devMode) return {};  // start() makes it, as ourselves
  if (auto st = ensurePrivateDir(dir); !st) return Error{"tmp_dir: " + st.error().message};
  if (::chown(dir.c_str(), plan->target.uid, plan->target.gid) != 0)
    return errnoError("tmp_dir: chown " + dir);
  if (::chmod(dir.c_str(), 0700) != 0) return errnoError("tmp_dir: chmod " + dir);
  return {};
}

Status Mdad::start(service::Context& ctx) {
  ctx_ = &ctx;
  base_ = ctx.base();
  const config::Config& cfg = ctx.config();
  settings_ = ServerSettings::fromConfig(cfg);

  // The spool folder must take a file now, not at the first message.
  if (auto st = ensurePrivateDir(settings_.spoolDir); !st)
    return Error{"tmp_dir: " + st.error().message};
  if (auto probe = SpoolFile::create(settings_.spoolDir); !probe)
    return Error{"tmp_dir: " + probe.error().message};

  directory_ = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(cfg));
  if (auto st = directory_->reload(); !st)
    YLOG_WARN("user database: %s (recipients get 451 until it is fixed)",
              st.error().message.c_str());
  policy_ = std::make_unique<RecipientPolicy>(*directory_);
  deliverer_ = std::make_unique<Deliverer>(DeliverySettings::fromConfig(cfg));
  auto pool = event::WorkerPool::start(base_, settings_.deliveryWorkers);
  if (!pool) return Error{"delivery workers: " + pool.error().message};
  pool_ = std::move(*pool);

  auto ls = service::acceptOn(
      ctx, "lmtp_socket", [this](UniqueFd c, const event::Peer& p) { accept(std::move(c), p); });
  if (!ls) return ls.error();
  listeners_ = std::move(*ls);
  if (listeners_.empty()) return Error{"no [mdad] lmtp_socket socket"};
  return {};
}

void Mdad::accept(UniqueFd fd, const event::Peer& peer) {
  smtp::Settings s = settings_.smtp;
  const std::string id = connections_.nextSessionId();
  s.logId = id;
  s.clientAddress = id;  // a Unix socket has no address; log lines carry the session
  std::optional<smtp::Reply> refusal;
  if (stopping_) {
    refusal = smtp::reply(smtp::ReplyId::ShuttingDown, settings_.smtp.hostname);
  } else if (connections_.size() >= settings_.maxConnections) {
    refusal = smtp::Reply{421, "4.7.0", "Too many connections, try again later"};
  }
  if (refusal)
    YLOG_NOTICE("connection refused session=%s reason=\"%s\"", id.c_str(),
                refusal->text.c_str());
  // Unix socket peers: no per-address count.
  Connection* raw =
      connections_.add(std::make_unique<Connection>(*this, std::move(fd), peer, std::move(s)), {});
  if (auto st = raw->start(refusal); !st) {
    YLOG_WARN("cannot start session session=%s error=\"%s\"", id.c_str(),
              st.error().message.c_str());
    closed(raw);
  }
}

void Mdad::closed(Connection* c) {
  if (connections_.remove(c) && stopping_ && connections_.empty() && ctx_) ctx_->exit();
}

void Mdad::reload(const config::Config& cfg) {
  ServerSettings s = ServerSettings::fromConfig(cfg);
  if (s.spoolDir != settings_.spoolDir)
    YLOG_NOTICE("tmp_dir changed: restart mdad to use it old=%s new=%s", settings_.spoolDir.c_str(),
                s.spoolDir.c_str());
  s.spoolDir = settings_.spoolDir;
  if (s.deliveryWorkers != settings_.deliveryWorkers)
    YLOG_NOTICE("delivery_workers changed: restart mdad to use it old=%zu new=%zu",
                settings_.deliveryWorkers, s.deliveryWorkers);
  s.deliveryWorkers = settings_.deliveryWorkers;
  settings_ = s;
  deliverer_->setSettings(DeliverySettings::fromConfig(cfg));
  YLOG_INFO("reloaded");
}

void Mdad::stop(service::Context& ctx) {
  stopping_ = true;
  for (auto& l : listeners_) l->disable();
  connections_.forEach([](Connection& c) { c.shutdown(); });
  if (connections_.empty()) ctx.exit();
}

}  // namespace yubin::mdad
