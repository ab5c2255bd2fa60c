// yubin-master's supervisor; see supervisor.hpp.
// Trust: runs as root; the control socket's peers are local and checked with
// SO_PEERCRED before any of their messages is acted on; every message from a
// peer or a daemon goes through the strict ipc decoders.
#include "master/supervisor.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "ipc/ipc.hpp"
#include "master/policy.hpp"
#include "sys/listen.hpp"
#include "yubin_build_config.h"

namespace yubin::master {
namespace {

using Clock = std::chrono::steady_clock;
using EventBase = CPtr<event_base, event_base_free>;
using Event = CPtr<struct event, event_free>;
using Bufferevent = CPtr<bufferevent, bufferevent_free>;
using ConnListener = CPtr<evconnlistener, evconnlistener_free>;

// How long a daemon has to answer a status request.
constexpr std::chrono::milliseconds kStatusTimeout{1000};
// A control client that sends nothing for this long is dropped.
constexpr int kClientIdleSeconds = 30;
constexpr size_t kMaxClients = 32;
// After the daemons stopped, how long the last replies may take to leave.
constexpr std::chrono::milliseconds kFlushTimeout{2000};
// How long mtad has to answer a queue command (an action on a message
// being delivered waits for the attempt to end). Under kClientIdleSeconds,
// so the client is still there to be told.
constexpr std::chrono::milliseconds kQueueTimeout{25000};
// The daemon that owns the queue and gets the queue channel.
constexpr const char* kQueueDaemon = "mtad";

timeval toTimeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(ms.count() % 1000 * 1000);
  return tv;
}

LogLevel parseLevel(const std::string& s) {
  if (s == "debug") return LogLevel::Debug;
  if (s == "notice") return LogLevel::Notice;
  if (s == "warning") return LogLevel::Warning;
  if (s == "error") return LogLevel::Error;
  return LogLevel::Info;
}

std::optional<gid_t> lookupGroup(const std::string& name) {
  if (name.empty()) return std::nullopt;
  std::vector<char> buf(16384);
  group gr{};
  group* out = nullptr;
  if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &out) != 0 || !out)
    return std::nullopt;
  return out->gr_gid;
}

// The peer's credentials from the kernel. Supplementary groups come from
// SO_PEERGROUPS (the groups the process really has); if the kernel lacks
// it, from the user database.
std::optional<PeerCred> peerCred(int fd) {
  ucred uc{};
  socklen_t len = sizeof uc;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0) return std::nullopt;
  PeerCred p{uc.pid, uc.uid, uc.gid, {}};
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      p.groups = std::move(groups);
      return p;
    }
    if (errno != ERANGE) break;
    groups.resize(glen / sizeof(gid_t) + 1);
  }
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* out = nullptr;
  if (::getpwuid_r(uc.uid, &pw, buf.data(), buf.size(), &out) == 0 && out) {
    int n = 64;
    std::vector<gid_t> g(static_cast<size_t>(n));
    if (::getgrouplist(out->pw_name, out->pw_gid, g.data(), &n) < 0) {
      g.resize(static_cast<size_t>(n));
      ::getgrouplist(out->pw_name, out->pw_gid, g.data(), &n);
    }
    g.resize(static_cast<size_t>(std::max(n, 0)));
    p.groups = std::move(g);
  }
  return p;
}

// What a section binds, to notice on reload that it changed.
std::string listenSignature(const config::Config& cfg, std::string_view section) {
  std::string sig;
  for (const auto& spec : config::schema()) {
    if (spec.section != section) continue;
    if (spec.type == config::Type::Listen) {
      for (const auto& ep : cfg.endpoints(section, spec.key))
        sig += std::string(spec.key) + "=" + ep.host + "/" + std::to_string(ep.port) + ";";
    } else if (spec.type == config::Type::UnixListen) {
      sig += std::string(spec.key) + "=" + cfg.str(section, spec.key) + ";";
    }
  }
  return sig;
}

class Supervisor;

struct Child {
  Supervisor* sup = nullptr;
  std::string name;
  std::vector<sys::Listener> listeners;
  std::string listenSig;
  pid_t pid = -1;
  ipc::DaemonState state = ipc::DaemonState::Stopped;
  Clock::time_point started{};
  uint32_t restarts = 0;
  Backoff backoff{std::chrono::seconds(60)};
  Event restartTimer;
  bool removed = false;  // its section left the config: do not restart
  // The master's end of the status channel, for the current process only.
  UniqueFd channel;
  Event channelEv;
  ipc::FrameReader reader{64 * 1024};
  // The current status round.
  bool asked = false;
  bool answered = false;
  uint64_t sessions = 0;
  // mtad only: the queue channel (ipc::kQueueChannelName), queue commands
  // out, their results in.
  UniqueFd queueChannel;
  Event queueEv;
  ipc::FrameReader queueReader{ipc::kMaxFrameSize};
};

