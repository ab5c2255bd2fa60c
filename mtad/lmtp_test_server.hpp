// A fake mdad for mtad's unit tests: Yubin's own LMTP engine (smtp::Session
// in LMTP mode) on a Unix socket, with knobs for refusing recipients,
// per-recipient final replies, silence, broken greetings and hanging up at
// chosen moments. It records every connection's input and every message.
// The same engine in SMTP mode on 127.0.0.1 stands in for a remote MX.
// Header-only; test code, local sockets and loopback only.
#pragma once

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "event/event.hpp"
#include "smtp/session.hpp"

namespace yubin::mtad::testing {

// How the fake server behaves.
struct Behaviour {
  std::map<std::string, smtp::Reply> rcptRefusals;  // at RCPT time
  std::map<std::string, smtp::Reply> finalReplies;  // after the dot; default 250
  bool silent = false;                              // accept, never answer
  std::string rawGreeting;      // sent instead of the engine's greeting (and then nothing)
  bool closeAtDataEnd = false;  // close instead of the per-recipient replies
  bool closeAtRset = false;     // close when the client sends RSET
  bool noSmtputf8 = false;
};

class FakeServer;

class ServerConn : public smtp::Io, public smtp::Policy {
 public:
  ServerConn(FakeServer& server, UniqueFd fd);
  void send(std::string_view bytes) override {
    if (bev_) bufferevent_write(bev_.get(), bytes.data(), bytes.size());
  }
  void startTls() override {}
  void close() override { closing_ = true; }
  void messageBegin(const smtp::Envelope&) override { message_.clear(); }
  void messageData(std::string_view bytes) override { message_.append(bytes); }
  void messageEnd() override;
  void messageAbort() override { message_.clear(); }
  std::optional<smtp::Reply> checkSender(const smtp::Envelope&, const mail::Address&) override {
    return std::nullopt;
  }
  std::optional<smtp::Reply> checkRecipient(const smtp::Envelope&,
                                            const mail::Address& rcpt) override;

  static void onRead(bufferevent* bev, void* self);
  static void onEvent(bufferevent*, short what, void* self);

  FakeServer& server_;
  event::Bufferevent bev_;
  std::unique_ptr<smtp::Session> session_;
  std::string message_;
  std::string input_;  // everything received, for assertions
  bool closing_ = false;
  bool gone_ = false;
};

class FakeServer {
 public:
  // LMTP on the Unix socket `path`.
  FakeServer(event_base* base, const std::string& path, Behaviour b)
      : base_(base), behaviour(std::move(b)) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    listen(std::move(fd));
  }
  // SMTP on 127.0.0.1, a free port (port).
  FakeServer(event_base* base, Behaviour b) : base_(base), behaviour(std::move(b)) {
    mode = smtp::Mode::Smtp;
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    port = ntohs(sa.sin_port);
    listen(std::move(fd));
  }
  void listen(UniqueFd fd) {
    REQUIRE(::listen(fd.get(), 16) == 0);
    auto l = event::Listener::create(base_, std::move(fd), [this](UniqueFd c, const event::Peer&) {
      ++accepted;
      conns.push_back(std::make_unique<ServerConn>(*this, std::move(c)));
    });
    REQUIRE(l);
    listener_ = std::move(*l);
  }
  event_base* base_;
  Behaviour behaviour;
  smtp::Mode mode = smtp::Mode::Lmtp;
  uint16_t port = 0;  // SMTP
  int accepted = 0;
  std::vector<std::string> messages;  // content of every message received
  // Its sender ("" for <>) and the recipients it was accepted for.
  std::vector<std::pair<std::string, std::vector<std::string>>> envelopes;
  std::vector<std::unique_ptr<ServerConn>> conns;
  std::unique_ptr<event::Listener> listener_;
};

inline ServerConn::ServerConn(FakeServer& server, UniqueFd fd) : server_(server) {
  auto bev = event::newSocketBufferevent(server.base_, std::move(fd));
  REQUIRE(bev);
  bev_ = std::move(*bev);
  bufferevent_setcb(bev_.get(), &ServerConn::onRead, nullptr, &ServerConn::onEvent, this);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  const Behaviour& b = server.behaviour;
  if (b.silent) return;
  if (!b.rawGreeting.empty()) {
    send(b.rawGreeting);
    return;
  }
  smtp::Settings s;
  s.mode = server.mode;
  s.hostname = server.mode == smtp::Mode::Lmtp ? "mdad.test" : "mx.remote.test";
  s.maxMessageSize = 0;
  session_ = std::make_unique<smtp::Session>(s, *this, *this);
  session_->greet();
}

inline void ServerConn::onRead(bufferevent* bev, void* self) {
  auto* c = static_cast<ServerConn*>(self);
  evbuffer* in = bufferevent_get_input(bev);
  std::string chunk(evbuffer_get_length(in), '\0');
  evbuffer_remove(in, chunk.data(), chunk.size());
  c->input_ += chunk;
  if (c->server_.behaviour.closeAtRset && c->input_.find("RSET\r\n") != std::string::npos) {
    c->bev_.reset();
    c->gone_ = true;
    return;
  }
  if (c->session_ && !c->gone_) c->session_->feed(chunk);
}

inline void ServerConn::onEvent(bufferevent*, short what, void* self) {
  auto* c = static_cast<ServerConn*>(self);
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (c->session_ && !c->session_->closed()) c->session_->peerClosed();
    c->bev_.reset();
    c->gone_ = true;
  }
}

inline std::optional<smtp::Reply> ServerConn::checkRecipient(const smtp::Envelope&,
                                                             const mail::Address& rcpt) {
  auto it = server_.behaviour.rcptRefusals.find(rcpt.normalized());
  if (it != server_.behaviour.rcptRefusals.end()) return it->second;
  return std::nullopt;
}

inline void ServerConn::messageEnd() {
  server_.messages.push_back(message_);
  const smtp::Envelope& env = session_->envelope();
  std::vector<std::string> rcpts;
  for (const auto& r : env.recipients) rcpts.push_back(r.address.normalized());
  server_.envelopes.push_back({env.nullSender ? std::string() : env.from.normalized(), rcpts});
  if (server_.behaviour.closeAtDataEnd) {
    bev_.reset();
    gone_ = true;
    return;
  }
  std::vector<smtp::Reply> replies;
  for (const auto& r : session_->envelope().recipients) {
    auto it = server_.behaviour.finalReplies.find(r.address.normalized());
    replies.push_back(it != server_.behaviour.finalReplies.end()
                          ? it->second
                          : smtp::reply(smtp::ReplyId::Delivered));
  }
  if (server_.mode == smtp::Mode::Lmtp)
    session_->messageDone(replies);
  else
    session_->messageDone(replies.front());  // SMTP: one reply for the transaction
}

}  // namespace yubin::mtad::testing
