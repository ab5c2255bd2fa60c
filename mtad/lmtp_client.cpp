// mtad's LMTP client; see lmtp_client.hpp.
#include "mtad/lmtp_client.hpp"

#include <event2/buffer.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "base/log.hpp"
#include "base/strings.hpp"

namespace yubin::mtad {
namespace {

using smtp::ClientReply;
using smtp::localReply;

// A server reply that must not count as a final verdict on the recipients
// (a refused greeting or LHLO is mdad's trouble, not the message's): kept as
// text inside a temporary failure.
ClientReply transientOf(std::string_view what, const ClientReply& r) {
  if (r.transient()) return r;
  return localReply(451, "4.3.0", std::string(what) + ": " + r.summary());
}

}  // namespace

// ---------------------------------------------------------------- LmtpClient

LmtpClient::LmtpClient(event_base* base, LmtpSettings settings)
    : base_(base),
      settings_(std::move(settings)),
      timer_(base, [this] { onTimeout(); }),
      kick_(base, [this] { start(); }),
      finish_(base, [this] {
        Done done = std::move(done_);
        done_ = nullptr;
        LmtpResult result = std::move(result_);
        result_ = LmtpResult();
        reader_.reset();
        // Last statement: the callback may start the next transaction.
        done(std::move(result));
      }) {}

LmtpClient::~LmtpClient() = default;

const char* LmtpClient::stateName(State s) {
  switch (s) {
    case State::Disconnected:
      return "disconnected";
    case State::Greeting:
      return "greeting";
    case State::Lhlo:
      return "LHLO";
    case State::Ready:
      return "ready";
    case State::Envelope:
      return "MAIL/RCPT";
    case State::Data:
      return "DATA";
    case State::Content:
      return "message content";
    case State::Final:
      return "end of data";
  }
  return "?";
}

void LmtpClient::setState(State s) {
  YLOG_DEBUG("lmtp %s -> %s id=%s", stateName(state_), stateName(s), req_.logId.c_str());
  state_ = s;
}

void LmtpClient::send(LmtpRequest request, Done done) {
  if (busy()) fatal("LmtpClient::send while a transaction is running");
  req_ = std::move(request);
  done_ = std::move(done);
  result_ = LmtpResult();
  result_.replies.assign(req_.recipients.size(), ClientReply());
  answered_.assign(req_.recipients.size(), false);
  accepted_.clear();
  expected_ = 0;
  rcptIndex_ = 0;
  finalIndex_ = 0;
  sentRset_ = false;
  mailOk_ = false;
  gotReply_ = false;
  mailFailure_.reset();
  reader_.reset();
  dot_ = DotEncoder();
  contentDone_ = false;
  kick_.arm(std::chrono::milliseconds(0));
}

void LmtpClient::start() {
  result_.reuse = transactions_;
  if (req_.recipients.empty()) {
    finish_.arm(std::chrono::milliseconds(0));
    return;
  }
  if (state_ == State::Ready) {
    reused_ = true;
    timer_.cancel();
    sendEnvelope();
    return;
  }
  if (state_ != State::Disconnected)
    fatal("LmtpClient: transaction started in state %s", stateName(state_));
  reused_ = false;
  connect();
}

void LmtpClient::connect() {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (settings_.socketPath.empty() || settings_.socketPath.size() >= sizeof sa.sun_path) {
    fail(localReply(451, "4.3.5", "LMTP socket path is empty or too long"), true);
    return;
  }
  std::memcpy(sa.sun_path, settings_.socketPath.data(), settings_.socketPath.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    fail(localReply(451, "4.3.0", std::string("LMTP socket: ") + std::strerror(errno)), true);
    return;
  }
  // A Unix stream connect completes or fails at once (EAGAIN: the server's
  // backlog is full), so there is no connecting state.
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int err = errno;
    fail(localReply(
             421, "4.4.1",
             "cannot connect to LMTP socket " + settings_.socketPath + ": " + std::strerror(err)),
         true);
    return;
  }
  auto bev = event::newSocketBufferevent(base_, std::move(fd));
  if (!bev) {
    fail(localReply(451, "4.3.0", "LMTP connection: " + bev.error().message), true);
    return;
  }
  bev_ = std::move(*bev);
  parser_ = smtp::ReplyParser();
  pipelining_ = eightBitMime_ = smtputf8_ = false;
  transactions_ = 0;
  bufferevent_setcb(bev_.get(), &LmtpClient::onRead, &LmtpClient::onWrite, &LmtpClient::onEvent,
                    this);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, settings_.outputHighWater / 4, 0);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  setState(State::Greeting);
  armTimer(settings_.connectTimeout);
}

void LmtpClient::write(std::string_view bytes) {
  if (bev_) bufferevent_write(bev_.get(), bytes.data(), bytes.size());
}

void LmtpClient::armTimer(std::chrono::milliseconds t) { timer_.arm(t); }

void LmtpClient::onRead(bufferevent*, void* self) { static_cast<LmtpClient*>(self)->readReplies(); }

