// One outgoing SMTP connection; see smtp_connection.hpp.
#include "mtad/smtp_connection.hpp"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "base/log.hpp"
#include "tls/tls.hpp"

namespace yubin::mtad {
namespace {

using smtp::ClientReply;
using smtp::localReply;

constexpr int kBevOptions = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;

}  // namespace

std::string SmtpEndpoint::text() const {
  return host + "[" + ip + "]:" + std::to_string(port);
}

SmtpConnection::SmtpConnection(event_base* base, SmtpEndpoint endpoint,
                               SmtpConnectionSettings settings)
    : base_(base),
      endpoint_(std::move(endpoint)),
      settings_(std::move(settings)),
      client_(settings_.client),
      timer_(base, [this] { onTimeout(); }),
      notify_(base, [this] {
        // Each callback is the last use of `this` in its branch: it may hand
        // the connection back to a pool or start the next transaction.
        if (openResult_ && openDone_) {
          auto r = std::move(*openResult_);
          openResult_.reset();
          OpenDone done = std::move(openDone_);
          openDone_ = nullptr;
          done(std::move(r));
          return;
        }
        if (sendResult_ && sendDone_) {
          auto r = std::move(*sendResult_);
          sendResult_.reset();
          SendDone done = std::move(sendDone_);
          sendDone_ = nullptr;
          reader_.reset();
          done(std::move(r));
          return;
        }
        if (idleClosePending_) {
          idleClosePending_ = false;
          if (onIdleClose_) onIdleClose_();
        }
      }) {}

SmtpConnection::~SmtpConnection() = default;

bool SmtpConnection::ready() const {
  return bev_ && client_.state() == SmtpClient::State::Ready && !openDone_ && !sendDone_ &&
         !notify_.pending();
}

void SmtpConnection::open(OpenDone done) {
  openDone_ = std::move(done);
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, endpoint_.ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(endpoint_.port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, endpoint_.ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(endpoint_.port);
    len = sizeof *v6;
  } else {
    lost(localReply(451, "4.4.0", "not an IP address: " + endpoint_.ip), false);
    return;
  }
  bev_.reset(bufferevent_socket_new(base_, -1, kBevOptions));
  if (!bev_) {
    lost(localReply(451, "4.3.0", "cannot make a bufferevent"), false);
    return;
  }
  bufferevent_setcb(bev_.get(), &SmtpConnection::onRead, &SmtpConnection::onWrite,
                    &SmtpConnection::onEvent, this);
  connecting_ = true;
  timer_.arm(settings_.connectTimeout);
  if (bufferevent_socket_connect(bev_.get(), reinterpret_cast<sockaddr*>(&ss),
                                 static_cast<int>(len)) != 0) {
    int err = EVUTIL_SOCKET_ERROR();
    connecting_ = false;
    lost(localReply(421, "4.4.1",
                    "cannot connect to " + endpoint_.text() + ": " +
                        (err ? std::strerror(err) : "connect failed")),
         false);
    return;
  }
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

void SmtpConnection::connected() {
  connecting_ = false;
  bufferevent_setwatermark(bev_.get(), EV_WRITE, settings_.outputHighWater / 4, 0);
  if (settings_.client.implicitTls) {
    if (auto st = startTls(); !st) {
      lost(localReply(451, "4.7.5", "TLS: " + st.error().message), true);
      return;
    }
  }
  timer_.arm(settings_.client.greetingTimeout);
  armedFor_ = SmtpClient::State::Greeting;
}

Status SmtpConnection::startTls() {
  if (!settings_.tlsContext) return Error{"no TLS client context"};
  auto ssl = tls::prepareClient(settings_.tlsContext, endpoint_.host);
  if (!ssl) return ssl.error();
  size_t discarded = 0;
  auto tlsBev = event::startTls(std::move(bev_), std::move(*ssl), event::TlsRole::Client, &discarded);
  if (!tlsBev) return tlsBev.error();
  if (discarded > 0)
    YLOG_WARN("smtp client discarded bytes sent in clear after STARTTLS host=%s bytes=%zu",
              endpoint_.text().c_str(), discarded);
  bev_ = std::move(*tlsBev);
  bufferevent_setcb(bev_.get(), &SmtpConnection::onRead, &SmtpConnection::onWrite,
                    &SmtpConnection::onEvent, this);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, settings_.outputHighWater / 4, 0);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  handshaking_ = true;
  return {};
}

void SmtpConnection::onRead(bufferevent*, void* self) {
  auto* c = static_cast<SmtpConnection*>(self);
  c->readInput();
  // A reply came: the next wait gets its full time again.
  if (c->client_.state() != SmtpClient::State::Content) c->armedFor_ = SmtpClient::State::Closed;
  c->pump();
}

void SmtpConnection::readInput() {
  if (!bev_ || handshaking_) return;
  evbuffer* in = bufferevent_get_input(bev_.get());
  while (bev_ && evbuffer_get_length(in) > 0) {
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    client_.feed(std::string_view(static_cast<const char*>(vec.iov_base), vec.iov_len));
    evbuffer_drain(in, vec.iov_len);
    // After the 220 to STARTTLS the rest of the input is dropped by the
    // client and by event::startTls; stop here.
    if (client_.state() == SmtpClient::State::TlsHandshake) break;
  }
}

void SmtpConnection::pump() {
  using S = SmtpClient::State;
  std::string out = client_.takeOutput();
  if (!out.empty() && bev_) bufferevent_write(bev_.get(), out.data(), out.size());
  S s = client_.state();
  if (s == S::TlsHandshake && !handshaking_ && bev_) {
    if (auto st = startTls(); !st) {
      lost(localReply(451, "4.7.5", "STARTTLS: " + st.error().message), true);
      return;
    }
    timer_.arm(settings_.client.commandTimeout);
    armedFor_ = s;
  }
  if (s == S::Content && !streaming_) {
    streaming_ = true;
    contentDone_ = false;
    dot_ = smtp::DotEncoder();
    reader_.emplace(file_->reader(settings_.readChunk));
    timer_.arm(client_.timeout());
    armedFor_ = s;
    streamContent();
    return;
  }
  if (auto r = client_.takeResult()) {
    streaming_ = false;
    sendResult_ = std::move(*r);
    notify_.arm(std::chrono::milliseconds(0));
  }
  s = client_.state();
  if (s == S::Ready && openDone_ && !openResult_) {
    tlsSession_ = tls::describeSession(event::sslOf(bev_.get()));
    openResult_.emplace(std::nullopt);
    notify_.arm(std::chrono::milliseconds(0));
  }
  if (s == S::Closed) {
    if (openDone_ && !openResult_) {
      openResult_.emplace(client_.setupFailure()
                              ? client_.setupFailure()
                              : SetupFailure{localReply(421, "4.4.2", "connection closed"), false});
      notify_.arm(std::chrono::milliseconds(0));
    } else if (!sendDone_ && !openDone_) {
      idleClosePending_ = true;
      notify_.arm(std::chrono::milliseconds(0));
    }
    teardown();
    return;
  }
  if (s == S::Ready) {
    if (armedFor_ != S::Ready) {
      timer_.arm(settings_.idleTimeout);
      armedFor_ = S::Ready;
    }
  } else if (s != S::Content && s != armedFor_) {
    timer_.arm(client_.timeout());
    armedFor_ = s;
  }
}

void SmtpConnection::send(const SmtpMessage& message, const queue::QueueFile* file,
                          std::string logId, SendDone done) {
  if (!ready()) fatal("SmtpConnection::send on a connection that is not ready");
  file_ = file;
  logId_ = std::move(logId);
  sendDone_ = std::move(done);
  armedFor_ = SmtpClient::State::Closed;  // re-arm for the new state
  client_.send(message);
  pump();
}

void SmtpConnection::onWrite(bufferevent*, void* self) {
  auto* c = static_cast<SmtpConnection*>(self);
  if (c->streaming_ && !c->contentDone_ && c->client_.state() == SmtpClient::State::Content) {
    c->timer_.arm(c->client_.timeout());  // progress
    c->streamContent();
  }
}

void SmtpConnection::streamContent() {
  evbuffer* out = bufferevent_get_output(bev_.get());
  std::string buf;
  while (!contentDone_ && evbuffer_get_length(out) < settings_.outputHighWater) {
    auto chunk = reader_->next();
    if (!chunk) {
      YLOG_ERROR("cannot read queued message id=%s error=\"%s\"", logId_.c_str(),
                 chunk.error().message.c_str());
      // Closing before the final dot makes the server drop the message.
      lost(localReply(451, "4.3.0", "cannot read the queued message: " + chunk.error().message),
           false);
      return;
    }
    buf.clear();
    if (chunk->empty()) {
      dot_.finish(buf);
      contentDone_ = true;
    } else {
      dot_.encode(*chunk, buf);
    }
    bufferevent_write(bev_.get(), buf.data(), buf.size());
  }
  if (contentDone_) {
    client_.contentSent();
    streaming_ = false;
    pump();
  }
}

void SmtpConnection::onEvent(bufferevent* bev, short what, void* self) {
  auto* c = static_cast<SmtpConnection*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    if (c->connecting_) {
      c->connected();
      c->pump();
      return;
    }
    if (c->handshaking_) {
      c->handshaking_ = false;
      c->tlsSession_ = tls::describeSession(event::sslOf(c->bev_.get()));
      YLOG_DEBUG("smtp client TLS up host=%s session=\"%s\"", c->endpoint_.text().c_str(),
                 c->tlsSession_.c_str());
      if (!c->settings_.client.implicitTls) c->client_.tlsStarted();
      c->readInput();
      c->pump();
    }
    return;
  }
  if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) return;
  if (!c->handshaking_ && !c->connecting_) c->readInput();  // replies that came with the close
  if (c->client_.state() == SmtpClient::State::Closed) {
    c->pump();
    return;
  }
  if (c->connecting_) {
    int err = EVUTIL_SOCKET_ERROR();
    c->connecting_ = false;
    c->lost(localReply(421, "4.4.1",
                       "cannot connect to " + c->endpoint_.text() + ": " +
                           (err ? std::strerror(err) : "connection refused")),
            false);
    return;
  }
  if (c->handshaking_) {
    std::string why;
    if (SSL* ssl = event::sslOf(bev)) {
      long rc = SSL_get_verify_result(ssl);
      if (c->settings_.verify && rc != X509_V_OK)
        why = std::string("certificate verification failed: ") + X509_verify_cert_error_string(rc);
    }
    std::string err = event::bufferevError(bev);
    if (why.empty()) why = "TLS handshake failed: " + err;
    c->lost(localReply(421, "4.7.5", why + " (" + c->endpoint_.text() + ")"), true);
    return;
  }
  std::string why = (what & BEV_EVENT_ERROR) ? event::bufferevError(bev) : "closed by the server";
  c->lost(localReply(421, "4.4.2",
                     std::string("connection to ") + c->endpoint_.text() + " lost during " +
                         SmtpClient::stateName(c->client_.state()) + ": " + why),
          false);
}

