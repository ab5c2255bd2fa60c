// libevent helpers: RAII owners for event_base, event, bufferevent and
// evconnlistener; a Listener that accepts on an already bound socket; a
// callback-owning Timer and Signal; and the three ways a session gets its
// bufferevent: plain socket, implicit TLS on a socket (ports 465, 993, 995),
// and STARTTLS as a TLS filter over the existing plain bufferevent
// (RFC 3207, RFC 2595).
// Trust: carries untrusted network bytes but never parses them; runs in every
// daemon after the privilege drop. Single-threaded: one event_base per process.
#pragma once

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::event {

using EventBase = CPtr<event_base, event_base_free>;
using Event = CPtr<struct event, event_free>;
using Bufferevent = CPtr<bufferevent, bufferevent_free>;
using ConnListener = CPtr<evconnlistener, evconnlistener_free>;
// Same type as tls::SslPtr; spelled here so event does not depend on tls.
using SslPtr = CPtr<SSL, SSL_free>;

Result<EventBase> newEventBase();

// Where a connection came from. ip is the numeric address without brackets
// ("192.0.2.1", "2001:db8::1", IPv4-mapped IPv6 shown as IPv4); empty for a
// Unix socket, where port is 0.
struct Peer {
  std::string ip;
  uint16_t port = 0;
  bool isUnix = false;
  // "192.0.2.1:25", "[2001:db8::1]:25", "unix"
  std::string text() const;
};
Peer peerFromSockaddr(const sockaddr* sa, socklen_t len);

// A one-shot (re-armable) timer whose callback is a std::function. Destroying
// the Timer cancels it, so a session that owns its timers cannot be called
// back after it is gone.
class Timer {
 public:
  Timer(event_base* base, std::function<void()> fn);
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  // (Re)starts the countdown; a pending timer is moved to the new deadline.
  void arm(std::chrono::milliseconds after);
  void cancel();
  bool pending() const;

 private:
  static void onFire(evutil_socket_t, short, void* self);
  std::function<void()> fn_;
  Event ev_;
};

// A persistent signal handler on the loop (evsignal): the callback runs from
// the loop, not from the signal handler, so it may do anything.
class Signal {
 public:
  Signal(event_base* base, int signum, std::function<void()> fn);
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

 private:
  static void onFire(evutil_socket_t, short, void* self);
  std::function<void()> fn_;
  Event ev_;
};

// Accepts connections on a listening socket that is already bound (by the
// master, systemd or sys::bindForSection) and hands each new fd, non-blocking
// and close-on-exec, to the callback. When accept fails for lack of file
// descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM) the listener pauses for a
// second instead of spinning on the readable socket.
class Listener {
 public:
  using AcceptFn = std::function<void(UniqueFd fd, const Peer& peer)>;
  static Result<std::unique_ptr<Listener>> create(event_base* base, UniqueFd fd, AcceptFn fn);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  // Stop / resume accepting, e.g. at max_connections or on graceful stop.
  // The socket stays open, so the kernel keeps queueing connections.
  void disable();
  void enable();
  bool enabled() const { return enabled_; }
  int fd() const;
  // "0.0.0.0:25", "[::]:25", "unix:/run/yubin/lmtp": for logs.
  const std::string& name() const { return name_; }

 private:
  Listener(event_base* base, AcceptFn fn);
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* self);
  static void onError(evconnlistener*, void* self);

  AcceptFn fn_;
  ConnListener listener_;
  Timer backoff_;
  bool enabled_ = true;
  std::string name_;
};

// The local address of a socket as text, for logs ("0.0.0.0:25").
std::string socketName(int fd);

enum class TlsRole { Server, Client };

// Every bufferevent made here has BEV_OPT_CLOSE_ON_FREE (freeing it closes the
// fd and frees the SSL) and BEV_OPT_DEFER_CALLBACKS (callbacks run from the
// loop, never re-entrantly from inside bufferevent_write). The fd is made
// non-blocking. Nothing is enabled:
// the caller sets its callbacks and calls bufferevent_enable().

// A plain TCP or Unix stream.
Result<Bufferevent> newSocketBufferevent(event_base* base, UniqueFd fd);

// Implicit TLS on a fresh socket: the handshake starts at once. The SSL must
// come from the right SSL_CTX (tls::ServerContext::newSsl or a client context
// with tls::prepareClient); the bufferevent owns it from here on, even when
// creation fails. Dirty shutdown (EOF without close_notify) is reported as a
// plain EOF: our protocols have their own end markers.
Result<Bufferevent> newTlsBufferevent(event_base* base, UniqueFd fd, SslPtr ssl, TlsRole role);

// STARTTLS: wraps an existing plain bufferevent in a TLS filter and returns the
// new top bufferevent, which owns the old one (freeing it frees both). The
// caller sets its callbacks on the returned bufferevent only.
// Input already received on `plain` is discarded (a client must not pipeline
// after STARTTLS; keeping those bytes would let a man in the middle inject
// commands into the protected session); the count is stored in *discarded.
// Output still queued on `plain` (the "220 Ready to start TLS" reply) is sent
// in clear before the handshake, so the reply can be written and this called
// right away.
Result<Bufferevent> startTls(Bufferevent plain, SslPtr ssl, TlsRole role,
                             size_t* discarded = nullptr);

// The SSL under a TLS bufferevent (nullptr for a plain one), for
// tls::describeSession and the channel binding.
SSL* sslOf(bufferevent* bev);

// Octets not yet handed to the kernel: the bufferevent's output, plus, for
// a filter (STARTTLS), the output of the bufferevent below it, where the
// filter moves what it encrypts at once (the last answer waits there while
// the top buffer is already empty).
size_t pendingOutput(bufferevent* bev);

// Describes why a bufferevent reported BEV_EVENT_ERROR: the OpenSSL errors
// queued on a TLS bufferevent, else errno text. Drains those errors.
std::string bufferevError(bufferevent* bev);

}  // namespace yubin::event
