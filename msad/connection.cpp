// One submission connection of msad; see connection.hpp.
#include "msad/connection.hpp"

#include <sodium.h>

#include <ctime>

#include "base/log.hpp"
#include "msad/msad.hpp"
#include "tls/tls.hpp"
#include "yubin_build_config.h"

namespace yubin::msad {
namespace {

// Log values come from the client: keep them on one line and short.
std::string logSafe(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 256)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f || c == '"' ? '?' : c);
  }
  return out;
}

}  // namespace

Connection::Connection(Msad& server, UniqueFd fd, const event::Peer& peer, smtp::Settings settings,
                       bool implicitTls)
    : ServerConnection(server.base(), std::move(fd), std::move(settings), server.policy(),
                       "client=" + peer.text()),
      server_(server),
      peer_(peer),
      implicitTls_(implicitTls),
      authDelay_(server.base(),
                 [this] {
                   if (!delayedFailure_) return;
                   smtp::Reply r = std::move(*delayedFailure_);
                   delayedFailure_.reset();
                   session().authFailed(r);
                   resumeReading();
                 }),
      handoffNotify_(server.base(), [this] { onHandoffNotify(); }) {}

Connection::~Connection() { cancelAuth(); }

tls::ServerContext* Connection::tlsContext() { return server_.tlsContext(); }

// ---- AUTH ----

sasl::Options Connection::saslOptions(const smtp::Envelope& env) {
  sasl::Options o;
  o.tls = env.tls;
  if (env.tls && !exporter_) {
    exporter_.emplace();
    if (SSL* s = ssl()) {
      auto cb = tls::channelBindingExporter(s);
      if (cb) *exporter_ = std::move(*cb);
    }
  }
  if (env.tls && exporter_) o.tlsExporter = *exporter_;
  return o;
}

std::vector<std::string> Connection::authMechanisms(const smtp::Envelope& env) {
  return sasl::mechanisms(saslOptions(env));
}

void Connection::authStart(std::string_view mechanism, std::optional<std::string> initial) {
  cancelAuth();
  const auto now = sasl::Throttle::Clock::now();
  if (server_.throttle().locked(peer_.ip, "", now)) {
    YLOG_NOTICE("auth refused: too many failures session=%s client=%s", logId().c_str(),
                peer_.ip.c_str());
    session().authFailed(
        smtp::reply(smtp::ReplyId::AuthTooManyFailures, server_.settings().smtp.hostname));
    return;
  }
  auto ex =
      sasl::Exchange::start(mechanism, server_.directory(), saslOptions(session().envelope()));
  if (!ex) {
    session().authFailed(smtp::reply(smtp::ReplyId::AuthUnknownMechanism));
    return;
  }
  exchange_ = std::move(*ex);
  std::optional<std::string_view> ir;
  if (initial) ir = *initial;
  sasl::Step s = exchange_->begin(ir);
  if (initial) sodium_memzero(initial->data(), initial->size());
  step(std::move(s));
}

void Connection::authResponse(std::string response) {
  if (awaitingFinalAck_) {
    // RFC 4954 §4: the client acknowledges the server-final data with an
    // empty response.
    awaitingFinalAck_ = false;
    if (response.empty()) {
      std::string user = std::move(pendingUser_);
      exchange_.reset();
      session().authSucceeded(std::move(user));
    } else {
      sasl::Step f;
      f.kind = sasl::Step::Kind::Failure;
      f.user = pendingUser_;
      f.reason = "non-empty response to the server-final message";
      authFailure(f);
    }
    return;
  }
  if (!exchange_) {
    session().authFailed(smtp::reply(smtp::ReplyId::AuthFailed));
    return;
  }
  sasl::Step s = exchange_->respond(response);
  sodium_memzero(response.data(), response.size());
  step(std::move(s));
}