void SmtpConnection::onTimeout() {
  using S = SmtpClient::State;
  if (client_.state() == S::Ready && !connecting_ && (openDone_ || sendDone_)) {
    // Ready, but the owner has not had its answer yet (the callback waits
    // on notify_, armed at the same moment; a short idle time, such as
    // remote_connection_cache_time = 0, can expire first, and libevent
    // does not order timers that are due together). The idle time counts
    // from when the owner could use the connection: wait again.
    timer_.arm(std::max(settings_.idleTimeout, std::chrono::milliseconds(1)));
    return;
  }
  if (client_.state() == S::Ready && !connecting_) {
    YLOG_DEBUG("smtp client closing idle connection host=%s", endpoint_.text().c_str());
    client_.quit();
    pump();
    return;
  }
  std::string during = connecting_ ? std::string("connect") : SmtpClient::stateName(client_.state());
  if (client_.state() == S::Quit) {
    client_.connectionLost(localReply(421, "4.4.2", "timeout after QUIT"));
    pump();
    return;
  }
  lost(localReply(421, "4.4.2",
                  "timeout talking to " + endpoint_.text() + " during " + during),
       handshaking_);
}

void SmtpConnection::lost(const ClientReply& why, bool tls) {
  client_.connectionLost(why, tls);
  pump();
}

