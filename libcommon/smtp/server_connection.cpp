// The engine on a bufferevent; see server_connection.hpp.
#include "smtp/server_connection.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "base/log.hpp"
#include "tls/tls.hpp"

namespace yubin::smtp {
namespace {

// Unprocessed input held by the engine (while a message is being
// committed, say); past it the connection stops reading and the kernel's
// buffers push back on the client.
constexpr size_t kMaxBufferedInput = 256 * 1024;
// Replies queued for a client that does not read them; past it we stop
// reading its commands until the output drains.
constexpr size_t kMaxPendingOutput = 256 * 1024;
// libevent 2.1 reads a socket at most 4,096 bytes at a time
// (EVBUFFER_MAX_READ), one read per readiness, each after an FIONREAD
// ioctl: a 100 KB message took 25 reads, 25 ioctls and as many passes
// through the loop. On a plain socket whose bufferevent read came back full
// the connection reads on by itself (readAhead), kReadAhead bytes a call,
// up to kReadBudget per readiness so that one fast client does not hold up
// the others; then the loop takes its turn again.
constexpr size_t kLibeventRead = 4096;
constexpr size_t kReadAhead = 64 * 1024;
constexpr size_t kReadBudget = 4 * kReadAhead;
// How long a closing connection waits for a client that does not read its
// last reply before it is dropped.
constexpr std::chrono::seconds kCloseLinger{10};

// A message transfer runs from DATA's content (or the first BDAT chunk) to
// the end of the message: between BDAT chunks too, so a client cannot
// reset the rate by sending many small chunks.
bool inTransfer(Session::State s) {
  return s == Session::State::Data || s == Session::State::Chunk || s == Session::State::Chunked;
}

}  // namespace

ServerConnection::ServerConnection(event_base* base, UniqueFd&& fd, Settings settings,
                                   Policy& policy, std::string peerLog)
    : base_(base),
      logId_(settings.logId),
      peerLog_(std::move(peerLog)),
      pendingFd_(std::move(fd)),
      session_(std::move(settings), policy, *this),
      timer_(base, [this] { onTimer(); }),
      reaper_(base, [this] { finish(); }),
      flush_(event_new(base, -1, 0, &ServerConnection::onFlush, this)) {
  if (!flush_) fatal("event_new failed");
}

ServerConnection::~ServerConnection() {
  if (lowerDrained_ && bev_)
    if (bufferevent* lower = bufferevent_get_underlying(bev_.get()))
      evbuffer_remove_cb_entry(bufferevent_get_output(lower), lowerDrained_);
}

Status ServerConnection::start(std::optional<Reply> refusal,
                               std::optional<event::SslPtr> implicitTls) {
  implicitTls_ = implicitTls.has_value();
  auto bev = implicitTls ? event::newTlsBufferevent(base_, std::move(pendingFd_),
                                                    std::move(*implicitTls), event::TlsRole::Server)
                         : event::newSocketBufferevent(base_, std::move(pendingFd_));
  if (!bev) return bev.error();
  bev_ = std::move(*bev);
  plain_ = !implicitTls_;
  setCallbacks();
  // Writing is enabled in a new bufferevent; enabling it again would arm
  // a write event with nothing to write (an epoll_ctl and a wakeup) on a
  // plain socket, whose replies mostly go straight to the kernel.
  bufferevent_enable(bev_.get(), plain_ ? EV_READ : EV_READ | EV_WRITE);
  YLOG_INFO("connect session=%s %s", logId_.c_str(), peerLog_.c_str());
  if (refusal) {
    session_.refuse(*refusal);
  } else {
    session_.greet();
    armTimer();
  }
  return {};
}

void ServerConnection::setCallbacks() {
  bufferevent_setcb(bev_.get(), &ServerConnection::onRead, &ServerConnection::onWrite,
                    &ServerConnection::onEvent, this);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
  // Under STARTTLS the TLS filter moves replies into the socket's
  // bufferevent below it without limit unless that one has a high write
  // mark; with it they wait above, where kMaxPendingOutput sees them.
  if (bufferevent* lower = bufferevent_get_underlying(bev_.get()))
    bufferevent_setwatermark(lower, EV_WRITE, 0, kMaxPendingOutput / 4);
}

void ServerConnection::armTimer() {
  if (session_.closed()) return;
  repliesAtArm_ = replies_;
  timer_.arm(std::chrono::duration_cast<std::chrono::milliseconds>(session_.timeoutNow()));
}

// Postfix's per-record deadline: the transfer starts with dataTimeout in
// hand, every read costs the time it took and earns octets / dataMinRate
// seconds, never more than dataTimeout ahead. A client at or above the
// rate keeps a full data timeout; one below it (a byte per data timeout,
// say) runs out in about a data timeout however large the message.
void ServerConnection::armTransferTimer(size_t octets) {
  using namespace std::chrono;
  const auto now = steady_clock::now();
  const auto full = duration_cast<steady_clock::duration>(session_.timeoutNow());
  const uint64_t rate = session_.settings().dataMinRate;
  if (!transfer_ || rate == 0) {
    transfer_ = true;
    transferDeadline_ = now + full;
  } else {
    transferDeadline_ += duration_cast<steady_clock::duration>(
        microseconds(static_cast<int64_t>(octets * 1000000 / rate)));
    if (transferDeadline_ > now + full) transferDeadline_ = now + full;
  }
  repliesAtArm_ = replies_;
  auto left = duration_cast<milliseconds>(transferDeadline_ - now);
  timer_.arm(left.count() > 0 ? left : milliseconds(0));
}

void ServerConnection::onTimer() {
  if (closing_) {  // the last reply could not be flushed in time
    reaper_.arm(std::chrono::milliseconds(0));
    return;
  }
  if (transfer_ && session_.settings().dataMinRate > 0)
    YLOG_INFO("session timeout session=%s %s state=%s min_rate=%llu", logId_.c_str(),
              peerLog_.c_str(), std::string(Session::stateName(session_.state())).c_str(),
              static_cast<unsigned long long>(session_.settings().dataMinRate));
  else
    YLOG_INFO("session timeout session=%s %s", logId_.c_str(), peerLog_.c_str());
  session_.timeout();
}

void ServerConnection::onRead(bufferevent*, void* self) {
  static_cast<ServerConnection*>(self)->readInput();
}

SSL* ServerConnection::ssl() const {
  if (!bev_ || (!implicitTls_ && tlsInfo_.empty())) return nullptr;
  return event::sslOf(bev_.get());
}

void ServerConnection::holdInput(bool hold) {
  held_ = hold;
  if (hold) {
    if (bev_) bufferevent_disable(bev_.get(), EV_READ);
  } else {
    resumeReading();
  }
}

void ServerConnection::readInput() {
  if (closing_ || !bev_) return;
  if (held_) {
    bufferevent_disable(bev_.get(), EV_READ);
    return;
  }
  evbuffer* in = bufferevent_get_input(bev_.get());
  size_t transferred = 0;  // message octets taken (DATA, BDAT chunks and commands)
  // Whether the socket likely holds more than the bufferevent read: its
  // read (or the last readAhead) came back full.
  bool more = plain_ && evbuffer_get_length(in) >= kLibeventRead;
  size_t budget = kReadBudget;
  while (!closing_) {
    const bool buffered = evbuffer_get_length(in) > 0;
    // Reading ahead only while the socket is still the clear one this
    // call started with: once STARTTLS replaced it, the TLS layer reads
    // (and plain_ is false).
    if (!buffered && !(more && budget > 0 && plain_ && !held_ && bev_ &&
                       bufferevent_get_input(bev_.get()) == in))
      break;
    // Gathered replies count against the bound; once the kernel has taken
    // them, only what it would not take does, and reading stops only for
    // output the bufferevent holds, whose draining calls onWrite.
    if (pendingOutput() > kMaxPendingOutput) flushReplies();
    if (session_.buffered() > kMaxBufferedInput || pendingOutput() > kMaxPendingOutput) {
      bufferevent_disable(bev_.get(), EV_READ);
      return;
    }
    std::string_view chunk;
    if (buffered) {
      evbuffer_iovec vec;
      if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
      chunk = {static_cast<const char*>(vec.iov_base), vec.iov_len};
    } else {
      chunk = readAhead();
      if (chunk.empty()) break;
      more = chunk.size() == kReadAhead;
      budget -= std::min(budget, chunk.size());
    }
    // The engine copies the bytes in, they are drained, and only then does
    // it act on them: its callbacks may replace the bufferevent (STARTTLS).
    if (inTransfer(session_.state())) transferred += chunk.size();
    session_.take(chunk);
    if (buffered) evbuffer_drain(in, chunk.size());
    session_.run();
    if (session_.closed() || closing_) return;
  }
  // Message data moves the transfer's deadline on every read (RFC 5321
  // §4.5.3.2.6 times each chunk; the minimum rate bounds the whole); a
  // command restarts the timer only once it is answered, so a client that
  // drips a command line a byte at a time (slow-loris) still has
  // command_timeout to finish it (§4.5.3.2.7), not that much per byte.
  if (inTransfer(session_.state())) {
    armTransferTimer(transferred);
  } else {
    transfer_ = false;
    if (replies_ != repliesAtArm_) armTimer();
  }
  if (shutdownRequested_ &&
      (session_.state() == Session::State::Idle || session_.state() == Session::State::NeedHelo))
    session_.shutdown();
}

std::string_view ServerConnection::readAhead() {
  thread_local std::unique_ptr<char[]> scratch(new char[kReadAhead]);
  ssize_t got = ::recv(bufferevent_getfd(bev_.get()), scratch.get(), kReadAhead, MSG_DONTWAIT);
  if (got <= 0) return {};
  return {scratch.get(), static_cast<size_t>(got)};
}

void ServerConnection::resumeReading() {
  if (session_.closed() || closing_ || held_) return;
  if (bev_) bufferevent_enable(bev_.get(), EV_READ);
  readInput();
}

void ServerConnection::onWrite(bufferevent* bev, void* self) {
  auto* c = static_cast<ServerConnection*>(self);
  if (c->closing_) {
    if (c->pendingOutput() == 0) c->finish();
    return;
  }
  // Output drained below the bound: resume reading if we paused for it.
  if (!(bufferevent_get_enabled(bev) & EV_READ) && c->session_.buffered() <= kMaxBufferedInput &&
      c->session_.state() != Session::State::Committing && !c->held_) {
    bufferevent_enable(bev, EV_READ);
    c->readInput();
  }
}

void ServerConnection::onEvent(bufferevent* bev, short what, void* self) {
  auto* c = static_cast<ServerConnection*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    if (c->implicitTls_ && c->tlsInfo_.empty()) {
      // The implicit TLS handshake completed; the engine knew from the start.
      c->tlsInfo_ = tls::describeSession(event::sslOf(bev));
      YLOG_INFO("tls session=%s tls=\"%s\"", c->logId_.c_str(), c->tlsInfo_.c_str());
      return;
    }
    // The STARTTLS handshake completed.
    c->tlsInfo_ = tls::describeSession(event::sslOf(bev));
    YLOG_INFO("starttls session=%s tls=\"%s\"", c->logId_.c_str(), c->tlsInfo_.c_str());
    c->session_.tlsStarted();
    c->armTimer();
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (what & BEV_EVENT_ERROR)
      YLOG_INFO("connection error session=%s %s error=\"%s\"", c->logId_.c_str(),
                c->peerLog_.c_str(), event::bufferevError(bev).c_str());
    if (!c->session_.closed()) c->session_.peerClosed();
    c->finish();
  }
}

