// Runs the built yubin-testd and yubin-test-mkcert (paths from YUBIN_TESTD and
// YUBIN_TEST_MKCERT): options, alone on TCP as [mtad], on a Unix socket as
// [mdad] (started through a symlink named mdad), and managed: sockets passed
// with LISTEN_FDS, status answered on the "yubin-master" channel, exit when
// the master goes away.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <climits>
#include <cstdlib>
#include <thread>

#include "base/fs.hpp"
#include "event/event_testing.hpp"
#include "ipc/ipc.hpp"
#include "sys/listen.hpp"
#include "tls/tls.hpp"
#include "yubin_build_config.h"

using namespace yubin;
using namespace std::chrono_literals;

namespace {

// An absolute path from the environment (symlinks to it must work anywhere).
std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) FAIL(name << " is not set (run through meson test)");
  char real[PATH_MAX];
  if (!::realpath(v, real)) FAIL(name << "=" << v << " does not exist");
  return real;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/yubin-testd-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    path = tmpl;
    REQUIRE(::chmod(path.c_str(), 0755) == 0);
  }
  ~TempDir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
  std::string write(const std::string& name, const std::string& text) {
    std::string p = path + "/" + name;
    REQUIRE(atomicWrite(p, text, 0644).ok());
    return p;
  }
};

std::string readAll(const std::string& path) {
  auto r = readFile(path);
  return r ? *r : "";
}

// A program run with stdout and stderr in files; killed if left running.
struct Proc {
  pid_t pid = -1;
  std::string out, err;

  void start(const TempDir& dir, const std::string& program, std::vector<std::string> args,
             std::vector<std::pair<std::string, int>> fds = {}) {
    out = dir.path + "/stdout";
    err = dir.path + "/stderr";
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(o >= 0);
    REQUIRE(e >= 0);
    args.insert(args.begin(), program);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(o, STDOUT_FILENO);
      ::dup2(e, STDERR_FILENO);
      if (!fds.empty() && !sys::passSockets(fds).ok()) ::_exit(99);
      ::execv(program.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(o);
    ::close(e);
  }
  int wait(std::chrono::seconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) != pid) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        pid = -1;
        FAIL("did not exit in time; log:\n" << log());
      }
      std::this_thread::sleep_for(5ms);
    }
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  ~Proc() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  std::string log() const { return readAll(err); }
  bool waitLog(const std::string& text, std::chrono::seconds limit = 10s) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
};

std::string readLine(int fd) {
  std::string line;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return "TIMEOUT";
    char ch;
    if (::read(fd, &ch, 1) <= 0) return line;
    if (ch == '\n') break;
    line += ch;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

void sendText(int fd, const std::string& s) {
  REQUIRE(::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
}

std::string configFor(const std::string& section, const std::string& keys) {
  std::string who = ::geteuid() == 0 ? "user = nobody\ngroup = nogroup\n" : "";
  return "version = 1\n[global]\ndomains = example.org\nlog = stderr\nlog_level = debug\n"
         "[master]\nstop_timeout = 10s\n[" +
         section + "]\n" + who + keys;
}

UniqueFd connectUnix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  return fd;
}

}  // namespace

TEST_CASE("yubin-testd: --version and --help") {
  TempDir dir;
  Proc p;
  p.start(dir, env("YUBIN_TESTD"), {"--version"});
  CHECK(p.wait() == 0);
  CHECK(readAll(p.out) == "yubin-testd (yubin) " YUBIN_VERSION "\n");
  p.start(dir, env("YUBIN_TESTD"), {"--help"});
  CHECK(p.wait() == 0);
  std::string help = readAll(p.out);
  CHECK(help.rfind("usage: yubin-testd [-f] [-c file]\n", 0) == 0);
  CHECK(help.find("[mtad] section") != std::string::npos);
}

