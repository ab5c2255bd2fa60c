// The msad daemon object; see msad.hpp.
#include "msad/msad.hpp"

#include <arpa/inet.h>

#include <algorithm>

#include "base/log.hpp"
#include "msad/connection.hpp"

namespace yubin::msad {

bool isLoopback(const std::string& ip) {
  in_addr a4;
  if (inet_pton(AF_INET, ip.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6;
  if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

ServerSettings ServerSettings::fromConfig(const config::Config& cfg) {
  ServerSettings s;
  s.smtp.mode = smtp::Mode::Submission;
  s.smtp.hostname = cfg.hostname();
  s.smtp.maxMessageSize = cfg.size("msad", "max_message_size");
  s.smtp.maxRecipients = cfg.integer("msad", "max_recipients");
  s.smtp.maxErrors = static_cast<unsigned>(cfg.integer("msad", "max_errors"));
  // Mail clients are not MTAs: a bare LF is repaired, not bounced.
  s.smtp.normalizeBareLf = true;
  s.smtp.commandTimeout = cfg.duration("msad", "command_timeout");
  s.smtp.dataTimeout = cfg.duration("msad", "data_timeout");
  s.smtp.dataMinRate = static_cast<uint64_t>(cfg.integer("msad", "data_min_rate"));
  s.smtp.requireAuth = true;
  s.maxConnections = cfg.integer("msad", "max_connections");
  s.maxConnectionsPerIp = cfg.integer("msad", "max_connections_per_ip");
  s.authWithoutTlsLoopback = cfg.boolean("msad", "loopback_plaintext");
  s.handoff.socketPath = cfg.str("msad", "mtad_socket");
  s.handoff.heloName = s.smtp.hostname;
  s.throttle.delay = std::chrono::milliseconds(cfg.integer("msad", "auth_delay_ms"));
  s.throttle.maxDelay =
      std::max<std::chrono::milliseconds>(s.throttle.delay, cfg.duration("msad", "auth_max_delay"));
  s.throttle.ipLockout = static_cast<unsigned>(cfg.integer("msad", "auth_lockout"));
  s.throttle.accountLockout = static_cast<unsigned>(cfg.integer("msad", "auth_account_lockout"));
  s.throttle.window = cfg.duration("msad", "auth_window");
  s.rate.messagesPerHour = cfg.integer("msad", "rate_messages");
  s.rate.recipientsPerHour = cfg.integer("msad", "rate_recipients");
  s.authWorkers =
      static_cast<unsigned>(std::clamp<uint64_t>(cfg.integer("msad", "auth_workers"), 1, 64));
  return s;
}

Msad::Msad() = default;
Msad::~Msad() {
  connections_.clear();  // cancels their password checks and handoffs
  checker_.reset();      // joins the workers
  listeners_.clear();
}

Status Msad::start(service::Context& ctx) {
  ctx_ = &ctx;
  base_ = ctx.base();
  const config::Config& cfg = ctx.config();
  settings_ = ServerSettings::fromConfig(cfg);

  directory_ = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(cfg));
  if (auto st = directory_->reload(); !st)
    YLOG_WARN("user database: %s (logins fail until it is fixed)", st.error().message.c_str());
  rate_ = std::make_unique<RateLimiter>(settings_.rate);
  policy_ = std::make_unique<SubmissionPolicy>(*directory_, *rate_);
  throttle_ = std::make_unique<sasl::Throttle>(settings_.throttle);
  auto checker = sasl::PasswordChecker::create(
      base_, sasl::PasswordChecker::fromDirectory(*directory_),
      {.threads = settings_.authWorkers,
       .cacheEntries = static_cast<size_t>(cfg.integer("msad", "auth_cache_size")),
       .cacheTtl = std::chrono::duration_cast<std::chrono::seconds>(
           cfg.duration("msad", "auth_cache_ttl"))});
  if (!checker) return Error{"password checker: " + checker.error().message};
  checker_ = std::move(*checker);

  tls_ = ctx.tls();
  settings_.smtp.tlsAvailable = tls_ != nullptr;
  if (!tls_)
    YLOG_WARN(
        "no [global] tls_cert: no STARTTLS, port 465 closed, AUTH only from loopback if allowed");

  for (bool implicit : {false, true}) {
    for (auto& fd : ctx.takeListeners(implicit ? "listen_tls" : "listen")) {
      if (implicit && !tls_) continue;  // closes it
      auto l = event::Listener::create(base_, std::move(fd),
                                       [this, implicit](UniqueFd c, const event::Peer& p) {
                                         accept(std::move(c), p, implicit);
                                       });
      if (!l) return l.error();
      YLOG_INFO("listening on %s%s", (*l)->name().c_str(), implicit ? " (implicit TLS)" : "");
      listeners_.push_back(std::move(*l));
    }
  }
  if (listeners_.empty()) return Error{"no [msad] listen or listen_tls sockets"};
  return {};
}

void Msad::exitWhenIdle() {
  if (stopping_ && connections_.empty() && ctx_) ctx_->exit();
}

void Msad::accept(UniqueFd fd, const event::Peer& peer, bool implicitTls) {
  smtp::Settings s = settings_.smtp;
  s.clientAddress = peer.ip;
  s.tlsActive = implicitTls;
  s.authWithoutTls = settings_.authWithoutTlsLoopback && isLoopback(peer.ip);
  s.logId = connections_.nextSessionId();
  std::optional<smtp::Reply> refusal;
  if (stopping_) {
    refusal = smtp::reply(smtp::ReplyId::ShuttingDown, settings_.smtp.hostname);
  } else if (connections_.size() >= settings_.maxConnections) {
    refusal = smtp::reply(smtp::ReplyId::TooManyConnections, settings_.smtp.hostname);
  } else if (connections_.fromIp(peer.ip) >= settings_.maxConnectionsPerIp) {
    refusal = smtp::reply(smtp::ReplyId::TooManyFromAddress, settings_.smtp.hostname);
  } else if (throttle_->locked(peer.ip, "", sasl::Throttle::Clock::now())) {
    refusal = smtp::reply(smtp::ReplyId::AuthTooManyFailures, settings_.smtp.hostname);
  }
  if (refusal)
    YLOG_NOTICE("connection refused client=%s reason=\"%s\"", peer.text().c_str(),
                refusal->text.c_str());
  Connection* raw = connections_.add(
      std::make_unique<Connection>(*this, std::move(fd), peer, std::move(s), implicitTls), peer.ip);
  std::optional<event::SslPtr> ssl;
  if (implicitTls && !refusal) {
    auto made = tls_->newSsl();
    if (!made) {
      YLOG_WARN("cannot start TLS client=%s error=\"%s\"", peer.text().c_str(),
                made.error().message.c_str());
      closed(raw);
      return;
    }
    ssl = std::move(*made);
  }
  if (implicitTls && refusal) {
    // A refusal in clear on a TLS port means nothing to the client: close.
    closed(raw);
    return;
  }
  if (auto st = raw->start(refusal, std::move(ssl)); !st) {
    YLOG_WARN("cannot start session client=%s error=\"%s\"", peer.text().c_str(),
              st.error().message.c_str());
    closed(raw);
  }
}

void Msad::closed(Connection* c) {
  if (connections_.remove(c)) exitWhenIdle();
}

void Msad::reload(const config::Config& cfg) {
  ServerSettings s = ServerSettings::fromConfig(cfg);
  if (ctx_) tls_ = ctx_->tls();
  s.smtp.tlsAvailable = tls_ != nullptr;
  settings_ = s;
  throttle_->setSettings(settings_.throttle);
  rate_->setSettings(settings_.rate);
  YLOG_INFO("reloaded");
}

void Msad::stop(service::Context& ctx) {
  stopping_ = true;
  for (auto& l : listeners_) l->disable();
  connections_.forEach([](Connection& c) { c.shutdown(); });
  (void)ctx;
  exitWhenIdle();
}

}  // namespace yubin::msad
