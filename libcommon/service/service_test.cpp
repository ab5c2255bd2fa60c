// Tests of the daemon skeleton: option parsing, and service::run() in a
// forked child with a small echo daemon: --help/--version/bad options, config
// errors (exit 78, file:line), sockets passed like the master does (with the
// "yubin-master" channel answering status requests) or bound alone, the
// privilege drop, SIGHUP reloads (a bad file is refused), graceful stop on
// SIGTERM, on a second SIGTERM, after stop_timeout, and when the master goes
// away or speaks garbage.
#include "service/service.hpp"

#include <event2/buffer.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <thread>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "event/event_testing.hpp"
#include "ipc/ipc.hpp"
#include "sys/listen.hpp"
#include "tls/tls.hpp"
#include "yubin_build_config.h"

using namespace yubin;
using namespace std::chrono_literals;

namespace {

// --- the daemon under test ---------------------------------------------------

struct DaemonOptions {
  bool ignoreStop = false;  // never finishes its sessions on stop
};

// Greets each connection with "hello <pid> uid <euid> tls=<yes|no>", echoes
// lines, says "reloaded" to every session on reload and "bye" on stop.
class EchoDaemon final : public service::Daemon {
 public:
  explicit EchoDaemon(DaemonOptions o) : opts_(o) {}

  Status start(service::Context& ctx) override {
    ctx_ = &ctx;
    auto ls = service::acceptOn(
        ctx, "listen", [this](UniqueFd fd, const yubin::event::Peer&) { accept(std::move(fd)); });
    if (!ls) return ls.error();
    listeners_ = std::move(*ls);
    if (listeners_.empty()) return Error{"no listen socket"};
    return {};
  }
  void reload(const config::Config&) override {
    for (auto& [bev, s] : sessions_) s->write("reloaded\r\n");
  }
  void stop(service::Context& ctx) override {
    for (auto& l : listeners_) l->disable();
    if (opts_.ignoreStop) return;
    if (sessions_.empty()) return ctx.exit();
    for (auto& [bev, s] : sessions_) {
      s->write("bye\r\n");
      s->closing = true;
    }
  }
  size_t sessions() const override { return sessions_.size(); }

 private:
  struct Session {
    yubin::event::Bufferevent bev;
    bool closing = false;
    void write(const std::string& s) { bufferevent_write(bev.get(), s.data(), s.size()); }
  };

  void accept(UniqueFd fd) {
    auto bev = yubin::event::newSocketBufferevent(ctx_->base(), std::move(fd));
    if (!bev) return;
    auto s = std::make_unique<Session>();
    s->bev = std::move(*bev);
    bufferevent* raw = s->bev.get();
    bufferevent_setcb(raw, &EchoDaemon::readCb, &EchoDaemon::writeCb, &EchoDaemon::eventCb, this);
    bufferevent_enable(raw, EV_READ | EV_WRITE);
    s->write("hello " + std::to_string(::getpid()) + " uid " + std::to_string(::geteuid()) +
             " tls=" + (ctx_->tls() ? "yes" : "no") + "\r\n");
    sessions_[raw] = std::move(s);
  }
  void close(bufferevent* bev) {
    sessions_.erase(bev);
    if (ctx_->stopping() && sessions_.empty() && !opts_.ignoreStop) ctx_->exit();
  }
  static void readCb(bufferevent* bev, void* self) {
    auto* d = static_cast<EchoDaemon*>(self);
    evbuffer* in = bufferevent_get_input(bev);
    while (char* line = evbuffer_readln(in, nullptr, EVBUFFER_EOL_CRLF)) {
      d->sessions_[bev]->write(std::string(line) + "\r\n");
      free(line);
    }
  }
  static void writeCb(bufferevent* bev, void* self) {
    auto* d = static_cast<EchoDaemon*>(self);
    auto it = d->sessions_.find(bev);
    if (it != d->sessions_.end() && it->second->closing) d->close(bev);
  }
  static void eventCb(bufferevent* bev, short what, void* self) {
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) static_cast<EchoDaemon*>(self)->close(bev);
  }

