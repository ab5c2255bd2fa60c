// The daemon skeleton; see service.hpp. run() is the one entry function: it
// states, in order, everything a daemon does before its loop.
#include "service/service.hpp"

#include <event2/buffer.h>
#include <pwd.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "base/log.hpp"
#include "ipc/ipc.hpp"
#include "service/privdrop.hpp"
#include "sys/listen.hpp"
#include "yubin_build_config.h"

namespace yubin::service {
namespace {

std::string userName(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return pw.pw_name;
  return "uid " + std::to_string(uid);
}

class Runner final : public Context {
 public:
  Runner(const Spec& spec, Options opts, config::Config cfg)
      : spec_(spec), opts_(std::move(opts)), cfg_(std::move(cfg)) {}
  int serve();

  event_base* base() override { return base_.get(); }
  const config::Config& config() const override { return cfg_; }
  std::vector<UniqueFd> takeListeners(std::string_view key) override;
  tls::ServerContext* tls() override { return tls_.get(); }
  bool stopping() const override { return stopping_; }
  void exit() override;

 private:
  void setupLogging();
  int startupError(int code, const std::string& message);
  Status loadTls();
  void onReload();
  void beginStop(const char* why, bool fromSignal);
  void openMasterChannel(UniqueFd fd);
  void closeMasterChannel();
  static void masterReadCb(bufferevent* bev, void* self);
  static void masterEventCb(bufferevent* bev, short what, void* self);