void SmtpConnection::teardown() {
  timer_.cancel();
  streaming_ = false;
  connecting_ = false;
  handshaking_ = false;
  if (!bev_) return;
  // A plain connection with nothing else queued: the QUIT (or whatever
  // was last written) goes straight to the socket before the close. Over
  // TLS the close is just a close.
  if (!event::sslOf(bev_.get())) {
    evbuffer* out = bufferevent_get_output(bev_.get());
    size_t n = evbuffer_get_length(out);
    int fd = bufferevent_getfd(bev_.get());
    if (n > 0 && n <= 64 && fd >= 0) {
      std::string tail(n, '\0');
      evbuffer_copyout(out, tail.data(), n);
      [[maybe_unused]] ssize_t w = ::send(fd, tail.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
  }
  bev_.reset();
}

void SmtpConnection::close() {
  using S = SmtpClient::State;
  if (client_.state() == S::Ready) {
    client_.quit();
    std::string out = client_.takeOutput();
    if (!out.empty() && bev_) bufferevent_write(bev_.get(), out.data(), out.size());
  }
  if (client_.state() != S::Closed)
    client_.connectionLost(localReply(421, "4.3.2", "mtad is shutting down"));
  // No callbacks after an explicit close.
  openDone_ = nullptr;
  sendDone_ = nullptr;
  onIdleClose_ = nullptr;
  notify_.cancel();
  teardown();
}

}  // namespace yubin::mtad
