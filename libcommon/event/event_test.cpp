// Unit tests for event: peer formatting, timers, signals, the listener
// (accept, pause/resume) and a plain loopback echo through two bufferevents.
// The TLS bufferevents are tested in tls/tls_test.cpp.
#include "event/event.hpp"

#include <sys/un.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <vector>

#include "event/event_testing.hpp"

using namespace yubin;
using namespace yubin::event;
using namespace yubin::event::testing;

namespace {

sockaddr_in v4(const char* ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &sa.sin_addr);
  sa.sin_port = htons(port);
  return sa;
}

sockaddr_in6 v6(const char* ip, uint16_t port) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  inet_pton(AF_INET6, ip, &sa.sin6_addr);
  sa.sin6_port = htons(port);
  return sa;
}

}  // namespace

TEST_CASE("peerFromSockaddr formats every family") {
  struct Case {
    const char* ip;
    bool isV6;
    uint16_t port;
    std::string wantIp;
    std::string wantText;
  };
  auto c = GENERATE(values<Case>({
      {"192.0.2.1", false, 25, "192.0.2.1", "192.0.2.1:25"},
      {"0.0.0.0", false, 65535, "0.0.0.0", "0.0.0.0:65535"},
      {"2001:db8::1", true, 587, "2001:db8::1", "[2001:db8::1]:587"},
      {"::", true, 1, "::", "[::]:1"},
      {"::ffff:198.51.100.7", true, 993, "198.51.100.7", "198.51.100.7:993"},
  }));
  Peer p;
  if (c.isV6) {
    auto sa = v6(c.ip, c.port);
    p = peerFromSockaddr(reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } else {
    auto sa = v4(c.ip, c.port);
    p = peerFromSockaddr(reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  CHECK(p.ip == c.wantIp);
  CHECK(p.port == c.port);
  CHECK_FALSE(p.isUnix);
  CHECK(p.text() == c.wantText);
}

TEST_CASE("peerFromSockaddr: unix, truncated and missing addresses") {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  Peer p = peerFromSockaddr(reinterpret_cast<sockaddr*>(&un), sizeof un);
  CHECK(p.isUnix);
  CHECK(p.text() == "unix");
  // A length too short for the family must not be read past.
  auto sa = v6("2001:db8::1", 25);
  p = peerFromSockaddr(reinterpret_cast<sockaddr*>(&sa), 8);
  CHECK(p.ip.empty());
  p = peerFromSockaddr(nullptr, 0);
  CHECK(p.isUnix);
}

TEST_CASE("Timer fires, can be cancelled and re-armed") {
  auto base = newEventBase();
  REQUIRE(base.ok());
  Watchdog dog(base->get());
  std::vector<std::string> fired;
  Timer cancelled(base->get(), [&] { fired.push_back("cancelled"); });
  Timer moved(base->get(), [&] { fired.push_back("moved"); });
  Timer last(base->get(), [&] {
    fired.push_back("last");
    event_base_loopbreak(base->get());
  });
  cancelled.arm(std::chrono::milliseconds(1));
  CHECK(cancelled.pending());
  cancelled.cancel();
  CHECK_FALSE(cancelled.pending());
  moved.arm(std::chrono::milliseconds(60000));
  moved.arm(std::chrono::milliseconds(1));  // re-arming moves the deadline
  last.arm(std::chrono::milliseconds(20));
  event_base_dispatch(base->get());
  CHECK_FALSE(dog.fired());
  CHECK(fired == std::vector<std::string>{"moved", "last"});
  CHECK_FALSE(moved.pending());
}

TEST_CASE("Timer destroyed while pending never fires") {
  auto base = newEventBase();
  REQUIRE(base.ok());
  bool fired = false;
  {
    Timer t(base->get(), [&] { fired = true; });
    t.arm(std::chrono::milliseconds(0));
  }
  event_base_loop(base->get(), EVLOOP_NONBLOCK);
  CHECK_FALSE(fired);
}

TEST_CASE("Signal runs its callback from the loop") {
  auto base = newEventBase();
  REQUIRE(base.ok());
  Watchdog dog(base->get());
  int count = 0;
  Signal sig(base->get(), SIGUSR1, [&] {
    ++count;
    event_base_loopbreak(base->get());
  });
  ::raise(SIGUSR1);
  event_base_dispatch(base->get());
  CHECK_FALSE(dog.fired());
  CHECK(count == 1);
}

TEST_CASE("Listener accepts, pauses and resumes; plain echo through two bufferevents") {
  auto base = newEventBase();
  REQUIRE(base.ok());
  Watchdog dog(base->get());
  uint16_t port = 0;
  UniqueFd lfd = listenLoopback(&port);

  std::vector<Peer> peers;
  Conn server;
  auto listener = Listener::create(base->get(), std::move(lfd), [&](UniqueFd fd, const Peer& peer) {
    peers.push_back(peer);
    auto bev = newSocketBufferevent(base->get(), std::move(fd));
    REQUIRE(bev.ok());
    server.attach(std::move(*bev));
    server.onRead = [](Conn& c) {  // echo everything back
      c.write(c.received);
      c.received.clear();
    };
    event_base_loopbreak(base->get());
  });
  REQUIRE(listener.ok());
  Listener& l = **listener;
  CHECK(l.name() == "127.0.0.1:" + std::to_string(port));

  // Paused: the kernel queues the connection, nothing is accepted.
  l.disable();
  CHECK_FALSE(l.enabled());
  UniqueFd cfd = connectLoopback(port);
  event_base_loop(base->get(), EVLOOP_NONBLOCK);
  CHECK(peers.empty());

  l.enable();
  event_base_dispatch(base->get());
  REQUIRE(peers.size() == 1);
  CHECK(peers[0].ip == "127.0.0.1");
  CHECK(peers[0].port != 0);

  Conn client;
  auto cbev = newSocketBufferevent(base->get(), std::move(cfd));
  REQUIRE(cbev.ok());
  client.attach(std::move(*cbev));
  const std::string message = "EHLO example.org\r\nNOOP\r\n" + std::string(100000, 'x') + "\r\n";
  client.onRead = [&](Conn& c) {
    if (c.received.size() >= message.size()) event_base_loopbreak(base->get());
  };
  client.write(message);
  event_base_dispatch(base->get());
  CHECK_FALSE(dog.fired());
  CHECK(client.received == message);

  // The server sees EOF when the client goes away.
  bool eof = false;
  server.onEvent = [&](Conn&, short what) {
    eof = (what & BEV_EVENT_EOF) != 0;
    event_base_loopbreak(base->get());
  };
  client.bev.reset();
  event_base_dispatch(base->get());
  CHECK(eof);
  CHECK_FALSE(dog.fired());
}

TEST_CASE("socketName names the local address") {
  uint16_t port = 0;
  UniqueFd fd = listenLoopback(&port);
  CHECK(socketName(fd.get()) == "127.0.0.1:" + std::to_string(port));
  CHECK(socketName(-1) == "fd:-1");
}