  // Declared first so it is destroyed last: every event below lives in it.
  event::EventBase base_;
  const Spec& spec_;
  Options opts_;
  config::Config cfg_;
  std::vector<sys::Listener> listeners_;
  std::unique_ptr<tls::ServerContext> tls_;
  std::unique_ptr<Daemon> daemon_;
  std::vector<std::unique_ptr<event::Signal>> signals_;
  std::optional<event::Timer> forceTimer_;
  event::Bufferevent master_;
  ipc::FrameReader masterReader_{64 * 1024};
  std::string chroot_;
  bool stopping_ = false;
  bool exitRequested_ = false;
};

void Runner::setupLogging() {
  LogTarget target = opts_.foreground || cfg_.str("global", "log") == "stderr" ? LogTarget::Stderr
                                                                               : LogTarget::Syslog;
  logInit(std::string(spec_.name), target, logLevelFromName(cfg_.str("global", "log_level")));
}

// Before the loop runs, a failure is also told on stderr, so whoever started
// the daemon by hand sees it even when the log goes to syslog.
int Runner::startupError(int code, const std::string& message) {
  YLOG_ERROR("%s", message.c_str());
  if (!opts_.foreground && cfg_.str("global", "log") != "stderr")
    std::fprintf(stderr, "%.*s: %s\n", int(spec_.name.size()), spec_.name.data(), message.c_str());
  return code;
}

Status Runner::loadTls() {
  // Copies: str() may hand out one shared buffer for defaults.
  std::string cert = cfg_.str("global", "tls_cert");
  std::string key = cfg_.str("global", "tls_key");
  if (!spec_.tls || cert.empty()) return {};
  auto ctx = tls::ServerContext::load(cert, key);
  if (!ctx) return Error{cfg_.where("global", "tls_cert") + ": " + ctx.error().message};
  tls_ = std::move(*ctx);
  YLOG_INFO("tls certificate loaded cert=%s", cert.c_str());
  return {};
}

int Runner::serve() {
  setupLogging();

  auto base = event::newEventBase();
  if (!base) return startupError(kExitOsError, base.error().message);
  base_ = std::move(*base);

  // Sockets: from the master or systemd; alone, bind them ourselves.
  UniqueFd masterFd;
  std::vector<sys::Listener> inherited = sys::takeInheritedSockets();
  bool passed = !inherited.empty();
  for (auto& l : inherited) {
    if (l.name == sys::kMasterChannelName)
      masterFd = std::move(l.fd);
    else
      listeners_.push_back(std::move(l));
  }
  if (!passed) {
    auto bound = sys::bindForSection(cfg_, spec_.section);
    if (!bound) return startupError(kExitOsError, bound.error().message);
    listeners_ = std::move(*bound);
    YLOG_INFO("no sockets passed: bound %zu myself", listeners_.size());
  }

  if (auto st = loadTls(); !st) return startupError(kExitConfig, st.error().message);

  auto plan = planDrop(cfg_, spec_.section, ::geteuid());
  if (!plan) return startupError(kExitConfig, plan.error().message);

  daemon_ = spec_.make();
  if (!daemon_) fatal("Spec::make returned no daemon");
  if (auto st = daemon_->prepare(*this); !st)
    return startupError(kExitStartFailed, "prepare failed: " + st.error().message);

  // The privilege drop: nothing from the network has been read yet.
  if (plan->devMode) {
    YLOG_NOTICE("not root: running as %s (dev mode)", userName(::geteuid()).c_str());
    if (!plan->chroot.empty()) YLOG_NOTICE("not root: chroot=%s ignored", plan->chroot.c_str());
  } else {
    if (auto st = dropPrivileges(*plan); !st) return startupError(kExitOsError, st.error().message);
    chroot_ = plan->chroot;
    YLOG_INFO("privileges dropped to %s", describe(*plan).c_str());
  }

  ::signal(SIGPIPE, SIG_IGN);
  signals_.push_back(std::make_unique<event::Signal>(base_.get(), SIGHUP, [this] { onReload(); }));
  signals_.push_back(std::make_unique<event::Signal>(base_.get(), SIGTERM,
                                                     [this] { beginStop("SIGTERM", true); }));
  signals_.push_back(
      std::make_unique<event::Signal>(base_.get(), SIGINT, [this] { beginStop("SIGINT", true); }));
  if (masterFd) openMasterChannel(std::move(masterFd));

  if (auto st = daemon_->start(*this); !st)
    return startupError(kExitStartFailed, "start failed: " + st.error().message);
  for (const auto& l : listeners_)
    YLOG_WARN("socket not used by %.*s, closing it name=%s socket=%s", int(spec_.name.size()),
              spec_.name.data(), l.name.c_str(), event::socketName(l.fd.get()).c_str());
  listeners_.clear();

  YLOG_INFO("started pid=%d master=%s", int(::getpid()), master_ ? "yes" : "no");
  if (!exitRequested_) event_base_dispatch(base_.get());

  // Sessions and their events go before the loop they live in.
  daemon_.reset();
  master_.reset();
  YLOG_INFO("stopped");
  return kExitOk;
}

std::vector<UniqueFd> Runner::takeListeners(std::string_view key) {
  std::vector<UniqueFd> out;
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    if (it->name == key) {
      out.push_back(std::move(it->fd));
      it = listeners_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

void Runner::exit() {
  exitRequested_ = true;
  event_base_loopbreak(base_.get());
}

void Runner::onReload() {
  if (!chroot_.empty()) {
    YLOG_WARN(
        "SIGHUP: the config cannot be re-read inside the chroot; restart to apply "
        "changes chroot=%s",
        chroot_.c_str());
    return;
  }
  auto cfg = config::Config::load(opts_.configPath);
  if (cfg && !cfg->hasSection(spec_.section))
    cfg = Error{opts_.configPath + ": no [" + std::string(spec_.section) + "] section"};
  if (!cfg) {
    YLOG_ERROR("reload refused, keeping the running config error=\"%s\"",
               cfg.error().message.c_str());
    return;
  }
  cfg_ = std::move(*cfg);
  setupLogging();
  if (spec_.tls) {
    std::string cert = cfg_.str("global", "tls_cert");
    if (cert.empty()) {
      if (tls_)
        YLOG_WARN("tls_cert removed: TLS stays on until %.*s restarts", int(spec_.name.size()),
                  spec_.name.data());
    } else if (tls_) {
      (void)tls_->reload(cert, cfg_.str("global", "tls_key"));  // logs a failure itself
    } else if (auto st = loadTls(); !st) {
      YLOG_ERROR("tls not enabled error=\"%s\"", st.error().message.c_str());
    }
  }
  daemon_->reload(cfg_);
  YLOG_INFO("reloaded config=%s", opts_.configPath.c_str());
}

void Runner::beginStop(const char* why, bool fromSignal) {
  if (stopping_) {
    if (fromSignal) {
      YLOG_WARN("%s while stopping: exiting now sessions=%zu", why, daemon_->sessions());
      exit();
    }
    return;
  }
  stopping_ = true;
  YLOG_INFO("stopping reason=\"%s\" sessions=%zu", why, daemon_->sessions());
  auto timeout = cfg_.duration("master", "stop_timeout");
  forceTimer_.emplace(base_.get(), [this] {
    YLOG_WARN("stop_timeout reached: closing sessions=%zu", daemon_->sessions());
    exit();
  });
  forceTimer_->arm(timeout);
  daemon_->stop(*this);
}

// --- the master channel: status requests in, answers out; EOF = master gone.

void Runner::openMasterChannel(UniqueFd fd) {
  auto bev = event::newSocketBufferevent(base_.get(), std::move(fd));
  if (!bev) {
    YLOG_ERROR("master channel unusable error=\"%s\"", bev.error().message.c_str());
    return;
  }
  master_ = std::move(*bev);
  bufferevent_setcb(master_.get(), &Runner::masterReadCb, nullptr, &Runner::masterEventCb, this);
  bufferevent_enable(master_.get(), EV_READ);
}

void Runner::closeMasterChannel() {
  master_.reset();
  beginStop("master channel closed", false);
}

void Runner::masterReadCb(bufferevent* bev, void* self) {
  auto* r = static_cast<Runner*>(self);
  evbuffer* in = bufferevent_get_input(bev);
  while (size_t n = evbuffer_get_length(in)) {
    char buf[4096];
    int got = evbuffer_remove(in, buf, std::min(n, sizeof buf));
    if (got <= 0) break;
    r->masterReader_.feed(std::string_view(buf, static_cast<size_t>(got)));
  }
  for (;;) {
    auto m = r->masterReader_.next();
    if (!m) {
      YLOG_ERROR("master channel: %s", m.error().message.c_str());
      r->closeMasterChannel();
      return;
    }
    if (!*m) return;
    if (const auto* req = std::get_if<ipc::StatusRequest>(&**m)) {
      ipc::DaemonStatus st{req->serial, static_cast<uint32_t>(::getpid()),
                           static_cast<uint64_t>(r->daemon_->sessions())};
      std::string frame = ipc::encode(st);
      bufferevent_write(bev, frame.data(), frame.size());
    } else {
      YLOG_ERROR("master channel: unexpected message %s",
                 ipc::typeName(static_cast<uint16_t>(ipc::typeOf(**m))));
      r->closeMasterChannel();
      return;
    }
  }
}

void Runner::masterEventCb(bufferevent*, short what, void* self) {
  auto* r = static_cast<Runner*>(self);
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    YLOG_NOTICE("master went away: stopping");
    r->closeMasterChannel();
  }
}

}  // namespace

Result<Options> parseOptions(int argc, const char* const* argv) {
  Options o;
  o.configPath = YUBIN_SYSCONFDIR "/yubin.conf";
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      o.action = Options::Action::Help;
    } else if (a == "--version") {
      o.action = Options::Action::Version;
    } else if (a == "-f") {
      o.foreground = true;
    } else if (a == "-c") {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') return Error{"option -c needs a file"};
      o.configPath = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      return Error{"unknown option '" + std::string(a) + "'"};
    } else {
      return Error{"unexpected argument '" + std::string(a) + "'"};
    }
  }
  return o;
}