void Connection::step(sasl::Step s) {
  using Kind = sasl::Step::Kind;
  switch (s.kind) {
    case Kind::Challenge:
      session().authChallenge(s.challenge);
      return;
    case Kind::CheckPassword: {
      attemptUser_ = s.user;
      const auto now = sasl::Throttle::Clock::now();
      if (server_.throttle().locked(peer_.ip, s.user, now)) {
        sodium_memzero(s.password.data(), s.password.size());
        YLOG_NOTICE("auth refused: too many failures session=%s client=%s user=%s", logId().c_str(),
                    peer_.ip.c_str(), logSafe(s.user).c_str());
        exchange_.reset();
        session().authFailed(
            smtp::reply(smtp::ReplyId::AuthTooManyFailures, server_.settings().smtp.hostname));
        return;
      }
      auto t = server_.checker().check(s.user, s.password, [this](bool ok) {
        ticket_.reset();
        if (!exchange_) return;
        step(exchange_->passwordChecked(ok));
        resumeReading();
      });
      sodium_memzero(s.password.data(), s.password.size());
      if (!t) {
        YLOG_WARN("auth deferred: password checker busy session=%s client=%s", logId().c_str(),
                  peer_.ip.c_str());
        exchange_.reset();
        session().authFailed(smtp::reply(smtp::ReplyId::AuthTemporary));
        return;
      }
      ticket_ = *t;
      stopTimer();  // the check is ours to finish, not the client's
      return;
    }
    case Kind::Success: {
      server_.throttle().success(peer_.ip, s.user);
      YLOG_INFO("auth ok session=%s client=%s user=%s mech=%.*s", logId().c_str(), peer_.ip.c_str(),
                logSafe(s.authenticated).c_str(), static_cast<int>(exchange_->name().size()),
                exchange_->name().data());
      if (!s.serverFinal.empty()) {
        awaitingFinalAck_ = true;
        pendingUser_ = s.authenticated;
        session().authChallenge(s.serverFinal);
        return;
      }
      exchange_.reset();
      session().authSucceeded(std::move(s.authenticated));
      return;
    }
    case Kind::Failure:
      authFailure(s);
      return;
  }
}

// Records the failure, logs it for fail2ban-style tools and answers after
// the throttle's delay (421 and close once locked out).
void Connection::authFailure(const sasl::Step& s) {
  const std::string user = s.user.empty() ? attemptUser_ : s.user;
  const std::string mech = exchange_ ? std::string(exchange_->name()) : std::string("?");
  exchange_.reset();
  auto& throttle = server_.throttle();
  const auto now = sasl::Throttle::Clock::now();
  throttle.failure(peer_.ip, user, now);
  YLOG_NOTICE("auth failed session=%s client=%s user=%s mech=%s reason=\"%s\"", logId().c_str(),
              peer_.ip.c_str(), logSafe(user).c_str(), mech.c_str(), logSafe(s.reason).c_str());
  smtp::Reply r =
      throttle.locked(peer_.ip, user, now)
          ? smtp::reply(smtp::ReplyId::AuthTooManyFailures, server_.settings().smtp.hostname)
          : smtp::reply(smtp::ReplyId::AuthFailed);
  auto delay = throttle.delay(peer_.ip, user, now);
  if (delay.count() <= 0) {
    session().authFailed(r);
    return;
  }
  delayedFailure_ = std::move(r);
  stopTimer();
  authDelay_.arm(delay);
}

void Connection::cancelAuth() {
  if (ticket_) server_.checker().cancel(*ticket_);
  ticket_.reset();
  authDelay_.cancel();
  delayedFailure_.reset();
  exchange_.reset();
  awaitingFinalAck_ = false;
  pendingUser_.clear();
}

void Connection::authAbort() { cancelAuth(); }

// ---- The message ----

std::string Connection::receivedHeader(const smtp::Envelope& env) const {
  // RFC 5321 §4.4 with RFC 3848's ESMTPA / ESMTPSA. The user name is not
  // shown: the trace field travels with the message to its recipients.
  std::string proto = env.tls ? "ESMTPSA" : "ESMTPA";
  std::string h = "Received: from " + (env.helo.empty() ? std::string("unknown") : env.helo) +
                  " ([" + peer_.ip + "])\r\n\tby " + server_.settings().smtp.hostname +
                  " (Yubin " YUBIN_VERSION ") with " + proto + " id " + logId();
  if (!tlsInfo().empty()) h += "\r\n\t(" + tlsInfo() + ")";
  if (env.recipients.size() == 1) h += "\r\n\tfor " + env.recipients.front().raw;
  h += ";\r\n\t" + mail::rfc5322Date(time(nullptr)) + "\r\n";
  for (char& c : h)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
      c = '?';
  return h;
}

