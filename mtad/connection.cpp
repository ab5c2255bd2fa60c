// One SMTP connection of mtad; see connection.hpp.
#include "mtad/connection.hpp"

#include <cerrno>
#include <ctime>

#include "base/log.hpp"
#include "mail/header_fixer.hpp"
#include "mtad/mtad.hpp"
#include "yubin_build_config.h"

namespace yubin::mtad {
namespace {

queue::Envelope toQueueEnvelope(const smtp::Envelope& env, const InboundPolicy& policy) {
  queue::Envelope q;
  q.nullSender = env.nullSender;
  q.sender = env.nullSender ? std::string() : env.from.normalized();
  for (const auto& r : env.recipients) {
    queue::Recipient qr;
    qr.address = policy.queuedAddress(r.address);
    qr.notify = r.notify;
    qr.orcptType = r.orcptType;
    qr.orcpt = r.orcpt;
    q.recipients.push_back(std::move(qr));
  }
  q.ret = static_cast<queue::Ret>(env.ret);
  q.envid = env.envid;
  q.body = static_cast<queue::Body>(env.body);
  q.smtputf8 = env.smtputf8;
  q.arrivalTime = time(nullptr);
  q.clientAddress = env.clientAddress;
  q.heloName = env.helo;
  return q;
}

// 452 for a full disk or quota, else 451.
smtp::Reply failureReply(int err) {
  return smtp::reply(err == ENOSPC || err == EDQUOT ? smtp::ReplyId::InsufficientStorage
                                                    : smtp::ReplyId::LocalError);
}

}  // namespace

namespace {
smtp::Policy& policyFor(Mtad& server, bool submission) {
  if (submission) return server.submissionPolicy();
  return server.policy();
}
}  // namespace

Connection::Connection(Mtad& server, UniqueFd fd, const event::Peer& peer, smtp::Settings settings,
                       bool submission)
    : ServerConnection(server.base(), std::move(fd), std::move(settings),
                       policyFor(server, submission),
                       submission ? "client=msad" : "client=" + peer.text()),
      server_(server),
      peer_(peer),
      submission_(submission) {}

Connection::~Connection() {
  if (commit_) server_.queue().cancelCallback(*commit_);
}

tls::ServerContext* Connection::tlsContext() { return server_.tlsContext(); }

std::string Connection::receivedHeader(const smtp::Envelope& env, const std::string& id) const {
  // RFC 5321 §4.4 trace: from-domain, by-domain, via/with, id, for, date.
  std::string proto = env.esmtp ? "ESMTP" : "SMTP";
  if (env.esmtp && env.tls) proto = "ESMTPS";
  std::string h = "Received: from " + (env.helo.empty() ? std::string("unknown") : env.helo) +
                  " ([" + peer_.ip + "])\r\n\tby " + server_.settings().smtp.hostname +
                  " (Yubin " YUBIN_VERSION ") with " + proto + " id " + id;
  if (!tlsInfo().empty()) h += "\r\n\t(" + tlsInfo() + ")";
  if (env.recipients.size() == 1) h += "\r\n\tfor " + env.recipients.front().raw;
  h += ";\r\n\t" + mail::rfc5322Date(time(nullptr)) + "\r\n";
  // Never let a client-chosen HELO name break the header.
  for (char& c : h)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
      c = '?';
  return h;
}

void Connection::messageBegin(const smtp::Envelope& env) {
  queue::Envelope qenv = toQueueEnvelope(env, server_.policy());
  // AUTH= from msad is the authenticated user; from anyone else it is not
  // trusted and dropped (RFC 4954 §5).
  if (submission_ && env.auth && *env.auth != "<>") qenv.authUser = *env.auth;
  auto msg = server_.queue().begin(qenv);
  if (!msg) {
    // The error is reported at end of data (452/451); until then the data
    // is read and dropped.
    YLOG_WARN("queue file not created session=%s error=\"%s\"", logId().c_str(),
              msg.error().message.c_str());
    message_ = queue::PendingMessage();
    beginError_ = msg.error();
    return;
  }
  beginError_.reset();
  message_ = std::move(*msg);
  if (!submission_) (void)message_.append(receivedHeader(env, message_.id().str()));
}

void Connection::messageData(std::string_view bytes) {
  if (message_.active()) (void)message_.append(bytes);
}

void Connection::messageEnd() {
  if (!message_.active()) {
    session().messageDone(failureReply(beginError_ ? beginError_->errnum : 0));
    return;
  }
  std::string id = message_.id().str();
  uint64_t size = message_.size();
  stopTimer();
  commit_ = server_.queue().commit(std::move(message_), [this, id, size](Result<queue::QueueId> r) {
    commit_.reset();
    if (r) {
      countMessage();
      YLOG_INFO(
          "queued session=%s id=%s size=%llu from=<%s> nrcpt=%zu%s%s", logId().c_str(), id.c_str(),
          static_cast<unsigned long long>(size),
          session().envelope().nullSender ? "" : session().envelope().from.normalized().c_str(),
          session().envelope().recipients.size(), submission_ ? " auth=" : "",
          submission_ && session().envelope().auth ? session().envelope().auth->c_str() : "");
      session().messageDone(smtp::reply(smtp::ReplyId::Queued, id));
      server_.queued(*r);
    } else {
      YLOG_WARN("queue commit failed session=%s id=%s error=\"%s\"", logId().c_str(), id.c_str(),
                r.error().message.c_str());
      session().messageDone(failureReply(r.error().errnum));
    }
    resumeReading();
  });
}

void Connection::messageAbort() {
  message_.abort();
  message_ = queue::PendingMessage();
}

void Connection::finished() {
  if (message_.active()) message_.abort();
  server_.closed(this);  // destroys this
}

}  // namespace yubin::mtad