std::string usage(const Spec& spec) {
  const std::string n(spec.name);
  std::string out;
  for (const std::string& line : {
           "usage: " + n + " [-f] [-c file]",
           "       " + n + " --help | --version",
           std::string(spec.summary),
           std::string("  -c file    config file (default " YUBIN_SYSCONFDIR "/yubin.conf)"),
           std::string("  -f         log to stderr, whatever [global] log says"),
           std::string("  --help     print this text"),
           std::string("  --version  print the version"),
           n + " reads the [" + std::string(spec.section) + "] section of the config.",
           std::string("yubin-master starts it with its sockets; alone, it binds them itself."),
       })
    out += line + "\n";
  return out;
}

std::string versionLine(const Spec& spec) {
  return std::string(spec.name) + " (yubin) " YUBIN_VERSION "\n";
}

Result<std::vector<std::unique_ptr<event::Listener>>> acceptOn(
    Context& ctx, std::string_view key, const event::Listener::AcceptFn& fn) {
  std::vector<std::unique_ptr<event::Listener>> out;
  for (UniqueFd& fd : ctx.takeListeners(key)) {
    auto l = event::Listener::create(ctx.base(), std::move(fd), fn);
    if (!l) return l.error();
    YLOG_INFO("listening key=%.*s socket=%s", int(key.size()), key.data(), (*l)->name().c_str());
    out.push_back(std::move(*l));
  }
  return out;
}

int run(int argc, char** argv, const Spec& spec) {
  std::string name(spec.name);
  auto opts = parseOptions(argc, argv);
  if (!opts) {
    std::fprintf(stderr, "%s: %s\n%s", name.c_str(), opts.error().message.c_str(),
                 usage(spec).c_str());
    return kExitUsage;
  }
  if (opts->action == Options::Action::Help) {
    std::fputs(usage(spec).c_str(), stdout);
    return kExitOk;
  }
  if (opts->action == Options::Action::Version) {
    std::fputs(versionLine(spec).c_str(), stdout);
    return kExitOk;
  }
  // Until the config says otherwise, log to stderr.
  logInit(name, LogTarget::Stderr);
  char real[PATH_MAX];
  if (::realpath(opts->configPath.c_str(), real)) opts->configPath = real;
  auto cfg = config::Config::load(opts->configPath);
  if (!cfg) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), cfg.error().message.c_str());
    return kExitConfig;
  }
  if (!cfg->hasSection(spec.section)) {
    std::fprintf(stderr, "%s: %s: no [%.*s] section: %s is not enabled\n", name.c_str(),
                 opts->configPath.c_str(), int(spec.section.size()), spec.section.data(),
                 name.c_str());
    return kExitConfig;
  }
  Runner runner(spec, std::move(*opts), std::move(*cfg));
  return runner.serve();
}

}  // namespace yubin::service
