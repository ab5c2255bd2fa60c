// libevent helpers; see event.hpp.
#include "event/event.hpp"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace yubin::event {
namespace {

constexpr int kBevOptions = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;

timeval toTimeval(std::chrono::milliseconds ms) {
  if (ms.count() < 0) ms = std::chrono::milliseconds(0);
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// Sockets from connect() or a parent may be blocking; a blocking socket
// under a bufferevent stalls the whole loop.
Status makeNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return errnoError("fcntl(O_NONBLOCK)");
  return {};
}

}  // namespace

Result<EventBase> newEventBase() {
  EventBase base(event_base_new());
  if (!base) return Error{"event_base_new failed"};
  return base;
}

std::string Peer::text() const {
  if (isUnix) return "unix";
  if (ip.find(':') != std::string::npos) return "[" + ip + "]:" + std::to_string(port);
  return ip + ":" + std::to_string(port);
}

Peer peerFromSockaddr(const sockaddr* sa, socklen_t len) {
  Peer p;
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa && sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    p.ip = buf;
    p.port = ntohs(in->sin_port);
  } else if (sa && sa->sa_family == AF_INET6 &&
             len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      // ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1: log and count it as such.
      in_addr v4;
      std::memcpy(&v4, in6->sin6_addr.s6_addr + 12, sizeof v4);
      inet_ntop(AF_INET, &v4, buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    }
    p.ip = buf;
    p.port = ntohs(in6->sin6_port);
  } else {
    p.isUnix = true;
  }
  return p;
}

std::string socketName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return "fd:" + std::to_string(fd);
  if (ss.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    size_t max = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    return "unix:" + std::string(un->sun_path, strnlen(un->sun_path, max));
  }
  return peerFromSockaddr(reinterpret_cast<sockaddr*>(&ss), len).text();
}

// --- Timer, Signal ---

Timer::Timer(event_base* base, std::function<void()> fn)
    : fn_(std::move(fn)), ev_(evtimer_new(base, &Timer::onFire, this)) {
  if (!ev_) fatal("evtimer_new failed");
}

void Timer::arm(std::chrono::milliseconds after) {
  timeval tv = toTimeval(after);
  evtimer_add(ev_.get(), &tv);
}

void Timer::cancel() { evtimer_del(ev_.get()); }

bool Timer::pending() const { return evtimer_pending(ev_.get(), nullptr) != 0; }

void Timer::onFire(evutil_socket_t, short, void* self) { static_cast<Timer*>(self)->fn_(); }

Signal::Signal(event_base* base, int signum, std::function<void()> fn)
    : fn_(std::move(fn)), ev_(evsignal_new(base, signum, &Signal::onFire, this)) {
  if (!ev_ || evsignal_add(ev_.get(), nullptr) != 0) fatal("evsignal_new(%d) failed", signum);
}

void Signal::onFire(evutil_socket_t, short, void* self) { static_cast<Signal*>(self)->fn_(); }

// --- Listener ---

Listener::Listener(event_base* base, AcceptFn fn)
    : fn_(std::move(fn)), backoff_(base, [this] {
        if (enabled_) evconnlistener_enable(listener_.get());
      }) {}

Listener::~Listener() = default;

Result<std::unique_ptr<Listener>> Listener::create(event_base* base, UniqueFd fd, AcceptFn fn) {
  // A socket from systemd may be blocking; libevent accepts in a loop until
  // EAGAIN, which would then block the whole daemon.
  if (auto st = makeNonBlocking(fd.get()); !st) return Error{"listener: " + st.error().message};
  std::unique_ptr<Listener> l(new Listener(base, std::move(fn)));
  l->name_ = socketName(fd.get());
  // backlog 0: the socket is already listening.
  evconnlistener* raw =
      evconnlistener_new(base, &Listener::onAccept, l.get(),
                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd.get());
  if (!raw) return Error{"evconnlistener_new failed for " + l->name_};
  fd.release();  // owned by the evconnlistener now
  l->listener_.reset(raw);
  evconnlistener_set_error_cb(raw, &Listener::onError);
  return l;
}