void Connection::messageBegin(const smtp::Envelope& env) {
  handoffResult_.reset();
  waitingForHandoff_ = false;
  recipients_ = env.recipients.size();
  // RFC 6409 §8: Date and Message-ID when missing; From is the client's
  // (the policy checked the envelope sender, not the header).
  fixer_ = std::make_unique<mail::HeaderFixer>(
      mail::HeaderAdditions{.trace = receivedHeader(env),
                            .from = {},
                            .date = mail::rfc5322Date(time(nullptr)),
                            .messageId = mail::newMessageId(server_.settings().smtp.hostname)});
  // The handoff's callbacks only arm handoffNotify_: what follows (the
  // reply, reading on, maybe the next message and a new handoff) then runs
  // from the loop, never inside the handoff's own stack.
  handoff_ = std::make_unique<Handoff>(server_.base(), server_.settings().handoff, env,
                                       env.authUser, logId(), [this](const smtp::Reply& r) {
                                         handoffResult_ = r;
                                         handoffNotify_.arm(std::chrono::milliseconds(0));
                                       });
  handoff_->onDrained = [this] { handoffNotify_.arm(std::chrono::milliseconds(0)); };
}

void Connection::messageData(std::string_view bytes) {
  if (!handoff_ || !fixer_ || handoffResult_) return;
  std::string out;
  fixer_->feed(bytes, out);
  handoff_->data(out);
  if (handoff_->full()) holdInput(true);
}

void Connection::messageEnd() {
  holdInput(false);
  if (fixer_ && handoff_ && !handoffResult_) {
    std::string out;
    fixer_->finish(out);
    handoff_->data(out);
  }
  if (handoffResult_ || !handoff_) {
    // mtad failed before the end (down, refused a recipient): say so now.
    smtp::Reply r = handoffResult_ ? *handoffResult_ : smtp::reply(smtp::ReplyId::LocalError);
    handoffResult_.reset();
    handoff_.reset();
    fixer_.reset();
    session().messageDone(r);
    return;
  }
  waitingForHandoff_ = true;
  stopTimer();
  handoff_->end();
}

void Connection::onHandoffNotify() {
  if (!waitingForHandoff_ || !handoffResult_) {
    // Output drained, or a failure before the client finished: its reply
    // waits for the end of data; the rest of the content is dropped.
    if (!handoff_ || handoffResult_ || !handoff_->full()) holdInput(false);
    return;
  }
  waitingForHandoff_ = false;
  smtp::Reply r = std::move(*handoffResult_);
  handoffResult_.reset();
  handoff_.reset();
  fixer_.reset();
  const auto& env = session().envelope();
  if (r.positive()) {
    countMessage();
    server_.rate().record(env.authUser, recipients_, RateLimiter::Clock::now());
    YLOG_INFO("submitted session=%s client=%s user=%s from=<%s> nrcpt=%zu reply=\"%s\"",
              logId().c_str(), peer_.ip.c_str(), logSafe(env.authUser).c_str(),
              env.nullSender ? "" : logSafe(env.from.normalized()).c_str(), recipients_,
              logSafe(r.text).c_str());
  }
  session().messageDone(r);
  resumeReading();
}

void Connection::messageAbort() {
  // Closing the connection to mtad before the final dot aborts its queue
  // file. Never called from inside the handoff (see messageBegin).
  waitingForHandoff_ = false;
  handoffResult_.reset();
  handoffNotify_.cancel();
  fixer_.reset();
  handoff_.reset();
  holdInput(false);
}

void Connection::finished() {
  cancelAuth();
  handoff_.reset();
  server_.closed(this);  // destroys this
}

}  // namespace yubin::msad
