// Test helpers for the resolver: a DNS message builder and a canned
// responder on UDP and TCP (same port) on a loopback address, served from the
// test's own event loop. The test decides every reply from the parsed
// question, so it can answer, drop, fail or send bytes of its choosing.
// Header-only; used by unit tests only (the outbound SMTP tests may use it
// too). Trust: test code, loopback only.
// Standards: RFC 1035 §4 (message format), RFC 3596 (AAAA), RFC 1035 §4.2.2
// (TCP length prefix).
#pragma once

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "event/event.hpp"

namespace yubin::dns::testing {

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeSoa = 6;
constexpr uint16_t kTypeMx = 15;
constexpr uint16_t kTypeAaaa = 28;

constexpr uint8_t kNoError = 0;
constexpr uint8_t kFormErr = 1;
constexpr uint8_t kServFail = 2;
constexpr uint8_t kNxDomain = 3;
constexpr uint8_t kNotImp = 4;
constexpr uint8_t kRefused = 5;

// A parsed query: what the responder needs to answer it.
struct Question {
  uint16_t id = 0;
  uint16_t flags = 0;
  std::string name;  // as sent (case kept), no trailing dot
  uint16_t type = 0;
  uint16_t klass = 0;
  std::string wire;  // the question section as it came, echoed in replies
  bool tcp = false;
};

// Parses a query; nullopt when it is not one well-formed question.
inline std::optional<Question> parseQuestion(const std::string& msg) {
  if (msg.size() < 12) return std::nullopt;
  auto u16 = [&](size_t at) {
    return static_cast<uint16_t>((static_cast<uint8_t>(msg[at]) << 8) |
                                 static_cast<uint8_t>(msg[at + 1]));
  };
  Question q;
  q.id = u16(0);
  q.flags = u16(2);
  if (u16(4) != 1) return std::nullopt;
  size_t p = 12;
  while (true) {
    if (p >= msg.size()) return std::nullopt;
    uint8_t len = static_cast<uint8_t>(msg[p++]);
    if (len == 0) break;
    if (len > 63 || p + len > msg.size()) return std::nullopt;
    if (!q.name.empty()) q.name += '.';
    q.name.append(msg, p, len);
    p += len;
  }
  if (p + 4 > msg.size()) return std::nullopt;
  q.type = u16(p);
  q.klass = u16(p + 2);
  q.wire = msg.substr(12, p + 4 - 12);
  return q;
}

// Builds an answer to a Question: Reply(q).mx(10, "mx.example").bytes().
class Reply {
 public:
  explicit Reply(const Question& q, uint8_t rcode = kNoError) : q_(q), rcode_(rcode) {}

  Reply& rcode(uint8_t r) {
    rcode_ = r;
    return *this;
  }
  Reply& truncated(bool tc = true) {
    tc_ = tc;
    return *this;
  }
  // The TTL of the records added after this call (300 until then).
  Reply& ttl(uint32_t seconds) {
    ttl_ = seconds;
    return *this;
  }
  // An SOA record in the authority section (RFC 2308: what a negative
  // answer may be cached for), owned by `zone` (default: the question's name).
  Reply& soa(uint32_t ttl, uint32_t minimum, const std::string& zone = {}) {
    std::string rdata = encodeName("ns.invalid") + encodeName("hostmaster.invalid") + u32(1) +
                        u32(7200) + u32(900) + u32(1209600) + u32(minimum);
    authority_ += encodeName(zone.empty() ? q_.name : zone) + u16(kTypeSoa) + u16(1) + u32(ttl) +
                  u16(static_cast<uint16_t>(rdata.size())) + rdata;
    ++nsCount_;
    return *this;
  }
  // Records are owned by the question's name unless `owner` is given.
  Reply& mx(uint16_t pref, const std::string& host, const std::string& owner = {}) {
    std::string rdata = u16(pref) + encodeName(host);
    return record(owner, kTypeMx, rdata);
  }
  Reply& a(const std::string& ip, const std::string& owner = {}) {
    in_addr addr{};
    if (inet_pton(AF_INET, ip.c_str(), &addr) != 1) fatal("bad test IPv4 %s", ip.c_str());
    return record(owner, kTypeA, std::string(reinterpret_cast<const char*>(&addr), 4));
  }
  Reply& aaaa(const std::string& ip, const std::string& owner = {}) {
    in6_addr addr{};
    if (inet_pton(AF_INET6, ip.c_str(), &addr) != 1) fatal("bad test IPv6 %s", ip.c_str());
    return record(owner, kTypeAaaa, std::string(reinterpret_cast<const char*>(&addr), 16));
  }
  Reply& cname(const std::string& target, const std::string& owner = {}) {
    return record(owner, kTypeCname, encodeName(target));
  }
  // Any record, rdata given raw.
  Reply& record(const std::string& owner, uint16_t type, const std::string& rdata) {
    answers_ += encodeName(owner.empty() ? q_.name : owner) + u16(type) + u16(1) + u32(ttl_) +
                u16(static_cast<uint16_t>(rdata.size())) + rdata;
    ++count_;
    return *this;
  }