TEST_CASE("yubin-testd alone as [mtad]: greeting, echo, graceful stop") {
  TempDir dir;
  uint16_t port;
  { UniqueFd probe = yubin::event::testing::listenLoopback(&port); }
  std::string conf = dir.write(
      "yubin.conf", configFor("mtad", "listen = 127.0.0.1:" + std::to_string(port) + "\n"));
  Proc p;
  p.start(dir, env("YUBIN_TESTD"), {"-f", "-c", conf});
  REQUIRE(p.waitLog("info: started pid="));
  UniqueFd c = yubin::event::testing::connectLoopback(port);
  CHECK(readLine(c.get()) == "testd " + std::to_string(p.pid));
  // Lines come back, also when they arrive in pieces.
  sendText(c.get(), "EHLO x\r\n\r\n");
  CHECK(readLine(c.get()) == "EHLO x");
  CHECK(readLine(c.get()).empty());
  sendText(c.get(), "par");
  sendText(c.get(), "tial\r");
  sendText(c.get(), "\n");
  CHECK(readLine(c.get()) == "partial");
  ::kill(p.pid, SIGTERM);
  CHECK(readLine(c.get()) == "testd stopping");
  CHECK(p.wait() == 0);
  if (::geteuid() == 0)
    CHECK(p.log().find("privileges dropped to nobody(uid 65534)") != std::string::npos);
  else
    CHECK(p.log().find("dev mode") != std::string::npos);
}

TEST_CASE("yubin-testd started as mdad serves [mdad]'s Unix socket") {
  TempDir dir;
  std::string link = dir.path + "/mdad";
  REQUIRE(::symlink(env("YUBIN_TESTD").c_str(), link.c_str()) == 0);
  std::string sock = dir.path + "/lmtp";
  std::string conf = dir.write(
      "yubin.conf", configFor("mdad", "lmtp_socket = " + sock + "\nlmtp_socket_mode = 0666\n"));
  Proc p;
  p.start(dir, link, {"-f", "-c", conf});
  REQUIRE(p.waitLog("info: started pid="));
  UniqueFd c = connectUnix(sock);
  CHECK(readLine(c.get()) == "testd " + std::to_string(p.pid));
  sendText(c.get(), "LHLO x\r\n");
  CHECK(readLine(c.get()) == "LHLO x");
  ::kill(p.pid, SIGTERM);
  CHECK(p.wait() == 0);
  CHECK(p.log().find("listening key=lmtp_socket socket=unix:" + sock) != std::string::npos);
}

TEST_CASE("yubin-testd managed: status over the master channel, exits with the master") {
  TempDir dir;
  std::string conf = dir.write("yubin.conf", configFor("mtad", "listen = 127.0.0.1:1\n"));
  uint16_t port;
  UniqueFd lfd = yubin::event::testing::listenLoopback(&port);
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd master(sv[0]), theirs(sv[1]);
  Proc p;
  p.start(dir, env("YUBIN_TESTD"), {"-c", conf},
          {{"listen", lfd.get()}, {sys::kMasterChannelName, theirs.get()}});
  theirs.reset();
  lfd.reset();
  UniqueFd c = yubin::event::testing::connectLoopback(port);
  CHECK(readLine(c.get()) == "testd " + std::to_string(p.pid));
  ipc::FrameReader reader;
  REQUIRE(ipc::sendMessage(master.get(), ipc::StatusRequest{42}).ok());
  auto m = ipc::receiveMessage(master.get(), reader, 10s);
  REQUIRE(m.ok());
  CHECK(std::get<ipc::DaemonStatus>(*m) == ipc::DaemonStatus{42, static_cast<uint32_t>(p.pid), 1});
  master.reset();
  CHECK(readLine(c.get()) == "testd stopping");
  CHECK(p.wait() == 0);
  CHECK(p.log().find("master went away: stopping") != std::string::npos);
}

TEST_CASE("yubin-test-mkcert writes a usable pair; refuses bad arguments") {
  TempDir dir;
  Proc p;
  std::string cert = dir.path + "/c.pem", key = dir.path + "/k.pem";
  p.start(dir, env("YUBIN_TEST_MKCERT"), {cert, key, "mx.example.org", "3"});
  CHECK(p.wait() == 0);
  CHECK(tls::newServerContext(cert, key).ok());
  struct stat st;
  REQUIRE(::stat(key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  p.start(dir, env("YUBIN_TEST_MKCERT"), {cert, key});
  CHECK(p.wait() == 64);
  CHECK(p.log().rfind("usage: yubin-test-mkcert ", 0) == 0);
  p.start(dir, env("YUBIN_TEST_MKCERT"), {cert, key, "x", "0"});
  CHECK(p.wait() == 64);
  p.start(dir, env("YUBIN_TEST_MKCERT"), {dir.path + "/no/such/dir/c.pem", key, "x"});
  CHECK(p.wait() == 1);
  CHECK(p.log().rfind("yubin-test-mkcert: ", 0) == 0);
}
