// Test helpers for code that runs on an event loop: loopback sockets on port
// 0, a connection that records what it receives, and a watchdog that fails a
// test instead of hanging it. Header-only; used by unit tests only.
// Trust: test code, loopback only.
#pragma once

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "base/log.hpp"
#include "event/event.hpp"

namespace yubin::event::testing {

// A listening TCP socket on 127.0.0.1, any free port.
inline UniqueFd listenLoopback(uint16_t* port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) fatal("socket: %s", std::strerror(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::listen(fd.get(), 16) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    fatal("loopback listen: %s", std::strerror(errno));
  *port = ntohs(sa.sin_port);
  return fd;
}

// A connected client socket. The kernel completes a loopback handshake
// against a listening socket at once, even before accept().
inline UniqueFd connectLoopback(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    fatal("loopback connect: %s", std::strerror(errno));
  return fd;
}

// Fails the loop (breaks it and records it) if a test takes longer than it
// ever should; never a sleep the test relies on.
class Watchdog {
 public:
  explicit Watchdog(event_base* base, std::chrono::seconds limit = std::chrono::seconds(10))
      : timer_(base, [this, base] {
          fired_ = true;
          event_base_loopbreak(base);
        }) {
    timer_.arm(limit);
  }
  bool fired() const { return fired_; }

 private:
  Timer timer_;
  bool fired_ = false;
};

// A bufferevent with its callbacks as std::functions and everything it read.
struct Conn {
  Bufferevent bev;
  std::string received;
  short events = 0;       // every BEV_EVENT_* flag seen
  bool peekOnly = false;  // leave the input in the bufferevent for onRead
  std::function<void(Conn&)> onRead;
  std::function<void(Conn&, short)> onEvent;

  void attach(Bufferevent b) {
    bev = std::move(b);
    bufferevent_setcb(bev.get(), &Conn::readCb, nullptr, &Conn::eventCb, this);
    bufferevent_enable(bev.get(), EV_READ | EV_WRITE);
  }
  void write(const std::string& s) { bufferevent_write(bev.get(), s.data(), s.size()); }

  static void readCb(bufferevent* b, void* self) {
    auto* c = static_cast<Conn*>(self);
    if (c->peekOnly) {
      if (c->onRead) c->onRead(*c);
      return;
    }
    evbuffer* in = bufferevent_get_input(b);
    size_t n = evbuffer_get_length(in);
    std::string chunk(n, '\0');
    evbuffer_remove(in, chunk.data(), n);
    c->received += chunk;
    if (c->onRead) c->onRead(*c);
  }
  static void eventCb(bufferevent*, short what, void* self) {
    auto* c = static_cast<Conn*>(self);
    c->events |= what;
    if (c->onEvent) c->onEvent(*c, what);
  }
};

}  // namespace yubin::event::testing
