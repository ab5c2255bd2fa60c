// One LMTP connection of mdad; see connection.hpp.
#include "mdad/connection.hpp"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <cerrno>

#include "base/log.hpp"
#include "mdad/mdad.hpp"

namespace yubin::mdad {
namespace {

// Unprocessed input held by the engine; past it the connection stops
// reading (the kernel's buffers push back on the client).
constexpr size_t kMaxBufferedInput = 256 * 1024;
// Replies queued for a client that does not read them; past it we stop
// reading its commands until the output drains.
constexpr size_t kMaxPendingOutput = 256 * 1024;

std::string peerCredentials(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "uid=? pid=?";
  return "uid=" + std::to_string(cred.uid) + " pid=" + std::to_string(cred.pid);
}

}  // namespace

Connection::Connection(Mdad& server, UniqueFd fd, const event::Peer&, smtp::Settings settings)
    : server_(server),
      logId_(settings.logId),
      peerText_(peerCredentials(fd.get())),
      pendingFd_(std::move(fd)),
      session_(std::move(settings), server.policy(), *this),
      timer_(server.base(),
             [this] {
               YLOG_INFO("session timeout session=%s", logId_.c_str());
               session_.timeout();
             }),
      reaper_(server.base(), [this] { finish(); }) {}

Connection::~Connection() = default;

Status Connection::start(std::optional<smtp::Reply> refusal) {
  auto bev = event::newSocketBufferevent(server_.base(), std::move(pendingFd_));
  if (!bev) return bev.error();
  bev_ = std::move(*bev);
  bufferevent_setcb(bev_.get(), &Connection::onRead, &Connection::onWrite, &Connection::onEvent,
                    this);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  YLOG_INFO("connect session=%s peer=\"%s\"", logId_.c_str(), peerText_.c_str());
  if (refusal) {
    session_.refuse(*refusal);
  } else {
    session_.greet();
    armTimer();
  }
  return {};
}

void Connection::armTimer() {
  if (session_.closed()) return;
  timer_.arm(std::chrono::duration_cast<std::chrono::milliseconds>(session_.timeoutNow()));
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
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) c->finish();
    return;
  }
  // Output drained below the bound: resume reading if we paused for it.
  if (!(bufferevent_get_enabled(bev) & EV_READ) && c->session_.buffered() <= kMaxBufferedInput) {
    bufferevent_enable(bev, EV_READ);
    c->readInput();
  }
}

void Connection::onEvent(bufferevent* bev, short what, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (what & BEV_EVENT_ERROR)
      YLOG_INFO("connection error session=%s error=\"%s\"", c->logId_.c_str(),
                event::bufferevError(bev).c_str());
    if (!c->session_.closed()) c->session_.peerClosed();
    c->finish();
  }
}

void Connection::send(std::string_view bytes) {
  if (bev_) bufferevent_write(bev_.get(), bytes.data(), bytes.size());
}

void Connection::startTls() {
  // LMTP mode never offers STARTTLS; the engine cannot get here.
  YLOG_ERROR("starttls on an LMTP session session=%s", logId_.c_str());
  session_.peerClosed();
  closing_ = true;
  reaper_.arm(std::chrono::milliseconds(0));
}

void Connection::close() {
  closing_ = true;
  timer_.cancel();
  if (bev_) bufferevent_disable(bev_.get(), EV_READ);
  // Finish from the loop, never inside the engine's call stack; with output
  // still queued, onWrite finishes once it is flushed.
  if (!bev_ || evbuffer_get_length(bufferevent_get_output(bev_.get())) == 0)
    reaper_.arm(std::chrono::milliseconds(0));
}

void Connection::shutdown() {
  shutdownRequested_ = true;
  auto s = session_.state();
  if (s == smtp::Session::State::Idle || s == smtp::Session::State::NeedHelo) session_.shutdown();
}

void Connection::messageBegin(const smtp::Envelope&) {
  auto s = SpoolFile::create(server_.settings().spoolDir);
  if (!s) {
    // Reported per recipient at the end of the data; until then the data
    // is read and dropped.
    YLOG_WARN("spool file not created session=%s error=\"%s\"", logId_.c_str(),
              s.error().message.c_str());
    spool_ = SpoolFile();
    spoolError_ = s.error();
    return;
  }
  spoolError_.reset();
  spool_ = std::move(*s);
}

void Connection::messageData(std::string_view bytes) { spool_.append(bytes); }

void Connection::messageEnd() {
  timer_.cancel();
  const smtp::Envelope& env = session_.envelope();
  const bool quotaTemporary = server_.deliverer().settings().quotaTemporary;
  const std::string sender = env.nullSender ? std::string() : env.from.normalized();
  const size_t n = env.recipients.size();

  // A failure that concerns the message itself answers every recipient.
  std::optional<Outcome> common;
  std::optional<store::FileSource> source;
  if (spoolError_) {
    common = outcomeOfError(*spoolError_);
  } else if (auto src = spool_.finish(); !src) {
    YLOG_WARN("spool write failed session=%s error=\"%s\"", logId_.c_str(),
              src.error().message.c_str());
    common = outcomeOfError(src.error());
  } else {
    source.emplace(std::move(*src));
    if (auto bad = checkMessage(*source)) {
      YLOG_NOTICE("message refused session=%s size=%llu outcome=%s", logId_.c_str(),
                  static_cast<unsigned long long>(source->size()),
                  std::string(outcomeName(*bad)).c_str());
      common = bad;
    }
  }
  spool_ = SpoolFile();
  spoolError_.reset();

  std::vector<smtp::Reply> replies;
  replies.reserve(n);
  size_t delivered = 0;
  Deliverer::Served served;
  for (const smtp::Recipient& r : env.recipients) {
    Outcome o = common ? *common
                       : server_.deliverer().deliverToRecipient(
                             server_.directory(), server_.policy().addressOf(r.address), *source,
                             sender, logId_, served);
    if (o == Outcome::Delivered) ++delivered;
    replies.push_back(replyFor(o, quotaTemporary));
  }
  ++messages_;
  YLOG_INFO("message done session=%s from=<%s> size=%llu nrcpt=%zu delivered=%zu", logId_.c_str(),
            sender.c_str(), static_cast<unsigned long long>(source ? source->size() : 0), n,
            delivered);
  session_.messageDone(replies);  // may process pipelined commands at once
}

void Connection::messageAbort() {
  spool_.discard();
  spoolError_.reset();
}

void Connection::finish() {
  timer_.cancel();
  spool_.discard();
  YLOG_INFO("disconnect session=%s messages=%llu", logId_.c_str(),
            static_cast<unsigned long long>(messages_));
  server_.closed(this);  // destroys this
}

}  // namespace yubin::mdad