// A queue command passed to mtad, waiting for its result.
struct QueueWait {
  Supervisor* sup = nullptr;
  uint32_t serial = 0;
  uint64_t clientId = 0;
  Event timer;
};

struct Client {
  Supervisor* sup = nullptr;
  uint64_t id = 0;
  Bufferevent bev;
  ipc::FrameReader reader{64 * 1024};
  PeerCred cred;
  bool closing = false;  // free once the output is flushed
};

class Supervisor {
 public:
  Supervisor(const Options& opts, config::Config cfg)
      : opts_(opts), cfg_(std::move(cfg)), started_(Clock::now()) {}

  int run();

 private:
  // Setup.
  Status setupControl();
  Status addDaemon(const std::string& name, Child*& out);
  void applyLogging();
  void refreshPolicy();

  // Children.
  void spawn(Child& c);
  void scheduleRestart(Child& c, const std::string& why);
  void onChildExit(pid_t pid, int status);
  void reapChildren();
  void closeChannel(Child& c);
  void channelLost(Child& c);
  void onChannelReadable(Child& c);
  static void channelCb(evutil_socket_t, short, void* arg);
  static void restartCb(evutil_socket_t, short, void* arg);

  // Queue commands: ctl -> master -> mtad and back.
  void forwardQueue(Client& cl, const ipc::QueueCommand& cmd);
  void closeQueueChannel(Child& c, const char* why);
  void onQueueReadable(Child& c);
  void endQueueWait(uint32_t serial, const ipc::Message& reply);
  static void queueChannelCb(evutil_socket_t, short, void* arg);
  static void queueTimeoutCb(evutil_socket_t, short, void* arg);

  // Control.
  static void acceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);
  static void clientReadCb(bufferevent* bev, void* arg);
  static void clientWriteCb(bufferevent* bev, void* arg);
  static void clientEventCb(bufferevent* bev, short what, void* arg);
  void onAccept(UniqueFd fd);
  void onClientMessage(Client& cl, ipc::Message&& m);
  void reply(Client& cl, const ipc::Message& m, bool thenClose);
  void dropClient(uint64_t id);

  // Status rounds.
  void startStatusRound(uint64_t clientId);
  void finishStatusRound();
  static void statusTimeoutCb(evutil_socket_t, short, void* arg);
  ipc::StatusReply buildStatus() const;

  // Reload and stop.
  Status reload();
  void beginStop(const char* why);
  void checkStopped();
  static void killTimeoutCb(evutil_socket_t, short, void* arg);
  void finish();
  void maybeExit();

  static void signalCb(evutil_socket_t sig, short, void* arg);

  Options opts_;
  config::Config cfg_;
  Clock::time_point started_;
  bool devMode_ = ::geteuid() != 0;
  AccessPolicy policy_;
  EventBase base_;
  std::vector<Event> signals_;
  ConnListener control_;
  std::string controlPath_;
  dev_t controlDev_ = 0;  // identity of our socket file, so that we only
  ino_t controlIno_ = 0;  // ever remove our own
  std::vector<std::unique_ptr<Child>> children_;
  std::map<uint64_t, std::unique_ptr<Client>> clients_;
  uint64_t nextClientId_ = 1;

  uint32_t queueSerial_ = 0;
  std::map<uint32_t, std::unique_ptr<QueueWait>> queueWaits_;

  uint32_t statusSerial_ = 0;
  bool statusActive_ = false;
  std::vector<uint64_t> statusWaiters_;
  Event statusTimer_;

  bool stopping_ = false;
  bool finishing_ = false;  // everything stopped; flushing the last replies
  Event killTimer_;
};

// ---------------------------------------------------------------- setup --

void Supervisor::applyLogging() {
  LogLevel level = parseLevel(cfg_.str("global", "log_level"));
  if (opts_.foreground || cfg_.str("global", "log") == "stderr")
    logInit("yubin-master", LogTarget::Stderr, level);
  else
    logInit("yubin-master", LogTarget::Syslog, level);
}

void Supervisor::refreshPolicy() {
  policy_.devMode = devMode_;
  policy_.ownUid = ::getuid();
  const std::string& admin = cfg_.str("master", "admin_group");
  policy_.adminGid = lookupGroup(admin);
  if (!policy_.adminGid && !devMode_)
    YLOG_WARN("admin group does not exist; only root may use the control socket group=%s",
              admin.c_str());
}