void LmtpClient::readReplies() {
  if (!bev_) return;
  evbuffer* in = bufferevent_get_input(bev_.get());
  while (evbuffer_get_length(in) > 0) {
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    parser_.feed(std::string_view(static_cast<const char*>(vec.iov_base), vec.iov_len));
    evbuffer_drain(in, vec.iov_len);
  }
  while (state_ != State::Disconnected) {
    auto r = parser_.next();
    if (!r) break;
    reply(*r);
  }
  if (state_ != State::Disconnected && parser_.failed()) {
    YLOG_WARN("lmtp protocol error id=%s state=%s error=\"%s\"", req_.logId.c_str(),
              stateName(state_), parser_.error().c_str());
    if (busy() && !finish_.pending()) {
      fail(localReply(451, "4.5.0", "LMTP protocol error: " + parser_.error()), true);
    } else {
      disconnect();
      if (onIdleClose_) onIdleClose_();
    }
  }
}

void LmtpClient::reply(const ClientReply& r) {
  switch (state_) {
    case State::Greeting:
      if (r.code != 220) {
        fail(transientOf("LMTP greeting", r), true);
        return;
      }
      write("LHLO " + settings_.lhloName + "\r\n");
      setState(State::Lhlo);
      armTimer(settings_.replyTimeout);
      return;

    case State::Lhlo:
      if (r.code != 250) {
        fail(transientOf("LMTP LHLO", r), true);
        return;
      }
      for (size_t i = 1; i < r.lines.size(); ++i) {
        auto words = splitAny(r.lines[i], " ");
        if (words.empty()) continue;
        if (iequals(words[0], "PIPELINING")) pipelining_ = true;
        if (iequals(words[0], "8BITMIME")) eightBitMime_ = true;
        if (iequals(words[0], "SMTPUTF8")) smtputf8_ = true;
      }
      setState(State::Ready);
      sendEnvelope();
      return;

    case State::Envelope: {
      gotReply_ = true;
      if (expected_ > 0) --expected_;
      if (sentRset_) {
        sentRset_ = false;
        if (r.code != 250) fail(transientOf("LMTP RSET", r), true);
        return;
      }
      // Only a 2xx accepts MAIL or RCPT; a 3xx there is a broken server,
      // a temporary failure, never an acceptance (as in smtp_client.cpp).
      if (!mailOk_ && !mailFailure_) {
        if (r.code / 100 == 2)
          mailOk_ = true;
        else
          mailFailure_ = r.code / 100 == 3 ? transientOf("LMTP MAIL", r) : r;
      } else {
        size_t i = rcptIndex_++;
        if (i >= req_.recipients.size()) fatal("LmtpClient: more RCPT replies than recipients");
        if (mailFailure_) {
          result_.replies[i] = *mailFailure_;
          answered_[i] = true;
        } else if (r.code / 100 == 2) {
          accepted_.push_back(i);
        } else {
          result_.replies[i] = r.code / 100 == 3 ? transientOf("LMTP RCPT", r) : r;
          answered_[i] = true;
        }
      }
      if (expected_ > 0) return;
      if (accepted_.empty()) {
        complete();
        return;
      }
      write("DATA\r\n");
      setState(State::Data);
      armTimer(settings_.replyTimeout);
      return;
    }

    case State::Data:
      if (r.code != 354) {
        // The content was not sent: a 2xx here (or a 3xx other than 354)
        // is a broken server, never a delivery (found by the lmtp_client
        // fuzz target: a 250 marked the message delivered unsent).
        for (size_t i : accepted_) {
          result_.replies[i] = r.permanent() ? r : transientOf("LMTP DATA", r);
          answered_[i] = true;
        }
        complete();
        return;
      }
      if (!req_.file) fatal("LmtpClient: no message to send");
      reader_.emplace(req_.file->reader(settings_.readChunk));
      setState(State::Content);
      armTimer(settings_.dataTimeout);
      sendContent();
      return;

    case State::Final: {
      size_t i = accepted_[finalIndex_++];
      result_.replies[i] = r.code / 100 == 3 ? transientOf("LMTP end of data", r) : r;
      answered_[i] = true;
      if (finalIndex_ < accepted_.size()) {
        armTimer(settings_.dataTimeout);
        return;
      }
      complete();
      return;
    }

    case State::Content:
      fail(localReply(451, "4.5.0",
                      "LMTP server replied while the message was being sent: " + r.summary()),
           true);
      return;

    case State::Ready:
      // Unsolicited: a 421 before the server closes an idle connection.
      YLOG_DEBUG("lmtp idle connection got \"%s\"", r.summary().c_str());
      disconnect();
      if (onIdleClose_) onIdleClose_();
      return;

    case State::Disconnected:
      return;
  }
}

