// Tests of listening sockets: TCP and Unix binding, bindForSection from a
// config, and the LISTEN_FDS hand-over through fork (+ exec of listen_child).
#include "sys/listen.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>

using namespace yubin;
using namespace yubin::sys;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/yubin-listen-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

uint16_t localPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

int family(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  return ss.ss_family;
}

int intOpt(int fd, int level, int opt) {
  int v = -1;
  socklen_t len = sizeof v;
  REQUIRE(::getsockopt(fd, level, opt, &v, &len) == 0);
  return v;
}

bool hasIpv6Loopback() {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM, 0));
  if (!fd) return false;
  sockaddr_in6 s6{};
  s6.sin6_family = AF_INET6;
  s6.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&s6), sizeof s6) == 0;
}

// A free loopback port: bind port 0, note it, release it.
uint16_t freePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in s4{};
  s4.sin_family = AF_INET;
  s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&s4), sizeof s4) == 0);
  return localPort(fd.get());
}

bool connectTcp(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in s4{};
  s4.sin_family = AF_INET;
  s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s4.sin_port = htons(port);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&s4), sizeof s4) == 0;
}

bool connectUnix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path.c_str());
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0;
}

// Runs fn in a forked child with its stdout on a pipe; returns what it
// printed. The child's exit status must be 0.
std::string inChild(const std::function<void()>& fn) {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(p[0]);
    ::dup2(p[1], 1);
    ::close(p[1]);
    fn();
    std::fflush(stdout);
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  return out;
}

config::Config parseConfig(const std::string& text) {
  auto cfg = config::Config::parse(text, "/etc/yubin/test.conf");
  if (!cfg) FAIL(cfg.error().message);
  return std::move(*cfg);
}

}  // namespace

TEST_CASE("bindTcp: IPv4 loopback, non-blocking, close-on-exec, SO_REUSEADDR") {
  auto fd = bindTcp({"127.0.0.1", 0});
  REQUIRE(fd.ok());
  CHECK(family(fd->get()) == AF_INET);
  CHECK(localPort(fd->get()) != 0);
  CHECK((::fcntl(fd->get(), F_GETFL) & O_NONBLOCK) != 0);
  CHECK((::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC) != 0);
  CHECK(intOpt(fd->get(), SOL_SOCKET, SO_REUSEADDR) == 1);
  CHECK(intOpt(fd->get(), SOL_SOCKET, SO_ACCEPTCONN) == 1);
  CHECK(connectTcp(localPort(fd->get())));
}

TEST_CASE("bindTcp: IPv6 loopback is IPv6-only") {
  if (!hasIpv6Loopback()) {
    WARN("no IPv6 loopback here; skipped");
    return;
  }
  auto fd = bindTcp({"::1", 0});
  REQUIRE(fd.ok());
  CHECK(family(fd->get()) == AF_INET6);
  CHECK(intOpt(fd->get(), IPPROTO_IPV6, IPV6_V6ONLY) == 1);
}

TEST_CASE("bindTcp: the wildcard serves IPv4") {
  // Port 0: a port free on every address. A port from freePort() is only
  // free on 127.0.0.1 at that moment; a test running beside this one may
  // take it before the connect (a CI failure under load).
  auto fd = bindTcp({"", 0});
  REQUIRE(fd.ok());
  uint16_t port = localPort(fd->get());
  CHECK(port != 0);
  CHECK(connectTcp(port));
}

TEST_CASE("bindTcp: errors name the address") {
  auto first = bindTcp({"127.0.0.1", 0});
  REQUIRE(first.ok());
  uint16_t port = localPort(first->get());
  auto again = bindTcp({"127.0.0.1", port});
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().errnum == EADDRINUSE);
  CHECK_THAT(again.error().message, Catch::Contains("bind 127.0.0.1:" + std::to_string(port)));

  auto bad = bindTcp({"no-such-host.invalid", 25});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("cannot resolve 'no-such-host.invalid'"));
}

TEST_CASE("bindUnix: mode, stale file, live socket, foreign file") {
  TempDir dir;
  std::string path = dir.path + "/sub/ctl";  // the parent folder is created
  {
    auto fd = bindUnix(path, 0640, static_cast<gid_t>(-1));
    REQUIRE(fd.ok());
    struct stat st;
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0640);
    CHECK((::fcntl(fd->get(), F_GETFL) & O_NONBLOCK) != 0);
    CHECK((::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK(connectUnix(path));

    // While it listens, a second bind refuses and leaves the file.
    auto second = bindUnix(path, 0600, static_cast<gid_t>(-1));
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().errnum == EADDRINUSE);
    CHECK(connectUnix(path));
  }
  // The listener is gone, its file stays: stale, replaced.
  REQUIRE(::access(path.c_str(), F_OK) == 0);
  auto fd = bindUnix(path, 0660, ::getegid());
  REQUIRE(fd.ok());
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0660);
  CHECK(st.st_gid == ::getegid());
  CHECK(connectUnix(path));

  std::string file = dir.path + "/regular";
  REQUIRE(std::system(("echo keep > '" + file + "'").c_str()) == 0);
  auto onFile = bindUnix(file, 0600, static_cast<gid_t>(-1));
  REQUIRE_FALSE(onFile.ok());
  CHECK_THAT(onFile.error().message, Catch::Contains("not a socket"));
  CHECK(::access(file.c_str(), F_OK) == 0);

  auto tooLong = bindUnix("/" + std::string(200, 'x'), 0600, static_cast<gid_t>(-1));
  REQUIRE_FALSE(tooLong.ok());
  CHECK(tooLong.error().errnum == ENAMETOOLONG);
}