Status Supervisor::setupControl() {
  controlPath_ = cfg_.str("master", "control_socket");
  gid_t gid = static_cast<gid_t>(-1);
  if (!devMode_ && policy_.adminGid) gid = *policy_.adminGid;
  auto fd = sys::bindUnix(controlPath_, 0660, gid, 64);
  if (!fd)
    return Error{cfg_.where("master", "control_socket") + ": [master] control_socket: " +
                 fd.error().message};
  evconnlistener* l = evconnlistener_new(base_.get(), &Supervisor::acceptCb, this,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
                                         fd->get());
  if (!l) return Error{"cannot listen on the control socket " + controlPath_};
  fd->release();
  control_.reset(l);
  struct stat st;
  if (::stat(controlPath_.c_str(), &st) == 0) {
    controlDev_ = st.st_dev;
    controlIno_ = st.st_ino;
  }
  return {};
}

Status Supervisor::addDaemon(const std::string& name, Child*& out) {
  auto listeners = sys::bindForSection(cfg_, name);
  if (!listeners) return listeners.error();
  auto c = std::make_unique<Child>();
  c->sup = this;
  c->name = name;
  c->listeners = std::move(*listeners);
  c->listenSig = listenSignature(cfg_, name);
  c->backoff.setCap(cfg_.duration("master", "restart_delay_max"));
  c->restartTimer.reset(evtimer_new(base_.get(), &Supervisor::restartCb, c.get()));
  out = c.get();
  children_.push_back(std::move(c));
  return {};
}

int Supervisor::run() {
  applyLogging();
  YLOG_INFO("starting version=%s config=%s", YUBIN_VERSION, opts_.configPath.c_str());
  if (devMode_)
    YLOG_NOTICE("not started as root: dev mode, the daemons keep uid=%u gid=%u",
                unsigned(::getuid()), unsigned(::getgid()));

  base_.reset(event_base_new());
  if (!base_) {
    YLOG_ERROR("cannot create the event loop");
    return 1;
  }
  refreshPolicy();

  for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGCHLD}) {
    Event ev(evsignal_new(base_.get(), sig, &Supervisor::signalCb, this));
    if (!ev || event_add(ev.get(), nullptr) != 0) {
      YLOG_ERROR("cannot watch signal %d", sig);
      return 1;
    }
    signals_.push_back(std::move(ev));
  }
  statusTimer_.reset(evtimer_new(base_.get(), &Supervisor::statusTimeoutCb, this));
  killTimer_.reset(evtimer_new(base_.get(), &Supervisor::killTimeoutCb, this));

  // Everything is bound before anything starts: a port that is taken stops
  // the start with the line of the config that names it.
  std::vector<Child*> toStart;
  for (std::string_view section : config::daemonSections()) {
    if (!cfg_.hasSection(section)) continue;
    Child* c = nullptr;
    if (auto s = addDaemon(std::string(section), c); !s) {
      YLOG_ERROR("cannot bind error=\"%s\"", s.error().message.c_str());
      std::fprintf(stderr, "yubin-master: %s\n", s.error().message.c_str());
      return 1;
    }
    toStart.push_back(c);
  }
  if (auto s = setupControl(); !s) {
    YLOG_ERROR("cannot create the control socket error=\"%s\"", s.error().message.c_str());
    std::fprintf(stderr, "yubin-master: %s\n", s.error().message.c_str());
    return 1;
  }
  if (toStart.empty()) YLOG_WARN("no daemon section in the config; nothing to supervise");

  // In the background, stop writing to the terminal (or yubinctl's pipe)
  // now that starting can no longer fail; the daemons inherit this.
  if (!opts_.foreground && cfg_.str("global", "log") != "stderr") {
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (null) {
      ::dup2(null.get(), STDIN_FILENO);
      ::dup2(null.get(), STDOUT_FILENO);
      ::dup2(null.get(), STDERR_FILENO);
    }
  }

  for (Child* c : toStart) spawn(*c);
  YLOG_INFO("ready control=%s daemons=%zu", controlPath_.c_str(), toStart.size());

  event_base_dispatch(base_.get());

  // The loop ended: every daemon is gone (finish()).
  clients_.clear();
  control_.reset();
  for (auto& c : children_) c->listeners.clear();
  return 0;
}

// ------------------------------------------------------------- children --