void LmtpClient::sendEnvelope() {
  if (req_.smtputf8 && !smtputf8_) {
    fail(localReply(451, "4.3.0", "the LMTP server does not offer SMTPUTF8"), false);
    return;
  }
  std::string out;
  if (transactions_ > 0) {
    out += "RSET\r\n";
    sentRset_ = true;
  }
  out += "MAIL FROM:<" + req_.sender + ">";
  if (eightBitMime_ &&
      (req_.body == queue::Body::EightBitMime || req_.body == queue::Body::BinaryMime))
    out += " BODY=8BITMIME";
  if (req_.smtputf8) out += " SMTPUTF8";
  out += "\r\n";
  for (const auto& r : req_.recipients) out += "RCPT TO:<" + r + ">\r\n";
  expected_ = (sentRset_ ? 1 : 0) + 1 + req_.recipients.size();
  setState(State::Envelope);
  write(out);
  armTimer(settings_.replyTimeout);
}

void LmtpClient::onWrite(bufferevent*, void* self) {
  auto* c = static_cast<LmtpClient*>(self);
  if (c->state_ == State::Content) {
    c->armTimer(c->settings_.dataTimeout);  // progress
    c->sendContent();
  }
}

void LmtpClient::sendContent() {
  evbuffer* out = bufferevent_get_output(bev_.get());
  std::string buf;
  while (!contentDone_ && evbuffer_get_length(out) < settings_.outputHighWater) {
    auto chunk = reader_->next();
    if (!chunk) {
      YLOG_ERROR("cannot read queued message id=%s error=\"%s\"", req_.logId.c_str(),
                 chunk.error().message.c_str());
      result_.fileError = chunk.error();
      // Closing before the final dot makes the server discard the message.
      fail(localReply(451, "4.3.0", "cannot read the queued message: " + chunk.error().message),
           true);
      return;
    }
    buf.clear();
    if (chunk->empty()) {
      dot_.finish(buf);
      contentDone_ = true;
    } else {
      dot_.encode(*chunk, buf);
    }
    write(buf);
  }
  if (contentDone_) {
    expected_ = accepted_.size();
    setState(State::Final);
    armTimer(settings_.dataTimeout);
  }
}

void LmtpClient::onEvent(bufferevent* bev, short what, void* self) {
  auto* c = static_cast<LmtpClient*>(self);
  if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) return;
  // Replies that came with the close still count.
  c->readReplies();
  if (c->state_ == State::Disconnected) return;
  std::string why = (what & BEV_EVENT_ERROR) ? event::bufferevError(bev) : "closed by the server";
  if (c->busy() && !c->finish_.pending()) {
    c->fail(
        localReply(421, "4.4.2",
                   std::string("LMTP connection lost during ") + stateName(c->state_) + ": " + why),
        true);
    return;
  }
  c->disconnect();
  if (c->onIdleClose_) c->onIdleClose_();
}

void LmtpClient::onTimeout() {
  if (state_ == State::Ready) {
    YLOG_DEBUG("lmtp closing idle connection");
    quit();
    disconnect();
    if (onIdleClose_) onIdleClose_();
    return;
  }
  if (!busy() || finish_.pending()) return;
  fail(localReply(421, "4.4.2", std::string("LMTP timeout waiting during ") + stateName(state_)),
       true);
}

void LmtpClient::fail(const ClientReply& why, bool closeConnection) {
  for (size_t i = 0; i < answered_.size(); ++i) {
    if (answered_[i]) continue;
    result_.replies[i] = why;
    answered_[i] = true;
  }
  // Only a connection failure (not a reply) on a reused connection, before
  // the server said anything about this transaction.
  result_.retryable = closeConnection && reused_ && !gotReply_ && why.code == 421;
  if (closeConnection) {
    disconnect();
  } else if (state_ != State::Disconnected) {
    setState(State::Ready);
    armTimer(settings_.idleTimeout);
  }
  finish_.arm(std::chrono::milliseconds(0));
}

void LmtpClient::complete() {
  ++transactions_;
  setState(State::Ready);
  armTimer(settings_.idleTimeout);
  finish_.arm(std::chrono::milliseconds(0));
}

void LmtpClient::quit() {
  // Written straight to the socket: the bufferevent is freed right after,
  // and whatever it still buffers would be dropped. A polite goodbye, not a
  // promise: if it does not fit at once, the server sees a plain close.
  if (!bev_ || evbuffer_get_length(bufferevent_get_output(bev_.get())) != 0) return;
  static constexpr char kQuit[] = "QUIT\r\n";
  [[maybe_unused]] ssize_t n =
      ::send(bufferevent_getfd(bev_.get()), kQuit, sizeof kQuit - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void LmtpClient::disconnect() {
  timer_.cancel();
  bev_.reset();
  parser_ = smtp::ReplyParser();
  transactions_ = 0;
  if (state_ != State::Disconnected) setState(State::Disconnected);
}

void LmtpClient::close() {
  if (busy() && !finish_.pending()) {
    fail(localReply(421, "4.3.2", "LMTP client shutting down"), true);
    return;
  }
  if (state_ == State::Ready) quit();
  disconnect();
}

}  // namespace yubin::mtad
