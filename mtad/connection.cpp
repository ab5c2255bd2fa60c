// One SMTP connection of mtad; see connection.hpp.
#include "mtad/connection.hpp"

#include <event2/buffer.h>

#include <cerrno>
#include <ctime>

#include "base/log.hpp"
#include "mtad/mtad.hpp"
#include "tls/tls.hpp"
#include "yubin_build_config.h"

namespace yubin::mtad {
namespace {

// Unprocessed input held while a message is being committed; past it the
// connection stops reading (the kernel's buffers push back on the client).
constexpr size_t kMaxBufferedInput = 256 * 1024;
// Replies queued for a client that does not read them; past it we stop
// reading its commands until the output drains.
constexpr size_t kMaxPendingOutput = 256 * 1024;
// How long a closing connection waits for a client that does not read its
// last reply before it is dropped.
constexpr std::chrono::seconds kCloseLinger{10};

std::string rfc5322Date(time_t t) {
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &tm);
  return buf;
}

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

}  // namespace

Connection::Connection(Mtad& server, UniqueFd fd, const event::Peer& peer,
                       smtp::Settings settings)
    : server_(server),
      peer_(peer),
      logId_(settings.logId),
      pendingFd_(std::move(fd)),
      session_(std::move(settings), server.policy(), *this),
      timer_(server.base(), [this] { onTimer(); }),
      reaper_(server.base(), [this] { finish(); }) {}

Connection::~Connection() {
  if (commit_) server_.queue().cancelCallback(*commit_);
  if (lowerDrained_ && bev_)
    if (bufferevent* lower = bufferevent_get_underlying(bev_.get()))
      evbuffer_remove_cb_entry(bufferevent_get_output(lower), lowerDrained_);
}

Status Connection::start(std::optional<smtp::Reply> refusal) {
  auto bev = event::newSocketBufferevent(server_.base(), std::move(pendingFd_));
  if (!bev) return bev.error();
  bev_ = std::move(*bev);
  setCallbacks();
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  YLOG_INFO("connect session=%s client=%s", logId_.c_str(), peer_.text().c_str());
  if (refusal) {
    session_.refuse(*refusal);
  } else {
    session_.greet();
    armTimer();
  }
  return {};
}

void Connection::setCallbacks() {
  bufferevent_setcb(bev_.get(), &Connection::onRead, &Connection::onWrite, &Connection::onEvent,
                    this);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
}

void Connection::armTimer() {
  if (session_.closed()) return;
  timer_.arm(std::chrono::duration_cast<std::chrono::milliseconds>(session_.timeoutNow()));
}

void Connection::onTimer() {
  if (closing_) {  // the last reply could not be flushed in time
    reaper_.arm(std::chrono::milliseconds(0));
    return;
  }
  YLOG_INFO("session timeout session=%s client=%s", logId_.c_str(), peer_.text().c_str());
  session_.timeout();
}

void Connection::onRead(bufferevent*, void* self) { static_cast<Connection*>(self)->readInput(); }

void Connection::readInput() {
  if (closing_ || !bev_) return;
  evbuffer* in = bufferevent_get_input(bev_.get());
  while (!closing_ && evbuffer_get_length(in) > 0) {
    if (session_.buffered() > kMaxBufferedInput ||
        evbuffer_get_length(bufferevent_get_output(bev_.get())) > kMaxPendingOutput) {
      bufferevent_disable(bev_.get(), EV_READ);
      return;
    }
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    size_t n = vec.iov_len;
    // Copy out before draining: feed() may call back into us.
    std::string chunk(static_cast<const char*>(vec.iov_base), n);
    evbuffer_drain(in, n);
    session_.feed(chunk);
    if (session_.closed() || closing_) return;
  }
  armTimer();
  if (shutdownRequested_ && (session_.state() == smtp::Session::State::Idle ||
                             session_.state() == smtp::Session::State::NeedHelo))
    session_.shutdown();
}