void Supervisor::spawn(Child& c) {
  std::string program = cfg_.str("master", "program_dir") + "/" + c.name;
  if (::access(program.c_str(), X_OK) != 0) {
    scheduleRestart(c, "cannot execute " + program + ": " + std::strerror(errno));
    return;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    scheduleRestart(c, std::string("socketpair: ") + std::strerror(errno));
    return;
  }
  UniqueFd mine(sv[0]), theirs(sv[1]);
  UniqueFd queueMine, queueTheirs;
  if (c.name == kQueueDaemon) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
      scheduleRestart(c, std::string("socketpair: ") + std::strerror(errno));
      return;
    }
    queueMine.reset(sv[0]);
    queueTheirs.reset(sv[1]);
  }

  std::vector<std::pair<std::string, int>> fds;
  for (const auto& l : c.listeners) fds.emplace_back(l.name, l.fd.get());
  fds.emplace_back(sys::kMasterChannelName, theirs.get());
  if (queueTheirs) fds.emplace_back(ipc::kQueueChannelName, queueTheirs.get());
  std::vector<std::string> args = {program, "-c", opts_.configPath};
  if (opts_.foreground) args.push_back("-f");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    scheduleRestart(c, std::string("fork: ") + std::strerror(errno));
    return;
  }
  if (pid == 0) {
    // The child: plain signal state, its sockets from fd 3, then exec.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGHUP, SIGTERM, SIGINT, SIGCHLD}) ::signal(sig, SIG_DFL);
    if (auto s = sys::passSockets(fds); !s) {
      std::fprintf(stderr, "yubin-master: %s: %s\n", c.name.c_str(), s.error().message.c_str());
      ::_exit(127);
    }
    // Nothing else of ours reaches the daemon, even an fd someone forgot
    // to mark close-on-exec.
    ::close_range(static_cast<unsigned>(3 + fds.size()), ~0u, 0);
    ::execv(program.c_str(), argv.data());
    std::fprintf(stderr, "yubin-master: exec %s: %s\n", program.c_str(), std::strerror(errno));
    ::_exit(127);
  }

  theirs.reset();
  c.pid = pid;
  c.state = ipc::DaemonState::Running;
  c.started = Clock::now();
  c.channel = std::move(mine);
  c.reader = ipc::FrameReader(64 * 1024);
  c.asked = c.answered = false;
  c.channelEv.reset(event_new(base_.get(), c.channel.get(), EV_READ | EV_PERSIST,
                              &Supervisor::channelCb, &c));
  if (c.channelEv) event_add(c.channelEv.get(), nullptr);
  if (queueMine) {
    queueTheirs.reset();
    c.queueChannel = std::move(queueMine);
    c.queueReader = ipc::FrameReader(ipc::kMaxFrameSize);
    c.queueEv.reset(event_new(base_.get(), c.queueChannel.get(), EV_READ | EV_PERSIST,
                              &Supervisor::queueChannelCb, &c));
    if (c.queueEv) event_add(c.queueEv.get(), nullptr);
  }
  YLOG_INFO("daemon started name=%s pid=%d program=%s", c.name.c_str(), int(pid),
            program.c_str());
}

void Supervisor::scheduleRestart(Child& c, const std::string& why) {
  auto uptime = c.pid > 0 || c.state == ipc::DaemonState::Running ? Clock::now() - c.started
                                                                  : Clock::duration::zero();
  c.pid = -1;
  if (stopping_ || c.removed) {
    c.state = ipc::DaemonState::Stopped;
    return;
  }
  auto delay = c.backoff.next(uptime);
  c.state = ipc::DaemonState::Backoff;
  YLOG_WARN("daemon down name=%s cause=\"%s\" restart_in=%llds", c.name.c_str(), why.c_str(),
            static_cast<long long>(delay.count()));
  timeval tv = toTimeval(std::chrono::duration_cast<std::chrono::milliseconds>(delay));
  evtimer_add(c.restartTimer.get(), &tv);
}

void Supervisor::restartCb(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Child*>(arg);
  if (c->sup->stopping_ || c->removed) return;
  ++c->restarts;
  c->sup->spawn(*c);
}

void Supervisor::reapChildren() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    onChildExit(pid, status);
  }
}

void Supervisor::onChildExit(pid_t pid, int status) {
  Child* c = nullptr;
  for (auto& ch : children_)
    if (ch->pid == pid) c = ch.get();
  if (!c) return;  // not ours (cannot happen: we start no other process)
  closeChannel(*c);
  closeQueueChannel(*c, "mtad exited before answering");
  bool wasPending = statusActive_ && c->asked && !c->answered;
  c->asked = false;
  std::string cause = describeExit(status);
  if (stopping_ || c->removed) {
    YLOG_INFO("daemon stopped name=%s pid=%d cause=\"%s\"", c->name.c_str(), int(pid),
              cause.c_str());
    c->pid = -1;
    c->state = ipc::DaemonState::Stopped;
    if (stopping_) {
      checkStopped();
    } else {
      // Its section is gone: forget it, and free its ports for a later reload.
      std::erase_if(children_, [&](auto& p) { return p.get() == c; });
    }
  } else {
    scheduleRestart(*c, "pid " + std::to_string(pid) + " " + cause);
  }
  if (wasPending) finishStatusRound();
}

void Supervisor::closeChannel(Child& c) {
  c.channelEv.reset();
  c.channel.reset();
}

void Supervisor::channelLost(Child& c) {
  closeChannel(c);
  if (statusActive_ && c.asked && !c.answered) {
    c.asked = false;  // it will not answer: do not wait for it
    finishStatusRound();
  }
}

void Supervisor::channelCb(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Child*>(arg);
  c->sup->onChannelReadable(*c);
}