TEST_CASE("bindForSection: every Listen and UnixListen key of the section") {
  TempDir dir;
  uint16_t p1 = freePort(), p2 = freePort();
  REQUIRE(p1 != p2);
  std::string lmtp = dir.path + "/lmtp";
  auto cfg = parseConfig("version = 1\n[global]\ndomains = example.org\n[mtad]\nlisten = 127.0.0.1:" +
                         std::to_string(p1) + ", 127.0.0.1:" + std::to_string(p2) +
                         "\n[mdad]\nlmtp_socket = " + lmtp +
                         "\nlmtp_socket_mode = 0620\nlmtp_socket_group = no-such-group-yubin\n");
  auto mta = bindForSection(cfg, "mtad");
  REQUIRE(mta.ok());
  REQUIRE(mta->size() == 2);
  CHECK((*mta)[0].name == "listen");
  CHECK(localPort((*mta)[0].fd.get()) == p1);
  CHECK((*mta)[1].name == "listen");
  CHECK(localPort((*mta)[1].fd.get()) == p2);

  // A group that does not exist leaves the socket with the default group.
  auto mda = bindForSection(cfg, "mdad");
  REQUIRE(mda.ok());
  REQUIRE(mda->size() == 1);
  CHECK((*mda)[0].name == "lmtp_socket");
  struct stat st;
  REQUIRE(::stat(lmtp.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0620);

  // A section without listening keys binds nothing.
  auto master = bindForSection(cfg, "master");
  REQUIRE(master.ok());
  CHECK(master->empty());

  // An address in use fails with the place in the config.
  auto again = bindForSection(cfg, "mtad");
  REQUIRE_FALSE(again.ok());
  CHECK_THAT(again.error().message, Catch::StartsWith("/etc/yubin/test.conf:5: [mtad] listen: bind 127.0.0.1:"));
}

TEST_CASE("passSockets + takeInheritedSockets in one forked process") {
  auto a = bindTcp({"127.0.0.1", 0});
  auto b = bindTcp({"127.0.0.1", 0});
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  uint16_t pa = localPort(a->get()), pb = localPort(b->get());
  int fa = a->get(), fb = b->get();

  SECTION("in order, with names") {
    std::string out = inChild([&] {
      if (!passSockets({{"listen", fa}, {"other", fb}})) ::_exit(3);
      auto got = takeInheritedSockets();
      for (const auto& l : got) std::printf("%s %d %u\n", l.name.c_str(), l.fd.get(), localPort(l.fd.get()));
      std::printf("env=%s\n", std::getenv("LISTEN_FDS") ? "set" : "unset");
    });
    CHECK(out == "listen 3 " + std::to_string(pa) + "\nother 4 " + std::to_string(pb) + "\nenv=unset\n");
  }
  SECTION("sources already inside the target range, swapped") {
    std::string out = inChild([&] {
      // a on 4, b on 3: passing (a, b) must not clobber b while moving a.
      int ta = ::fcntl(fa, F_DUPFD, 100), tb = ::fcntl(fb, F_DUPFD, 100);
      ::dup2(ta, 4);
      ::dup2(tb, 3);
      if (!passSockets({{"a", 4}, {"b", 3}})) ::_exit(3);
      auto got = takeInheritedSockets();
      for (const auto& l : got) std::printf("%s %u\n", l.name.c_str(), localPort(l.fd.get()));
    });
    CHECK(out == "a " + std::to_string(pa) + "\nb " + std::to_string(pb) + "\n");
  }
  SECTION("a LISTEN_PID of another process is ignored and cleared") {
    std::string out = inChild([&] {
      if (!passSockets({{"listen", fa}})) ::_exit(3);
      ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
      auto got = takeInheritedSockets();
      std::printf("%zu %s\n", got.size(), std::getenv("LISTEN_PID") ? "set" : "unset");
    });
    CHECK(out == "0 unset\n");
  }
  SECTION("missing names become 'unknown'; nothing passed = empty") {
    std::string out = inChild([&] {
      if (!passSockets({{"x", fa}, {"y", fb}})) ::_exit(3);
      ::setenv("LISTEN_FDNAMES", "x", 1);
      auto got = takeInheritedSockets();
      for (const auto& l : got) std::printf("%s\n", l.name.c_str());
      std::printf("%zu\n", takeInheritedSockets().size());
    });
    CHECK(out == "x\nunknown\n0\n");
  }
  SECTION("names with ':' are refused") {
    std::string out = inChild([&] {
      auto s = passSockets({{"a:b", fa}});
      std::printf("%s\n", s ? "ok" : s.error().message.c_str());
    });
    CHECK_THAT(out, Catch::Contains("contains ':'"));
  }
}

TEST_CASE("passSockets through exec: the child gets fds 3.. without close-on-exec") {
  const char* helper = std::getenv("LISTEN_CHILD");
  REQUIRE(helper);
  TempDir dir;
  auto tcp = bindTcp({"127.0.0.1", 0});
  auto unix = bindUnix(dir.path + "/s", 0600, static_cast<gid_t>(-1));
  REQUIRE(tcp.ok());
  REQUIRE(unix.ok());
  int sp[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
  UniqueFd mine(sp[0]), theirs(sp[1]);
  int ft = tcp->get(), fu = unix->get(), fm = theirs.get();

  std::string out = inChild([&] {
    if (!passSockets({{"listen", ft}, {"lmtp_socket", fu}, {kMasterChannelName, fm}})) ::_exit(3);
    ::execl(helper, helper, static_cast<char*>(nullptr));
    ::_exit(4);
  });
  CHECK(out == "listen tcp4:" + std::to_string(localPort(ft)) + " fd=3 cloexec=1\n" +
                   "lmtp_socket unix:" + dir.path + "/s fd=4 cloexec=1\n" +
                   "yubin-master unix:(unnamed) fd=5 cloexec=1\nenv=unset\n");
}