void Connection::onWrite(bufferevent* bev, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (c->closing_) {
    if (c->pendingOutput() == 0) c->finish();
    return;
  }
  // Output drained below the bound: resume reading if we paused for it.
  if (!(bufferevent_get_enabled(bev) & EV_READ) &&
      c->session_.buffered() <= kMaxBufferedInput &&
      c->session_.state() != smtp::Session::State::Committing) {
    bufferevent_enable(bev, EV_READ);
    c->readInput();
  }
}

void Connection::onEvent(bufferevent* bev, short what, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    // The STARTTLS handshake completed.
    c->tlsInfo_ = tls::describeSession(event::sslOf(bev));
    YLOG_INFO("starttls session=%s tls=\"%s\"", c->logId_.c_str(), c->tlsInfo_.c_str());
    c->session_.tlsStarted();
    c->armTimer();
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (what & BEV_EVENT_ERROR)
      YLOG_INFO("connection error session=%s client=%s error=\"%s\"", c->logId_.c_str(),
                c->peer_.text().c_str(), event::bufferevError(bev).c_str());
    if (!c->session_.closed()) c->session_.peerClosed();
    c->finish();
  }
}

void Connection::send(std::string_view bytes) {
  if (bev_) bufferevent_write(bev_.get(), bytes.data(), bytes.size());
}

void Connection::startTls() {
  tls::ServerContext* ctx = server_.tlsContext();
  if (!ctx) {
    YLOG_ERROR("starttls without a TLS context session=%s", logId_.c_str());
    session_.peerClosed();
    closing_ = true;
    reaper_.arm(std::chrono::milliseconds(0));
    return;
  }
  auto ssl = ctx->newSsl();
  if (!ssl) {
    YLOG_WARN("starttls failed session=%s error=\"%s\"", logId_.c_str(), ssl.error().message.c_str());
    session_.peerClosed();
    closing_ = true;
    reaper_.arm(std::chrono::milliseconds(0));
    return;
  }
  size_t discarded = 0;
  auto top = event::startTls(std::move(bev_), std::move(*ssl), event::TlsRole::Server, &discarded);
  if (!top) {
    YLOG_WARN("starttls failed session=%s error=\"%s\"", logId_.c_str(), top.error().message.c_str());
    session_.peerClosed();
    closing_ = true;
    reaper_.arm(std::chrono::milliseconds(0));
    return;
  }
  if (discarded > 0)
    YLOG_NOTICE("discarded %zu bytes pipelined after STARTTLS session=%s client=%s", discarded,
                logId_.c_str(), peer_.text().c_str());
  bev_ = std::move(*top);
  setCallbacks();
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

size_t Connection::pendingOutput() const {
  if (!bev_) return 0;
  size_t n = evbuffer_get_length(bufferevent_get_output(bev_.get()));
  // Under TLS the filter encrypts into the socket bufferevent below it at
  // once: the last reply waits there while the top buffer is already empty.
  if (bufferevent* lower = bufferevent_get_underlying(bev_.get()))
    n += evbuffer_get_length(bufferevent_get_output(lower));
  return n;
}

void Connection::onLowerDrained(evbuffer*, const evbuffer_cb_info* info, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (info->n_deleted > 0 && c->closing_ && c->pendingOutput() == 0)
    c->reaper_.arm(std::chrono::milliseconds(0));
}

void Connection::close() {
  closing_ = true;
  if (bev_) bufferevent_disable(bev_.get(), EV_READ);
  // Finish from the loop, never inside the engine's call stack, once the
  // last reply (221, 421) is in the kernel: onWrite sees the top buffer
  // drain, onLowerDrained the TLS layer's socket buffer. A client that does
  // not read gets kCloseLinger.
  if (pendingOutput() == 0) {
    timer_.cancel();
    reaper_.arm(std::chrono::milliseconds(0));
    return;
  }
  if (bufferevent* lower = bufferevent_get_underlying(bev_.get()); lower && !lowerDrained_)
    lowerDrained_ =
        evbuffer_add_cb(bufferevent_get_output(lower), &Connection::onLowerDrained, this);
  timer_.arm(kCloseLinger);
}

void Connection::shutdown() {
  shutdownRequested_ = true;
  auto s = session_.state();
  if (s == smtp::Session::State::Idle || s == smtp::Session::State::NeedHelo)
    session_.shutdown();
}

std::string Connection::receivedHeader(const smtp::Envelope& env, const std::string& id) const {
  // RFC 5321 §4.4 trace: from-domain, by-domain, via/with, id, for, date.
  std::string proto = env.esmtp ? "ESMTP" : "SMTP";
  if (env.esmtp && env.tls) proto = "ESMTPS";
  std::string h = "Received: from " + (env.helo.empty() ? std::string("unknown") : env.helo) + " ([" +
                  peer_.ip + "])\r\n\tby " + server_.settings().smtp.hostname +
                  " (Yubin " YUBIN_VERSION ") with " + proto + " id " + id;
  if (!tlsInfo_.empty()) h += "\r\n\t(" + tlsInfo_ + ")";
  if (env.recipients.size() == 1)
    h += "\r\n\tfor " + env.recipients.front().raw;
  h += ";\r\n\t" + rfc5322Date(time(nullptr)) + "\r\n";
  // Never let a client-chosen HELO name break the header.
  for (char& c : h)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f) c = '?';
  return h;
}