void Supervisor::onChannelReadable(Child& c) {
  char buf[4096];
  ssize_t n = ::recv(c.channel.get(), buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    // The daemon closed its end (it is exiting, or does not take status
    // requests); SIGCHLD tells the rest.
    channelLost(c);
    return;
  }
  c.reader.feed(std::string_view(buf, static_cast<size_t>(n)));
  for (;;) {
    auto m = c.reader.next();
    if (!m) {
      YLOG_WARN("protocol error on the status channel; closing it name=%s pid=%d error=\"%s\"",
                c.name.c_str(), int(c.pid), m.error().message.c_str());
      channelLost(c);
      return;
    }
    if (!*m) break;
    auto* ds = std::get_if<ipc::DaemonStatus>(&**m);
    if (!ds) {
      YLOG_WARN("unexpected message on the status channel; closing it name=%s type=%s",
                c.name.c_str(), ipc::typeName(static_cast<uint16_t>(ipc::typeOf(**m))));
      channelLost(c);
      return;
    }
    if (statusActive_ && c.asked && ds->serial == statusSerial_) {
      c.answered = true;
      c.sessions = ds->sessions;
    }
  }
  if (statusActive_) finishStatusRound();
}

// -------------------------------------------------------------- control --

void Supervisor::acceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  static_cast<Supervisor*>(arg)->onAccept(UniqueFd(fd));
}

void Supervisor::onAccept(UniqueFd fd) {
  if (stopping_ || clients_.size() >= kMaxClients) return;  // fd closes
  auto cred = peerCred(fd.get());
  if (!cred) {
    YLOG_WARN("control connection without credentials; closed");
    return;
  }
  auto cl = std::make_unique<Client>();
  cl->sup = this;
  cl->id = nextClientId_++;
  cl->cred = *cred;
  cl->bev.reset(bufferevent_socket_new(base_.get(), fd.get(), BEV_OPT_CLOSE_ON_FREE));
  if (!cl->bev) return;
  fd.release();
  bufferevent_setcb(cl->bev.get(), &Supervisor::clientReadCb, &Supervisor::clientWriteCb,
                    &Supervisor::clientEventCb, cl.get());
  timeval idle{kClientIdleSeconds, 0};
  bufferevent_set_timeouts(cl->bev.get(), &idle, &idle);
  bufferevent_enable(cl->bev.get(), EV_READ | EV_WRITE);
  Client& ref = *cl;
  clients_[cl->id] = std::move(cl);

  if (!mayControl(ref.cred, policy_)) {
    YLOG_WARN("control refused uid=%u gid=%u pid=%d", unsigned(ref.cred.uid),
              unsigned(ref.cred.gid), int(ref.cred.pid));
    reply(ref,
          ipc::ErrorReply{"permission denied: uid " + std::to_string(ref.cred.uid) +
                          " is neither root nor in the admin group '" +
                          cfg_.str("master", "admin_group") + "'"},
          true);
  }
}