void ServerConnection::send(std::string_view bytes) {
  ++replies_;
  if (!bev_) return;
  if (!plain_) {
    bufferevent_write(bev_.get(), bytes.data(), bytes.size());
    return;
  }
  if (replyBatch_.empty()) event_active(flush_.get(), 0, 0);
  replyBatch_.append(bytes);
}

void ServerConnection::onFlush(evutil_socket_t, short, void* self) {
  static_cast<ServerConnection*>(self)->flushReplies();
}

void ServerConnection::writeOut(std::string_view bytes) {
  evbuffer* out = bufferevent_get_output(bev_.get());
  if (plain_ && evbuffer_get_length(out) == 0) {
    ssize_t n = ::send(bufferevent_getfd(bev_.get()), bytes.data(), bytes.size(),
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    // EAGAIN: the bufferevent waits for room. An error (the client reset
    // the connection): the bufferevent's own write meets it again and
    // reports it through onEvent, the one place that ends a connection.
    if (n > 0) bytes.remove_prefix(static_cast<size_t>(n));
  }
  if (!bytes.empty()) bufferevent_write(bev_.get(), bytes.data(), bytes.size());
}

void ServerConnection::flushReplies() {
  if (replyBatch_.empty() || !bev_) return;
  writeOut(replyBatch_);
  replyBatch_.clear();
  event_del(flush_.get());  // when flushed early: nothing left for it
}

void ServerConnection::abandon() {
  session_.peerClosed();
  closing_ = true;
  reaper_.arm(std::chrono::milliseconds(0));
}

void ServerConnection::startTls() {
  tls::ServerContext* ctx = tlsContext();
  if (!ctx) {  // the engine offers STARTTLS only when a context is set
    YLOG_ERROR("starttls without a TLS context session=%s", logId_.c_str());
    abandon();
    return;
  }
  // The engine's "220 Ready to start TLS" leaves in clear, before the
  // handshake.
  flushReplies();
  plain_ = false;
  auto ssl = ctx->newSsl();
  size_t discarded = 0;
  Result<event::Bufferevent> top =
      ssl ? event::startTls(std::move(bev_), std::move(*ssl), event::TlsRole::Server, &discarded)
          : Result<event::Bufferevent>(ssl.error());
  if (!top) {
    YLOG_WARN("starttls failed session=%s error=\"%s\"", logId_.c_str(),
              top.error().message.c_str());
    abandon();
    return;
  }
  if (discarded > 0)
    YLOG_NOTICE("discarded %zu bytes pipelined after STARTTLS session=%s %s", discarded,
                logId_.c_str(), peerLog_.c_str());
  bev_ = std::move(*top);
  setCallbacks();
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

size_t ServerConnection::pendingOutput() const {
  return replyBatch_.size() + event::pendingOutput(bev_.get());
}

void ServerConnection::onLowerDrained(evbuffer*, const evbuffer_cb_info* info, void* self) {
  auto* c = static_cast<ServerConnection*>(self);
  if (info->n_deleted > 0 && c->closing_ && c->pendingOutput() == 0)
    c->reaper_.arm(std::chrono::milliseconds(0));
}

void ServerConnection::close() {
  closing_ = true;
  flushReplies();  // the last reply (221, 421), then the close
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
        evbuffer_add_cb(bufferevent_get_output(lower), &ServerConnection::onLowerDrained, this);
  timer_.arm(kCloseLinger);
}

void ServerConnection::shutdown() {
  shutdownRequested_ = true;
  auto s = session_.state();
  if (s == Session::State::Idle || s == Session::State::NeedHelo) session_.shutdown();
}

void ServerConnection::finish() {
  timer_.cancel();
  YLOG_INFO("disconnect session=%s %s messages=%llu", logId_.c_str(), peerLog_.c_str(),
            static_cast<unsigned long long>(messages_));
  finished();  // may destroy this
}

}  // namespace yubin::smtp