void Connection::messageBegin(const smtp::Envelope& env) {
  auto msg = server_.queue().begin(toQueueEnvelope(env, server_.policy()));
  if (!msg) {
    // The error is reported at end of data (452/451); until then the data
    // is read and dropped.
    YLOG_WARN("queue file not created session=%s error=\"%s\"", logId_.c_str(),
              msg.error().message.c_str());
    message_ = queue::PendingMessage();
    beginError_ = msg.error();
    return;
  }
  beginError_.reset();
  message_ = std::move(*msg);
  (void)message_.append(receivedHeader(env, message_.id().str()));
}

void Connection::messageData(std::string_view bytes) {
  if (message_.active()) (void)message_.append(bytes);
}

void Connection::messageEnd() {
  if (!message_.active()) {
    int err = beginError_ ? beginError_->errnum : 0;
    session_.messageDone(smtp::reply(err == ENOSPC || err == EDQUOT
                                         ? smtp::ReplyId::InsufficientStorage
                                         : smtp::ReplyId::LocalError));
    return;
  }
  std::string id = message_.id().str();
  uint64_t size = message_.size();
  timer_.cancel();
  commit_ = server_.queue().commit(std::move(message_), [this, id, size](Result<queue::QueueId> r) {
    commit_.reset();
    if (r) {
      ++messages_;
      YLOG_INFO("queued session=%s id=%s size=%llu from=<%s> nrcpt=%zu", logId_.c_str(),
                id.c_str(), static_cast<unsigned long long>(size),
                session_.envelope().nullSender ? "" : session_.envelope().from.normalized().c_str(),
                session_.envelope().recipients.size());
      session_.messageDone(smtp::reply(smtp::ReplyId::Queued, id));
      server_.queued(*r);
    } else {
      int err = r.error().errnum;
      YLOG_WARN("queue commit failed session=%s id=%s error=\"%s\"", logId_.c_str(), id.c_str(),
                r.error().message.c_str());
      session_.messageDone(smtp::reply(err == ENOSPC || err == EDQUOT
                                           ? smtp::ReplyId::InsufficientStorage
                                           : smtp::ReplyId::LocalError));
    }
    if (session_.closed() || closing_) return;
    if (bev_) bufferevent_enable(bev_.get(), EV_READ);
    readInput();
  });
}

void Connection::messageAbort() {
  message_.abort();
  message_ = queue::PendingMessage();
}

void Connection::finish() {
  timer_.cancel();
  if (message_.active()) message_.abort();
  YLOG_INFO("disconnect session=%s client=%s messages=%llu", logId_.c_str(), peer_.text().c_str(),
            static_cast<unsigned long long>(messages_));
  server_.closed(this);  // destroys this
}

}  // namespace yubin::mtad