void Supervisor::clientReadCb(bufferevent* bev, void* arg) {
  auto* cl = static_cast<Client*>(arg);
  Supervisor* sup = cl->sup;
  uint64_t id = cl->id;
  evbuffer* in = bufferevent_get_input(bev);
  if (cl->closing) {
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  size_t len = evbuffer_get_length(in);
  std::string data(len, '\0');
  evbuffer_remove(in, data.data(), len);
  cl->reader.feed(data);
  for (;;) {
    auto m = cl->reader.next();
    if (!m) {
      YLOG_WARN("control protocol error uid=%u error=\"%s\"", unsigned(cl->cred.uid),
                m.error().message.c_str());
      sup->reply(*cl, ipc::ErrorReply{m.error().message}, true);
      return;
    }
    if (!*m) return;
    sup->onClientMessage(*cl, std::move(**m));
    // The message may have ended the client (or the whole loop).
    auto it = sup->clients_.find(id);
    if (it == sup->clients_.end() || it->second->closing) return;
  }
}

void Supervisor::clientWriteCb(bufferevent* bev, void* arg) {
  auto* cl = static_cast<Client*>(arg);
  if (cl->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    cl->sup->dropClient(cl->id);
  else
    cl->sup->maybeExit();
}

void Supervisor::clientEventCb(bufferevent*, short, void* arg) {
  // EOF, error or idle timeout: the client is done.
  auto* cl = static_cast<Client*>(arg);
  cl->sup->dropClient(cl->id);
}

void Supervisor::dropClient(uint64_t id) {
  clients_.erase(id);
  maybeExit();
}

void Supervisor::reply(Client& cl, const ipc::Message& m, bool thenClose) {
  std::string frame = ipc::encode(m);
  bufferevent_write(cl.bev.get(), frame.data(), frame.size());
  if (thenClose) {
    cl.closing = true;
    bufferevent_disable(cl.bev.get(), EV_READ);
  }
}

void Supervisor::onClientMessage(Client& cl, ipc::Message&& m) {
  if (std::holds_alternative<ipc::StatusCommand>(m)) {
    startStatusRound(cl.id);
  } else if (std::holds_alternative<ipc::ReloadCommand>(m)) {
    YLOG_INFO("reload requested uid=%u", unsigned(cl.cred.uid));
    auto s = reload();
    if (s)
      reply(cl, ipc::OkReply{"reloaded"}, false);
    else
      reply(cl, ipc::ErrorReply{s.error().message}, false);
  } else if (auto* q = std::get_if<ipc::QueueCommand>(&m)) {
    forwardQueue(cl, *q);
  } else if (std::holds_alternative<ipc::StopCommand>(m)) {
    YLOG_INFO("stop requested uid=%u", unsigned(cl.cred.uid));
    reply(cl, ipc::OkReply{"stopping"}, true);
    beginStop("stop command");
  } else {
    reply(cl,
          ipc::ErrorReply{std::string("unexpected message ") +
                          ipc::typeName(static_cast<uint16_t>(ipc::typeOf(m)))},
          true);
  }
}

// ---------------------------------------------------------------- queue --

// The ID as the log may show it: it comes from the client and is checked
// by mtad only.
std::string logSafeId(std::string_view id) {
  std::string out;
  for (char ch : id.substr(0, 32)) out.push_back((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ? ch : '?');
  if (id.size() > 32) out += "...";
  return out;
}

void Supervisor::forwardQueue(Client& cl, const ipc::QueueCommand& cmd) {
  YLOG_INFO("queue command uid=%u action=%s id=%s", unsigned(cl.cred.uid),
            ipc::queueActionName(cmd.action), logSafeId(cmd.id).c_str());
  Child* mtad = nullptr;
  for (auto& c : children_)
    if (c->name == kQueueDaemon && !c->removed) mtad = c.get();
  if (!mtad) return reply(cl, ipc::ErrorReply{"no [mtad] section: there is no queue"}, false);
  if (mtad->state != ipc::DaemonState::Running || !mtad->queueChannel)
    return reply(cl,
                 ipc::ErrorReply{std::string("mtad is not running (") +
                                 ipc::stateName(mtad->state) + "); try again when it runs"},
                 false);
  uint32_t serial = ++queueSerial_;
  std::string frame = ipc::encode(ipc::QueueRequest{serial, cmd.action, cmd.id});
  ssize_t n = ::send(mtad->queueChannel.get(), frame.data(), frame.size(),
                     MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(frame.size())) {
    // A partial frame would desynchronise the channel: drop it.
    closeQueueChannel(*mtad, "the queue channel failed");
    return reply(cl, ipc::ErrorReply{"mtad's queue channel is not writable"}, false);
  }
  auto w = std::make_unique<QueueWait>();
  w->sup = this;
  w->serial = serial;
  w->clientId = cl.id;
  w->timer.reset(evtimer_new(base_.get(), &Supervisor::queueTimeoutCb, w.get()));
  timeval tv = toTimeval(kQueueTimeout);
  if (w->timer) evtimer_add(w->timer.get(), &tv);
  queueWaits_[serial] = std::move(w);
}

void Supervisor::endQueueWait(uint32_t serial, const ipc::Message& m) {
  auto it = queueWaits_.find(serial);
  if (it == queueWaits_.end()) return;  // timed out already
  uint64_t clientId = it->second->clientId;
  queueWaits_.erase(it);
  auto cl = clients_.find(clientId);
  if (cl != clients_.end() && !cl->second->closing) reply(*cl->second, m, false);
}

void Supervisor::queueTimeoutCb(evutil_socket_t, short, void* arg) {
  auto* w = static_cast<QueueWait*>(arg);
  YLOG_WARN("queue command: no answer from mtad in time serial=%u", w->serial);
  w->sup->endQueueWait(w->serial,
                       ipc::ErrorReply{"mtad did not answer within " +
                                       std::to_string(kQueueTimeout.count() / 1000) +
                                       " s; the action may still complete"});
}

void Supervisor::closeQueueChannel(Child& c, const char* why) {
  if (!c.queueChannel) return;
  c.queueEv.reset();
  c.queueChannel.reset();
  std::vector<uint32_t> serials;
  for (auto& [serial, w] : queueWaits_) serials.push_back(serial);
  for (uint32_t serial : serials) endQueueWait(serial, ipc::ErrorReply{why});
}

void Supervisor::queueChannelCb(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Child*>(arg);
  c->sup->onQueueReadable(*c);
}

void Supervisor::onQueueReadable(Child& c) {
  char buf[16384];
  ssize_t n = ::recv(c.queueChannel.get(), buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    closeQueueChannel(c, "mtad closed its queue channel before answering");
    return;
  }
  c.queueReader.feed(std::string_view(buf, static_cast<size_t>(n)));
  for (;;) {
    auto m = c.queueReader.next();
    if (!m) {
      YLOG_WARN("protocol error on the queue channel; closing it pid=%d error=\"%s\"",
                int(c.pid), m.error().message.c_str());
      closeQueueChannel(c, "protocol error on mtad's queue channel");
      return;
    }
    if (!*m) return;
    auto* r = std::get_if<ipc::QueueResult>(&**m);
    if (!r) {
      YLOG_WARN("unexpected message on the queue channel; closing it type=%s",
                ipc::typeName(static_cast<uint16_t>(ipc::typeOf(**m))));
      closeQueueChannel(c, "protocol error on mtad's queue channel");
      return;
    }
    if (r->ok)
      endQueueWait(r->serial, ipc::QueueReply{std::move(r->text), std::move(r->messages)});
    else
      endQueueWait(r->serial, ipc::ErrorReply{std::move(r->text)});
  }
}

// --------------------------------------------------------------- status --

void Supervisor::startStatusRound(uint64_t clientId) {
  statusWaiters_.push_back(clientId);
  if (statusActive_) return;  // joins the round in flight
  statusActive_ = true;
  ++statusSerial_;
  std::string frame = ipc::encode(ipc::StatusRequest{statusSerial_});
  for (auto& c : children_) {
    c->asked = c->answered = false;
    c->sessions = 0;
    if (c->state != ipc::DaemonState::Running || !c->channel) continue;
    ssize_t n = ::send(c->channel.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(frame.size())) {
      c->asked = true;
    } else {
      // A partial frame would desynchronise the channel: drop it.
      YLOG_WARN("status channel not writable; closing it name=%s", c->name.c_str());
      closeChannel(*c);
    }
  }
  timeval tv = toTimeval(kStatusTimeout);
  evtimer_add(statusTimer_.get(), &tv);
  finishStatusRound();
}

void Supervisor::statusTimeoutCb(evutil_socket_t, short, void* arg) {
  auto* sup = static_cast<Supervisor*>(arg);
  for (auto& c : sup->children_) c->asked = false;  // late answers are ignored
  sup->finishStatusRound();
}

void Supervisor::finishStatusRound() {
  if (!statusActive_) return;
  for (auto& c : children_)
    if (c->asked && !c->answered) return;
  statusActive_ = false;
  evtimer_del(statusTimer_.get());
  ipc::StatusReply r = buildStatus();
  std::vector<uint64_t> waiters;
  waiters.swap(statusWaiters_);
  for (uint64_t id : waiters) {
    auto it = clients_.find(id);
    if (it != clients_.end()) reply(*it->second, r, false);
  }
}

ipc::StatusReply Supervisor::buildStatus() const {
  ipc::StatusReply r;
  auto now = Clock::now();
  r.masterPid = static_cast<uint32_t>(::getpid());
  r.masterUptimeSeconds =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(now - started_).count());
  r.version = YUBIN_VERSION;
  for (const auto& c : children_) {
    ipc::DaemonInfo d;
    d.name = c->name;
    d.state = c->state;
    d.restarts = c->restarts;
    if (c->state == ipc::DaemonState::Running || c->state == ipc::DaemonState::Stopping) {
      d.pid = static_cast<uint32_t>(c->pid);
      d.uptimeSeconds = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::seconds>(now - c->started).count());
    }
    d.responding = c->answered;
    d.sessions = c->answered ? c->sessions : 0;
    r.daemons.push_back(std::move(d));
  }
  return r;
}

// --------------------------------------------------------- reload, stop --

Status Supervisor::reload() {
  if (stopping_) return Error{"yubin-master is stopping"};
  auto fresh = config::Config::load(opts_.configPath);
  if (!fresh) {
    YLOG_ERROR("reload refused, keeping the running config error=\"%s\"",
               fresh.error().message.c_str());
    return fresh.error();
  }
  config::Config old = std::move(cfg_);
  cfg_ = std::move(*fresh);

  // New sections: bind first; if that fails, the reload is refused whole.
  std::vector<Child*> added;
  for (std::string_view section : config::daemonSections()) {
    if (!cfg_.hasSection(section)) continue;
    bool known = false;
    for (auto& c : children_)
      if (c->name == section && !c->removed) known = true;
    if (known) continue;
    Child* c = nullptr;
    if (auto s = addDaemon(std::string(section), c); !s) {
      for (Child* a : added) std::erase_if(children_, [&](auto& p) { return p.get() == a; });
      std::erase_if(children_, [&](auto& p) { return p.get() == c; });
      cfg_ = std::move(old);
      YLOG_ERROR("reload refused, keeping the running config error=\"%s\"",
                 s.error().message.c_str());
      return s.error();
    }
    if (c) added.push_back(c);
  }

  applyLogging();
  refreshPolicy();
  if (cfg_.str("master", "control_socket") != controlPath_)
    YLOG_WARN("control_socket changed; it takes effect when yubin-master restarts");
  for (auto& c : children_) {
    if (c->removed) continue;
    if (!cfg_.hasSection(c->name)) {
      c->removed = true;
      evtimer_del(c->restartTimer.get());
      if (c->state == ipc::DaemonState::Running) {
        YLOG_INFO("section removed; stopping daemon name=%s pid=%d", c->name.c_str(), int(c->pid));
        ::kill(c->pid, SIGTERM);
        c->state = ipc::DaemonState::Stopping;
      } else {
        c->state = ipc::DaemonState::Stopped;
      }
      continue;
    }
    c->backoff.setCap(cfg_.duration("master", "restart_delay_max"));
    if (listenSignature(cfg_, c->name) != c->listenSig)
      YLOG_WARN("listening sockets changed; they take effect when yubin-master restarts name=%s",
                c->name.c_str());
    if (c->state == ipc::DaemonState::Running && c->pid > 0) ::kill(c->pid, SIGHUP);
  }
  std::erase_if(children_,
                [](auto& p) { return p->removed && p->state == ipc::DaemonState::Stopped; });
  for (Child* c : added) spawn(*c);
  YLOG_INFO("reloaded config=%s", opts_.configPath.c_str());
  return {};
}

void Supervisor::beginStop(const char* why) {
  if (stopping_) return;
  stopping_ = true;
  YLOG_INFO("stopping reason=\"%s\"", why);
  control_.reset();  // no new control connections
  for (auto& c : children_) {
    evtimer_del(c->restartTimer.get());
    if (c->state == ipc::DaemonState::Running && c->pid > 0) {
      ::kill(c->pid, SIGTERM);
      c->state = ipc::DaemonState::Stopping;
    } else if (c->state != ipc::DaemonState::Stopping) {
      c->state = ipc::DaemonState::Stopped;
    }
  }
  auto timeout = cfg_.duration("master", "stop_timeout");
  timeval tv = toTimeval(std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  evtimer_add(killTimer_.get(), &tv);
  checkStopped();
}

void Supervisor::killTimeoutCb(evutil_socket_t, short, void* arg) {
  auto* sup = static_cast<Supervisor*>(arg);
  if (sup->finishing_) {
    event_base_loopexit(sup->base_.get(), nullptr);  // a client does not read
    return;
  }
  for (auto& c : sup->children_) {
    if (c->state == ipc::DaemonState::Stopping && c->pid > 0) {
      YLOG_WARN("daemon did not stop in time; killing it name=%s pid=%d", c->name.c_str(),
                int(c->pid));
      ::kill(c->pid, SIGKILL);
    }
  }
}

void Supervisor::checkStopped() {
  for (auto& c : children_)
    if (c->state == ipc::DaemonState::Stopping) return;
  finish();
}

void Supervisor::finish() {
  if (finishing_) return;
  evtimer_del(killTimer_.get());
  struct stat st;
  if (::stat(controlPath_.c_str(), &st) == 0 && st.st_dev == controlDev_ &&
      st.st_ino == controlIno_)
    ::unlink(controlPath_.c_str());
  // Remove the pid file yubinctl wrote, if it names us.
  const std::string& pidFile = cfg_.str("master", "pid_file");
  if (!pidFile.empty()) {
    auto text = readFile(pidFile, 64);
    if (text && trim(*text) == std::to_string(::getpid())) ::unlink(pidFile.c_str());
  }
  YLOG_INFO("stopped");
  // The loop ends once the replies still queued (the Ok to a Stop
  // command) are sent, or after kFlushTimeout.
  finishing_ = true;
  timeval tv = toTimeval(kFlushTimeout);
  evtimer_add(killTimer_.get(), &tv);
  maybeExit();
}

void Supervisor::maybeExit() {
  if (!finishing_) return;
  for (auto& [id, cl] : clients_)
    if (evbuffer_get_length(bufferevent_get_output(cl->bev.get())) > 0) return;
  event_base_loopexit(base_.get(), nullptr);
}

void Supervisor::signalCb(evutil_socket_t sig, short, void* arg) {
  auto* sup = static_cast<Supervisor*>(arg);
  switch (sig) {
    case SIGCHLD:
      sup->reapChildren();
      break;
    case SIGHUP:
      YLOG_INFO("SIGHUP: reloading");
      (void)sup->reload();
      break;
    case SIGTERM:
      sup->beginStop("SIGTERM");
      break;
    case SIGINT:
      sup->beginStop("SIGINT");
      break;
    default:
      break;
  }
}

}  // namespace

int runSupervisor(const Options& opts, config::Config cfg) {
  ::signal(SIGPIPE, SIG_IGN);
  Supervisor sup(opts, std::move(cfg));
  return sup.run();
}

}  // namespace yubin::master