  std::string bytes() const {
    uint16_t flags = 0x8000 | 0x0400 | (q_.flags & 0x0100) | 0x0080 | rcode_;  // QR AA RD RA
    if (tc_) flags |= 0x0200;
    return u16(q_.id) + u16(flags) + u16(1) + u16(count_) + u16(nsCount_) + u16(0) + q_.wire +
           answers_ + authority_;
  }

  static std::string u16(uint16_t v) {
    return std::string{static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
  }
  static std::string u32(uint32_t v) {
    return u16(static_cast<uint16_t>(v >> 16)) + u16(v & 0xffff);
  }
  // Uncompressed wire form; "" and "." are the root. Labels are taken as
  // given (a test may put any byte in one).
  static std::string encodeName(const std::string& name) {
    std::string out;
    size_t p = 0;
    while (p < name.size()) {
      size_t dot = name.find('.', p);
      if (dot == std::string::npos) dot = name.size();
      out += static_cast<char>(dot - p);
      out.append(name, p, dot - p);
      p = dot + 1;
    }
    out += '\0';
    return out;
  }

 private:
  const Question& q_;
  uint8_t rcode_;
  bool tc_ = false;
  uint16_t count_ = 0;
  uint16_t nsCount_ = 0;
  uint32_t ttl_ = 300;
  std::string answers_;
  std::string authority_;
};

// A DNS responder on `address` (127.0.0.1 or ::1), UDP and TCP on one free
// port. The handler returns the reply bytes, or nullopt to stay silent.
class FakeServer {
 public:
  using Handler = std::function<std::optional<std::string>(const Question&)>;

  FakeServer(event_base* base, Handler handler, const std::string& address = "127.0.0.1")
      : base_(base), handler_(std::move(handler)), address_(address) {
    for (int attempt = 0; attempt < 50 && !bound(); ++attempt) tryBind();
    if (!bound()) fatal("FakeServer: cannot bind UDP and TCP on one port");
    udpEvent_.reset(event_new(base, udp_.get(), EV_READ | EV_PERSIST, &FakeServer::onUdp, this));
    event_add(udpEvent_.get(), nullptr);
    auto listener = event::Listener::create(
        base, std::move(tcp_), [this](UniqueFd fd, const event::Peer&) { accept(std::move(fd)); });
    if (!listener) fatal("FakeServer: %s", listener.error().message.c_str());
    listener_ = std::move(*listener);
  }

  uint16_t port() const { return port_; }
  // "127.0.0.1:5300" / "[::1]:5300": a ResolverSettings::servers entry.
  std::string server() const {
    return (address_.find(':') != std::string::npos ? "[" + address_ + "]" : address_) + ":" +
           std::to_string(port_);
  }
  int udpQueries() const { return udpQueries_; }
  int tcpQueries() const { return tcpQueries_; }
  const std::vector<Question>& questions() const { return questions_; }

 private:
  bool bound() const { return port_ != 0; }

