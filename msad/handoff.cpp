// The handoff of a submitted message to mtad; see handoff.hpp.
#include "msad/handoff.hpp"

#include <event2/buffer.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "base/log.hpp"
#include "mail/address.hpp"

namespace yubin::msad {

std::string mailCommand(const smtp::Envelope& env, const std::string& authUser) {
  std::string c = "MAIL FROM:" + (env.nullSender ? std::string("<>") : env.fromRaw);
  switch (env.body) {
    case mail::Body::SevenBit:
      c += " BODY=7BIT";
      break;
    case mail::Body::EightBitMime:
      c += " BODY=8BITMIME";
      break;
    case mail::Body::BinaryMime:  // not offered by msad
    case mail::Body::Unspecified:
      break;
  }
  if (env.smtputf8) c += " SMTPUTF8";
  if (env.ret == mail::Ret::Full) c += " RET=FULL";
  if (env.ret == mail::Ret::Headers) c += " RET=HDRS";
  if (!env.envid.empty()) c += " ENVID=" + mail::xtextEncode(env.envid);
  c += " AUTH=" + (authUser.empty() ? std::string("<>") : mail::xtextEncode(authUser));
  return c + "\r\n";
}

std::string rcptCommand(const smtp::Recipient& r) {
  std::string c = "RCPT TO:" + r.raw;
  if (r.notify & mail::kNotifyNever) {
    c += " NOTIFY=NEVER";
  } else if (r.notify != 0) {
    std::string n;
    if (r.notify & mail::kNotifySuccess) n += ",SUCCESS";
    if (r.notify & mail::kNotifyFailure) n += ",FAILURE";
    if (r.notify & mail::kNotifyDelay) n += ",DELAY";
    if (!n.empty()) c += " NOTIFY=" + n.substr(1);
  }
  if (!r.orcptType.empty()) c += " ORCPT=" + r.orcptType + ";" + mail::xtextEncode(r.orcpt);
  return c + "\r\n";
}

smtp::Reply clientReplyFor(const smtp::ClientReply& r) {
  std::string text;
  for (const auto& l : r.lines) {
    if (!text.empty()) text.push_back('\n');
    text += l;
  }
  if (r.code >= 200 && r.code < 300)
    return smtp::Reply{250, r.enhanced.empty() ? "2.0.0" : r.enhanced, text};
  if (r.code >= 400 && r.code < 500)
    return smtp::Reply{r.code, r.enhanced.empty() ? "4.3.0" : r.enhanced, text};
  if (r.code >= 500 && r.code < 600)
    return smtp::Reply{r.code, r.enhanced.empty() ? "5.3.0" : r.enhanced, text};
  return smtp::reply(smtp::ReplyId::LocalError);
}

Handoff::Handoff(event_base* base, const HandoffSettings& settings, const smtp::Envelope& env,
                 std::string authUser, std::string logId, Done done)
    : base_(base),
      settings_(settings),
      mail_(mailCommand(env, authUser)),
      logId_(std::move(logId)),
      done_(std::move(done)),
      timer_(base, [this] { finish(smtp::reply(smtp::ReplyId::LocalError), "timeout"); }),
      starter_(base, [this] { connect(); }) {
  for (const auto& r : env.recipients) rcpts_.push_back(rcptCommand(r));
  starter_.arm(std::chrono::milliseconds(0));
}

Handoff::~Handoff() = default;

void Handoff::connect() {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (settings_.socketPath.size() >= sizeof sa.sun_path)
    return finish(smtp::reply(smtp::ReplyId::LocalError), "socket path too long");
  std::memcpy(sa.sun_path, settings_.socketPath.data(), settings_.socketPath.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return finish(smtp::reply(smtp::ReplyId::LocalError), std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS)
    return finish(smtp::reply(smtp::ReplyId::LocalError),
                  "connect " + settings_.socketPath + ": " + std::strerror(errno));
  auto bev = event::newSocketBufferevent(base_, std::move(fd));
  if (!bev) return finish(smtp::reply(smtp::ReplyId::LocalError), bev.error().message);
  bev_ = std::move(*bev);
  bufferevent_setcb(bev_.get(), &Handoff::onRead, &Handoff::onWrite, &Handoff::onEvent, this);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, settings_.highWater / 2, 0);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  timer_.arm(settings_.replyTimeout);
}

void Handoff::onRead(bufferevent*, void* self) { static_cast<Handoff*>(self)->readReplies(); }

void Handoff::readReplies() {
  evbuffer* in = bufferevent_get_input(bev_.get());
  while (phase_ != Phase::Done && evbuffer_get_length(in) > 0) {
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    parser_.feed(std::string_view(static_cast<const char*>(vec.iov_base), vec.iov_len));
    evbuffer_drain(in, vec.iov_len);
    if (parser_.failed())
      return finish(smtp::reply(smtp::ReplyId::LocalError), "bad reply: " + parser_.error());
    while (phase_ != Phase::Done) {
      auto r = parser_.next();
      if (!r) break;
      reply(*r);
    }
  }
}

void Handoff::reply(const smtp::ClientReply& r) {
  switch (phase_) {
    case Phase::Greeting:
      if (r.code != 220)
        return finish(smtp::reply(smtp::ReplyId::LocalError), "greeting: " + r.summary());
      phase_ = Phase::Ehlo;
      write("EHLO " + settings_.heloName + "\r\n");
      timer_.arm(settings_.replyTimeout);
      return;
    case Phase::Ehlo: {
      if (r.code != 250)
        return finish(smtp::reply(smtp::ReplyId::LocalError), "EHLO: " + r.summary());
      phase_ = Phase::Envelope;
      std::string batch = mail_;
      for (const auto& c : rcpts_) batch += c;
      batch += "DATA\r\n";
      write(batch);
      timer_.arm(settings_.replyTimeout);
      return;
    }
    case Phase::Envelope: {
      const size_t i = envelopeReplies_++;
      if (i <= rcpts_.size()) {  // MAIL, then each RCPT
        if (r.code / 100 != 2)  // a 3xx here is a broken server: clientReplyFor makes it 451
          return finish(clientReplyFor(r), (i == 0 ? "MAIL: " : "RCPT: ") + r.summary());
        timer_.arm(settings_.replyTimeout);
        return;
      }
      if (r.code != 354) return finish(clientReplyFor(r), "DATA: " + r.summary());
      phase_ = Phase::Streaming;
      flushHeld();
      return;
    }
    case Phase::Final:
      return finish(clientReplyFor(r), r.code / 100 == 2 ? "" : "refused: " + r.summary());
    case Phase::Streaming:
      return finish(smtp::reply(smtp::ReplyId::LocalError), "unexpected reply: " + r.summary());
    case Phase::Done:
      return;
  }
}

void Handoff::write(std::string_view bytes) {
  if (bev_) bufferevent_write(bev_.get(), bytes.data(), bytes.size());
}

void Handoff::flushHeld() {
  std::string out;
  dot_.encode(held_, out);
  held_.clear();
  held_.shrink_to_fit();
  if (ended_) {
    dot_.finish(out);
    phase_ = Phase::Final;
    timer_.arm(settings_.finalTimeout);
  } else {
    timer_.arm(settings_.replyTimeout);
  }
  write(out);
}

void Handoff::data(std::string_view bytes) {
  if (phase_ == Phase::Done || ended_) return;
  if (phase_ != Phase::Streaming) {
    held_.append(bytes);
    return;
  }
  std::string out;
  dot_.encode(bytes, out);
  write(out);
}

void Handoff::end() {
  if (phase_ == Phase::Done || ended_) return;
  ended_ = true;
  if (phase_ == Phase::Streaming) flushHeld();
}

size_t Handoff::pending() const {
  size_t n = held_.size();
  if (bev_) n += evbuffer_get_length(bufferevent_get_output(bev_.get()));
  if (n > settings_.highWater) const_cast<Handoff*>(this)->wasFull_ = true;
  return n;
}

void Handoff::onWrite(bufferevent*, void* self) {
  auto* h = static_cast<Handoff*>(self);
  if (h->phase_ == Phase::Streaming) h->timer_.arm(h->settings_.replyTimeout);
  if (h->wasFull_ && h->pending() <= h->settings_.highWater / 2) {
    h->wasFull_ = false;
    if (h->onDrained) h->onDrained();
  }
}

void Handoff::onEvent(bufferevent* bev, short what, void* self) {
  auto* h = static_cast<Handoff*>(self);
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    h->finish(smtp::reply(smtp::ReplyId::LocalError),
              (what & BEV_EVENT_ERROR) ? "connection error: " + event::bufferevError(bev)
                                       : std::string("mtad closed the connection"));
}

void Handoff::finish(const smtp::Reply& r, const std::string& why) {
  if (phase_ == Phase::Done) return;
  phase_ = Phase::Done;
  timer_.cancel();
  starter_.cancel();
  bev_.reset();
  held_.clear();
  if (!why.empty())
    YLOG_WARN("handoff to mtad failed session=%s reply=\"%d %s\" error=\"%s\"", logId_.c_str(),
              r.code, r.enhanced.c_str(), why.c_str());
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) done(r);  // must not destroy this (see handoff.hpp)
}

}  // namespace yubin::msad