  DaemonOptions opts_;
  service::Context* ctx_ = nullptr;
  std::vector<std::unique_ptr<yubin::event::Listener>> listeners_;
  std::map<bufferevent*, std::unique_ptr<Session>> sessions_;
};

service::Spec makeSpec(DaemonOptions o = {}, bool tls = false) {
  service::Spec spec;
  spec.name = "echod";
  spec.section = "mtad";
  spec.summary = "A test daemon that echoes lines.";
  spec.make = [o] { return std::make_unique<EchoDaemon>(o); };
  spec.tls = tls;
  return spec;
}

// --- harness -------------------------------------------------------------------

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/yubin-service-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    path = tmpl;
    // Daemons that dropped to nobody must still read the config (SIGHUP).
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

bool isRoot() { return ::geteuid() == 0; }
std::string expectedUid() { return isRoot() ? "65534" : std::to_string(::geteuid()); }

std::string configText(const std::string& extraMtad = "", const std::string& stopTimeout = "30s",
                       const std::string& extraGlobal = "") {
  return "version = 1\n"
         "[global]\n"
         "domains = example.org\n"
         "log = stderr\n"
         "log_level = debug\n" +
         extraGlobal +
         "[master]\n"
         "stop_timeout = " +
         stopTimeout +
         "\n"
         "[mtad]\n"
         "user = nobody\n"
         "group = nogroup\n"
         "listen = 127.0.0.1:1\n" +
         extraMtad;
}

// service::run() in a forked child, its stdout and stderr in files.
struct Child {
  pid_t pid = -1;
  std::string out, err;
  int status = -1;

  // Waits up to `limit` for the exit; kills it and fails after that.
  int wait(std::chrono::seconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        FAIL("child did not exit in time; log:\n" << readAll(err));
      }
      std::this_thread::sleep_for(5ms);
    }
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  std::string log() const { return readAll(err); }
  // Polls the log (the child writes it) until `text` shows up.
  bool waitLog(const std::string& text, std::chrono::seconds limit = 10s) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
};