void Listener::disable() {
  enabled_ = false;
  backoff_.cancel();
  evconnlistener_disable(listener_.get());
}

void Listener::enable() {
  enabled_ = true;
  if (!backoff_.pending()) evconnlistener_enable(listener_.get());
}

int Listener::fd() const { return evconnlistener_get_fd(listener_.get()); }

void Listener::onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* self) {
  auto* l = static_cast<Listener*>(self);
  l->fn_(UniqueFd(fd), peerFromSockaddr(sa, static_cast<socklen_t>(len)));
}

void Listener::onError(evconnlistener*, void* self) {
  auto* l = static_cast<Listener*>(self);
  int err = EVUTIL_SOCKET_ERROR();
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    YLOG_WARN("accept failed, pausing 1s listener=%s error=\"%s\"", l->name_.c_str(),
              std::strerror(err));
    evconnlistener_disable(l->listener_.get());
    l->backoff_.arm(std::chrono::seconds(1));
    return;
  }
  YLOG_WARN("accept failed listener=%s error=\"%s\"", l->name_.c_str(), std::strerror(err));
}

// --- bufferevents ---

Result<Bufferevent> newSocketBufferevent(event_base* base, UniqueFd fd) {
  if (auto st = makeNonBlocking(fd.get()); !st) return st.error();
  bufferevent* bev = bufferevent_socket_new(base, fd.get(), kBevOptions);
  if (!bev) return Error{"bufferevent_socket_new failed"};
  fd.release();
  return Bufferevent(bev);
}

// On failure libevent 2.1 may or may not have freed the SSL and the fd,
// depending on where it failed (only on allocation failures); we hand both
// over before the call and accept a leak on OOM over a double free.
Result<Bufferevent> newTlsBufferevent(event_base* base, UniqueFd fd, SslPtr ssl, TlsRole role) {
  if (auto st = makeNonBlocking(fd.get()); !st) return st.error();
  auto state = role == TlsRole::Server ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING;
  bufferevent* bev =
      bufferevent_openssl_socket_new(base, fd.release(), ssl.release(), state, kBevOptions);
  if (!bev) return Error{"bufferevent_openssl_socket_new failed"};
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return Bufferevent(bev);
}

Result<Bufferevent> startTls(Bufferevent plain, SslPtr ssl, TlsRole role, size_t* discarded) {
  evbuffer* in = bufferevent_get_input(plain.get());
  size_t n = evbuffer_get_length(in);
  evbuffer_drain(in, n);
  if (discarded) *discarded = n;
  // The plain bufferevent's callbacks point at the session's plaintext
  // handlers; the filter replaces them with its own, but clear them first so
  // nothing can fire in between.
  bufferevent_setcb(plain.get(), nullptr, nullptr, nullptr, nullptr);
  event_base* base = bufferevent_get_base(plain.get());
  auto state = role == TlsRole::Server ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING;
  bufferevent* bev =
      bufferevent_openssl_filter_new(base, plain.release(), ssl.release(), state, kBevOptions);
  if (!bev) return Error{"bufferevent_openssl_filter_new failed"};
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return Bufferevent(bev);
}

SSL* sslOf(bufferevent* bev) { return bev ? bufferevent_openssl_get_ssl(bev) : nullptr; }

size_t pendingOutput(bufferevent* bev) {
  if (!bev) return 0;
  size_t n = evbuffer_get_length(bufferevent_get_output(bev));
  if (bufferevent* lower = bufferevent_get_underlying(bev))
    n += evbuffer_get_length(bufferevent_get_output(lower));
  return n;
}

std::string bufferevError(bufferevent* bev) {
  std::string out;
  if (sslOf(bev)) {
    while (unsigned long e = bufferevent_get_openssl_error(bev)) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      if (!out.empty()) out += "; ";
      out += buf;
    }
  }
  if (out.empty()) {
    int err = EVUTIL_SOCKET_ERROR();
    out = err ? std::strerror(err) : "connection error";
  }
  return out;
}

}  // namespace yubin::event