  void tryBind() {
    bool v6 = address_.find(':') != std::string::npos;
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
      sa->sin6_family = AF_INET6;
      inet_pton(AF_INET6, address_.c_str(), &sa->sin6_addr);
      len = sizeof *sa;
    } else {
      auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
      sa->sin_family = AF_INET;
      inet_pton(AF_INET, address_.c_str(), &sa->sin_addr);
      len = sizeof *sa;
    }
    int family = v6 ? AF_INET6 : AF_INET;
    UniqueFd udp(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!udp || ::bind(udp.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      fatal("FakeServer: udp bind: %s", std::strerror(errno));
    }
    sockaddr_storage got{};
    socklen_t gotLen = sizeof got;
    ::getsockname(udp.get(), reinterpret_cast<sockaddr*>(&got), &gotLen);
    uint16_t port = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&got)->sin6_port)
                       : ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port);
    if (v6) {
      reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port);
    } else {
      reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port);
    }
    UniqueFd tcp(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(tcp.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!tcp || ::bind(tcp.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        ::listen(tcp.get(), 64) != 0) {
      return;  // the TCP port is taken: try another UDP port
    }
    udp_ = std::move(udp);
    tcp_ = std::move(tcp);
    port_ = port;
  }

  static void onUdp(evutil_socket_t fd, short, void* self) {
    auto* s = static_cast<FakeServer*>(self);
    for (;;) {
      char buf[4096];
      sockaddr_storage from{};
      socklen_t fromLen = sizeof from;
      ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
      if (n < 0) return;
      auto q = parseQuestion(std::string(buf, static_cast<size_t>(n)));
      if (!q) continue;
      ++s->udpQueries_;
      s->questions_.push_back(*q);
      auto reply = s->handler_(*q);
      if (reply) {
        ::sendto(fd, reply->data(), reply->size(), 0, reinterpret_cast<sockaddr*>(&from), fromLen);
      }
    }
  }

  struct TcpConn {
    FakeServer* server;
    event::Bufferevent bev;
  };

  void accept(UniqueFd fd) {
    auto bev = event::newSocketBufferevent(base_, std::move(fd));
    if (!bev) return;
    auto conn = std::make_unique<TcpConn>(TcpConn{this, std::move(*bev)});
    bufferevent_setcb(conn->bev.get(), &FakeServer::onTcpRead, nullptr, &FakeServer::onTcpEvent,
                      conn.get());
    bufferevent_enable(conn->bev.get(), EV_READ | EV_WRITE);
    conns_.push_back(std::move(conn));
  }

  static void onTcpRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<TcpConn*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    for (;;) {
      unsigned char lenBuf[2];
      if (evbuffer_copyout(in, lenBuf, 2) != 2) return;
      size_t len = (static_cast<size_t>(lenBuf[0]) << 8) | lenBuf[1];
      if (evbuffer_get_length(in) < len + 2) return;
      evbuffer_drain(in, 2);
      std::string msg(len, '\0');
      evbuffer_remove(in, msg.data(), len);
      auto q = parseQuestion(msg);
      if (!q) continue;
      q->tcp = true;
      ++c->server->tcpQueries_;
      c->server->questions_.push_back(*q);
      auto reply = c->server->handler_(*q);
      if (reply) {
        std::string framed = Reply::u16(static_cast<uint16_t>(reply->size())) + *reply;
        bufferevent_write(bev, framed.data(), framed.size());
      }
    }
  }

  static void onTcpEvent(bufferevent*, short what, void* arg) {
    auto* c = static_cast<TcpConn*>(arg);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
      c->bev.reset();  // closes the socket; the TcpConn itself goes with the server
    }
  }

  event_base* base_;
  Handler handler_;
  std::string address_;
  UniqueFd udp_, tcp_;
  uint16_t port_ = 0;
  event::Event udpEvent_;
  std::unique_ptr<event::Listener> listener_;
  std::vector<std::unique_ptr<TcpConn>> conns_;
  int udpQueries_ = 0;
  int tcpQueries_ = 0;
  std::vector<Question> questions_;
};

}  // namespace yubin::dns::testing