void spawn(Child& c, const TempDir& dir, const service::Spec& spec, std::vector<std::string> args,
           std::vector<std::pair<std::string, int>> fds = {}, bool becomeNobody = false) {
  c.out = dir.path + "/stdout";
  c.err = dir.path + "/stderr";
  int outFd = ::open(c.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int errFd = ::open(c.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(outFd >= 0);
  REQUIRE(errFd >= 0);
  std::fflush(nullptr);
  c.pid = ::fork();
  REQUIRE(c.pid >= 0);
  if (c.pid == 0) {
    ::dup2(outFd, STDOUT_FILENO);
    ::dup2(errFd, STDERR_FILENO);
    if (!fds.empty() && !sys::passSockets(fds).ok()) ::_exit(99);
    if (becomeNobody && (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
                         ::setresuid(65534, 65534, 65534) != 0))
      ::_exit(98);
    args.insert(args.begin(), std::string(spec.name));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = service::run(static_cast<int>(args.size()), argv.data(), spec);
    std::fflush(nullptr);
    ::_exit(rc);
  }
  ::close(outFd);
  ::close(errFd);
}

// One line from a socket (without CRLF), "" on EOF, "TIMEOUT" after 10 s.
std::string readLine(int fd) {
  std::string line;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return "TIMEOUT";
    char ch;
    ssize_t n = ::read(fd, &ch, 1);
    if (n <= 0) return line;
    if (ch == '\n') break;
    line += ch;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

void sendLine(int fd, const std::string& s) {
  std::string l = s + "\r\n";
  REQUIRE(::send(fd, l.data(), l.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(l.size()));
}

// A daemon started like the master starts it: a listening socket named
// "listen" and the "yubin-master" channel.
struct Managed {
  TempDir dir;
  Child child;
  uint16_t port = 0;
  UniqueFd master;  // our end of the channel
  ipc::FrameReader reader;
  std::string conf;

  explicit Managed(const service::Spec& spec, const std::string& config = configText()) {
    conf = dir.write("yubin.conf", config);
    UniqueFd lfd = yubin::event::testing::listenLoopback(&port);
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    master.reset(sv[0]);
    UniqueFd theirs(sv[1]);
    spawn(child, dir, spec, {"-f", "-c", conf},
          {{"listen", lfd.get()}, {sys::kMasterChannelName, theirs.get()}});
  }
  ipc::DaemonStatus status(uint32_t serial) {
    REQUIRE(ipc::sendMessage(master.get(), ipc::StatusRequest{serial}).ok());
    auto m = ipc::receiveMessage(master.get(), reader, 10s);
    REQUIRE(m.ok());
    REQUIRE(std::holds_alternative<ipc::DaemonStatus>(*m));
    return std::get<ipc::DaemonStatus>(*m);
  }
  UniqueFd connect() { return yubin::event::testing::connectLoopback(port); }
};

}  // namespace

// --- options -------------------------------------------------------------------

TEST_CASE("every [global] log_level choice names its own level") {
  const config::KeySpec* k = config::findKey("global", "log_level");
  REQUIRE(k);
  const std::map<std::string, LogLevel> expected = {{"debug", LogLevel::Debug},
                                                    {"info", LogLevel::Info},
                                                    {"notice", LogLevel::Notice},
                                                    {"warning", LogLevel::Warning},
                                                    {"error", LogLevel::Error}};
  std::vector<std::string> choices = splitAny(k->choices, " ");
  CHECK(choices.size() == expected.size());
  for (const auto& name : choices) {
    INFO(name);
    REQUIRE(expected.count(name));
    CHECK(logLevelFromName(name) == expected.at(name));
  }
}

TEST_CASE("parseOptions") {
  struct Case {
    std::vector<const char*> args;
    std::string error;
    service::Options::Action action;
    std::string config;
    bool foreground;
  };
  const std::string def = YUBIN_SYSCONFDIR "/yubin.conf";
  using A = service::Options::Action;
  auto c = GENERATE_COPY(values<Case>({
      {{}, "", A::Run, def, false},
      {{"-f"}, "", A::Run, def, true},
      {{"-c", "/x/y.conf", "-f"}, "", A::Run, "/x/y.conf", true},
      {{"-f", "-c", "rel.conf"}, "", A::Run, "rel.conf", true},
      {{"--help"}, "", A::Help, def, false},
      {{"-h"}, "", A::Help, def, false},
      {{"--version"}, "", A::Version, def, false},
      {{"-c"}, "option -c needs a file", A::Run, "", false},
      {{"-c", ""}, "option -c needs a file", A::Run, "", false},
      {{"-x"}, "unknown option '-x'", A::Run, "", false},
      {{"--config=/x"}, "unknown option '--config=/x'", A::Run, "", false},
      {{"-f", "extra"}, "unexpected argument 'extra'", A::Run, "", false},
  }));
  std::vector<const char*> argv = {"prog"};
  argv.insert(argv.end(), c.args.begin(), c.args.end());
  auto o = service::parseOptions(static_cast<int>(argv.size()), argv.data());
  if (!c.error.empty()) {
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().message == c.error);
    return;
  }
  REQUIRE(o.ok());
  CHECK(o->action == c.action);
  CHECK(o->configPath == c.config);
  CHECK(o->foreground == c.foreground);
}

TEST_CASE("usage lists every option; the version line") {
  auto spec = makeSpec();
  std::string u = service::usage(spec);
  CHECK(u.rfind("usage: echod [-f] [-c file]\n       echod --help | --version\n"
                "A test daemon that echoes lines.\n",
                0) == 0);
  for (const char* opt : {"\n  -c file    config file (default " YUBIN_SYSCONFDIR "/yubin.conf)\n",
                          "\n  -f  ", "\n  --help  ", "\n  --version  ", "[mtad] section"})
    CHECK(u.find(opt) != std::string::npos);
  CHECK(service::versionLine(spec) == "echod (yubin) " YUBIN_VERSION "\n");
}

// --- run(): what it prints and returns before the loop ---------------------------

TEST_CASE("run: --help, --version and bad options") {
  TempDir dir;
  auto spec = makeSpec();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string out, errPrefix;
  };
  auto c = GENERATE_COPY(values<Case>({
      {{"--help"}, 0, service::usage(spec), ""},
      {{"--version"}, 0, "echod (yubin) " YUBIN_VERSION "\n", ""},
      {{"--bogus"}, 64, "", "echod: unknown option '--bogus'\nusage: echod "},
      {{"-c"}, 64, "", "echod: option -c needs a file\nusage: echod "},
  }));
  Child child;
  spawn(child, dir, spec, c.args);
  CHECK(child.wait() == c.code);
  CHECK(readAll(child.out) == c.out);
  CHECK(child.log().rfind(c.errPrefix, 0) == 0);
  if (c.errPrefix.empty()) CHECK(child.log().empty());
}

TEST_CASE("run: config errors exit 78 with file:line") {
  TempDir dir;
  Child child;
  SECTION("missing file") {
    spawn(child, dir, makeSpec(), {"-c", dir.path + "/nope.conf"});
    CHECK(child.wait() == 78);
    CHECK(child.log() == "echod: " + dir.path + "/nope.conf: cannot read: open " + dir.path +
                             "/nope.conf: No such file or directory\n");
  }
  SECTION("syntax error") {
    std::string conf = dir.write("yubin.conf", configText("bogus = 1\n"));
    spawn(child, dir, makeSpec(), {"-c", conf});
    CHECK(child.wait() == 78);
    CHECK(child.log() == "echod: " + conf + ":12: unknown key 'bogus' in [mtad]\n");
  }
  SECTION("section missing") {
    std::string conf = dir.write("yubin.conf", "version = 1\n[global]\ndomains = x\n");
    spawn(child, dir, makeSpec(), {"-c", conf});
    CHECK(child.wait() == 78);
    CHECK(child.log() == "echod: " + conf + ": no [mtad] section: echod is not enabled\n");
  }
  SECTION("unknown user (root only: otherwise dev mode)") {
    if (!isRoot()) return;
    std::string conf = dir.write("yubin.conf",
                                 "version = 1\n[global]\ndomains = x\nlog = stderr\n[mtad]\n"
                                 "user = yubin-no-such-user\nlisten = 127.0.0.1:1\n");
    uint16_t port;
    UniqueFd lfd = yubin::event::testing::listenLoopback(&port);
    spawn(child, dir, makeSpec(), {"-c", conf}, {{"listen", lfd.get()}});
    CHECK(child.wait() == 78);
    CHECK(child.log().find("error: " + conf +
                           ":6: [mtad] user: no such user 'yubin-no-such-user'\n") !=
          std::string::npos);
  }
  SECTION("unreadable TLS certificate") {
    std::string conf = dir.write("yubin.conf", configText("", "30s",
                                                          "tls_cert = " + dir.path +
                                                              "/none.pem\n"
                                                              "tls_key = " +
                                                              dir.path + "/none.key\n"));
    uint16_t port;
    UniqueFd lfd = yubin::event::testing::listenLoopback(&port);
    spawn(child, dir, makeSpec({}, true), {"-c", conf}, {{"listen", lfd.get()}});
    CHECK(child.wait() == 78);
    CHECK(child.log().find("error: " + conf + ":6: tls_cert " + dir.path +
                           "/none.pem: No such file or directory\n") != std::string::npos);
  }
}

// --- run(): the life of a daemon ------------------------------------------------

TEST_CASE("run: managed by a master: status, echo, reload, graceful SIGTERM") {
  Managed m(makeSpec());
  auto st = m.status(7);
  CHECK(st.serial == 7);
  CHECK(st.pid == static_cast<uint32_t>(m.child.pid));
  CHECK(st.sessions == 0);

  UniqueFd c = m.connect();
  CHECK(readLine(c.get()) ==
        "hello " + std::to_string(m.child.pid) + " uid " + expectedUid() + " tls=no");
  sendLine(c.get(), "ping");
  CHECK(readLine(c.get()) == "ping");
  CHECK(m.status(8).sessions == 1);

  // A config that does not parse is refused; the daemon keeps running.
  std::string good = readAll(m.conf);
  m.dir.write("yubin.conf", good + "bogus = 1\n");
  ::kill(m.child.pid, SIGHUP);
  CHECK(m.child.waitLog("reload refused, keeping the running config error=\"" + m.conf +
                        ":12: unknown key 'bogus' in [mtad]\""));
  // A good one is applied: the daemon's reload() runs.
  m.dir.write("yubin.conf", good);
  ::kill(m.child.pid, SIGHUP);
  CHECK(readLine(c.get()) == "reloaded");
  CHECK(m.child.waitLog("reloaded config=" + m.conf));
  sendLine(c.get(), "still here");
  CHECK(readLine(c.get()) == "still here");

  ::kill(m.child.pid, SIGTERM);
  CHECK(readLine(c.get()) == "bye");
  CHECK(readLine(c.get()).empty());  // EOF
  CHECK(m.child.wait() == 0);
  std::string log = m.child.log();
  CHECK(log.find("stopping reason=\"SIGTERM\" sessions=1") != std::string::npos);
  CHECK(log.find("listening key=listen socket=127.0.0.1:" + std::to_string(m.port)) !=
        std::string::npos);
  CHECK(log.find("info: stopped\n") != std::string::npos);
  if (isRoot())
    CHECK(log.find("privileges dropped to nobody(uid 65534) nogroup(gid 65534)") !=
          std::string::npos);
}

TEST_CASE("run: the daemon stops when the master goes away") {
  Managed m(makeSpec());
  CHECK(m.status(1).serial == 1);
  m.master.reset();
  CHECK(m.child.wait() == 0);
  CHECK(m.child.log().find("master went away: stopping") != std::string::npos);
}

TEST_CASE("run: garbage on the master channel stops the daemon") {
  Managed m(makeSpec());
  CHECK(m.status(1).serial == 1);
  // A frame of another version.
  const char bad[] = {0, 0, 0, 0, 0, 9, 0, char(200)};
  REQUIRE(::send(m.master.get(), bad, sizeof bad, MSG_NOSIGNAL) == sizeof bad);
  CHECK(m.child.wait() == 0);
  CHECK(m.child.log().find("error: master channel: ") != std::string::npos);
  CHECK(m.child.log().find("stopping reason=\"master channel closed\"") != std::string::npos);
}

TEST_CASE("run: a message the daemon does not take closes the channel") {
  Managed m(makeSpec());
  REQUIRE(ipc::sendMessage(m.master.get(), ipc::StopCommand{}).ok());
  CHECK(m.child.wait() == 0);
  CHECK(m.child.log().find("master channel: unexpected message StopCommand") != std::string::npos);
}

TEST_CASE("run: stop_timeout ends a daemon whose sessions do not finish") {
  DaemonOptions stubborn{true};
  Managed m(makeSpec(stubborn), configText("", "1s"));
  UniqueFd c = m.connect();
  CHECK(readLine(c.get()).rfind("hello ", 0) == 0);
  auto t0 = std::chrono::steady_clock::now();
  ::kill(m.child.pid, SIGTERM);
  CHECK(m.child.wait() == 0);
  CHECK(std::chrono::steady_clock::now() - t0 >= 900ms);
  CHECK(m.child.log().find("stop_timeout reached: closing sessions=1") != std::string::npos);
  CHECK(readLine(c.get()).empty());  // the session was closed
}

TEST_CASE("run: a second SIGTERM while stopping exits at once") {
  DaemonOptions stubborn{true};
  Managed m(makeSpec(stubborn), configText("", "1h"));
  UniqueFd c = m.connect();
  CHECK(readLine(c.get()).rfind("hello ", 0) == 0);
  ::kill(m.child.pid, SIGTERM);
  REQUIRE(m.child.waitLog("stopping reason=\"SIGTERM\""));
  ::kill(m.child.pid, SIGINT);
  CHECK(m.child.wait() == 0);
  CHECK(m.child.log().find("SIGINT while stopping: exiting now sessions=1") != std::string::npos);
}

TEST_CASE("run: alone, the daemon binds its section's sockets itself") {
  TempDir dir;
  uint16_t port;
  { UniqueFd probe = yubin::event::testing::listenLoopback(&port); }  // a free port, released
  std::string conf =
      dir.write("yubin.conf",
                "version = 1\n[global]\ndomains = x\nlog = stderr\n[mtad]\nuser = nobody\n"
                "group = nogroup\nlisten = 127.0.0.1:" +
                    std::to_string(port) + "\n");
  Child child;
  spawn(child, dir, makeSpec(), {"-c", conf});
  REQUIRE(child.waitLog("info: started pid="));
  UniqueFd c = yubin::event::testing::connectLoopback(port);
  CHECK(readLine(c.get()) ==
        "hello " + std::to_string(child.pid) + " uid " + expectedUid() + " tls=no");
  ::kill(child.pid, SIGTERM);
  CHECK(readLine(c.get()) == "bye");
  CHECK(child.wait() == 0);
  CHECK(child.log().find("no sockets passed: bound 1 myself") != std::string::npos);
  CHECK(child.log().find("master=no") != std::string::npos);
}

TEST_CASE("run: not root is dev mode") {
  if (!isRoot()) {
    WARN("already not root: covered by the other tests");
    return;
  }
  TempDir dir;
  std::string conf = dir.write("yubin.conf", configText("chroot = /var/empty\n"));
  uint16_t port;
  UniqueFd lfd = yubin::event::testing::listenLoopback(&port);
  Child child;
  spawn(child, dir, makeSpec(), {"-c", conf}, {{"listen", lfd.get()}}, true);
  REQUIRE(child.waitLog("info: started pid="));
  UniqueFd c = yubin::event::testing::connectLoopback(port);
  CHECK(readLine(c.get()) == "hello " + std::to_string(child.pid) + " uid 65534 tls=no");
  ::kill(child.pid, SIGTERM);
  CHECK(child.wait() == 0);
  CHECK(child.log().find("notice: not root: running as nobody (dev mode)") != std::string::npos);
  CHECK(child.log().find("notice: not root: chroot=/var/empty ignored") != std::string::npos);
}

TEST_CASE("run: a TLS daemon gets the server context") {
  TempDir dir;
  std::string cert = dir.path + "/cert.pem", key = dir.path + "/key.pem";
  REQUIRE(tls::writeSelfSigned(cert, key, "localhost").ok());
  Managed m(makeSpec({}, true),
            configText("", "30s", "tls_cert = " + cert + "\ntls_key = " + key + "\n"));
  UniqueFd c = m.connect();
  CHECK(readLine(c.get()).ends_with(" tls=yes"));
  CHECK(m.child.log().find("tls certificate loaded cert=" + cert) != std::string::npos);
  // The same files again on SIGHUP (the key is 0600 root: after the drop the
  // reload fails and the old context stays).
  ::kill(m.child.pid, SIGHUP);
  CHECK(readLine(c.get()) == "reloaded");
  if (isRoot())
    CHECK(m.child.log().find("tls reload failed, keeping the old certificate") !=
          std::string::npos);
  ::kill(m.child.pid, SIGTERM);
  CHECK(m.child.wait() == 0);
}
