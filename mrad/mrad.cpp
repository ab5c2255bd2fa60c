// The mrad daemon object (login process); see mrad.hpp.
#include "mrad/mrad.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "base/log.hpp"
#include "base/strings.hpp"
#include "mrad/login_connection.hpp"
#include "mrad/mail_process.hpp"

namespace yubin::mrad {
namespace {

// EX_SOFTWARE: the mail process died; yubin-master restarts mrad.
constexpr int kExitMailProcessDied = 70;

std::string describeStatus(int st) {
  if (WIFEXITED(st)) return "exit status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
  return "status " + std::to_string(st);
}

}  // namespace

size_t mailProcessIndex(std::string_view canonicalUser, size_t processes) {
  if (processes <= 1) return 0;
  return static_cast<size_t>(fnv1a64(canonicalUser) % processes);
}

size_t mailProcessCount(uint64_t configured) {
  if (configured > 0) return static_cast<size_t>(configured);
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<size_t>(n) : 1;
}

LoginSettings LoginSettings::fromConfig(const config::Config& cfg) {
  LoginSettings s;
  s.hostname = cfg.hostname();
  s.loopbackPlaintext = cfg.boolean("mrad", "loopback_plaintext");
  s.maxConnections = cfg.integer("mrad", "max_connections");
  s.maxConnectionsPerIp = cfg.integer("mrad", "max_connections_per_ip");
  s.idleTimeout = cfg.duration("mrad", "pop3_idle_timeout");
  s.imapLoginTimeout = std::min<std::chrono::milliseconds>(
      s.idleTimeout, cfg.duration("mrad", "imap_idle_timeout"));
  return s;
}

Mrad::Mrad(bool foreground, int* failure) : foreground_(foreground), failure_(failure) {}

Mrad::~Mrad() {
  connections_.clear();
  listeners_.clear();
  checker_.reset();
  // Each mail process sees its channel close and exits; all are told
  // before any is waited for.
  for (auto& p : mailProcs_) {
    p->channelEvent.reset();
    p->channel.reset();
  }
  for (int i = 0; i < 500; ++i) {
    bool waiting = false;
    for (auto& p : mailProcs_) {
      if (p->pid <= 0) continue;
      pid_t r = ::waitpid(p->pid, nullptr, WNOHANG);
      if (r == p->pid || (r < 0 && errno == ECHILD))
        p->pid = -1;
      else
        waiting = true;
    }
    if (!waiting) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Still root: fork and exec mrad itself as each mail process, with its
// channel on descriptor 3 and nothing else open but stdin/out/err (not the
// other processes' channels: close_range). exec gives it a fresh address
// space: nothing of ours (the TLS key loaded by the skeleton, listeners,
// the master channel) survives into it. The count is read here only, so a
// reload does not change it.
Status Mrad::prepare(service::Context& ctx) {
  const std::string& configPath = ctx.config().file();
  const size_t count = mailProcessCount(ctx.config().integer("mrad", "mail_processes"));
  for (size_t i = 0; i < count; ++i) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      return errnoError("socketpair");
    UniqueFd ours(sv[0]), theirs(sv[1]);
    pid_t pid = ::fork();
    if (pid < 0) return errnoError("fork");
    if (pid == 0) {
      int fd = theirs.get();
      if (fd == kChannelFd)
        ::fcntl(fd, F_SETFD, 0);
      else if (::dup2(fd, kChannelFd) < 0)
        ::_exit(127);
      ::close_range(kChannelFd + 1, ~0U, 0);
      const char* argv[] = {"mrad", kMailProcessFlag, configPath.c_str(),
                            foreground_ ? "-f" : nullptr, nullptr};
      ::execv("/proc/self/exe", const_cast<char* const*>(argv));
      ::_exit(127);
    }
    auto p = std::make_unique<MailProc>();
    p->owner = this;
    p->index = i;
    p->pid = pid;
    p->channel = std::move(ours);
    mailProcs_.push_back(std::move(p));
    YLOG_INFO("mail process started index=%zu pid=%d", i, int(pid));
  }
  return {};
}

int Mrad::channelFor(std::string_view canonicalUser) const {
  return mailProcs_[mailProcessIndex(canonicalUser, mailProcs_.size())]->channel.get();
}

Status Mrad::start(service::Context& ctx) {
  ctx_ = &ctx;
  base_ = ctx.base();
  const config::Config& cfg = ctx.config();
  settings_ = LoginSettings::fromConfig(cfg);
  directory_ = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(cfg));
  if (auto st = directory_->reload(); !st)
    YLOG_WARN("user database: %s (logins fail until it is fixed)", st.error().message.c_str());
  auto checker = sasl::PasswordChecker::create(
      base_, sasl::PasswordChecker::fromDirectory(*directory_),
      {.cacheEntries = static_cast<size_t>(cfg.integer("mrad", "auth_cache_size")),
       .cacheTtl = std::chrono::duration_cast<std::chrono::seconds>(
           cfg.duration("mrad", "auth_cache_ttl"))});
  if (!checker) return checker.error();
  checker_ = std::move(*checker);

  // A mail process never writes to its channel: readable means it closed.
  for (auto& p : mailProcs_) {
    p->channelEvent.reset(
        event_new(base_, p->channel.get(), EV_READ | EV_PERSIST, &Mrad::onChannel, p.get()));
    if (!p->channelEvent || event_add(p->channelEvent.get(), nullptr) != 0)
      return Error{"cannot watch a mail process channel"};
  }
  sigchld_ = std::make_unique<event::Signal>(base_, SIGCHLD, [this] {
    for (auto& p : mailProcs_) {
      int st = 0;
      if (p->pid > 0 && ::waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->pid = -1;
        mailProcessGone(*p, describeStatus(st));
      }
    }
  });

  struct Kind {
    const char* key;
    bool implicitTls;
    Protocol protocol;
  };
  static constexpr Kind kKinds[] = {
      {"pop3_listen", false, Protocol::Pop3},
      {"pop3s_listen", true, Protocol::Pop3},
      {"imap_listen", false, Protocol::Imap},
      {"imaps_listen", true, Protocol::Imap},
  };
  for (const Kind& k : kKinds) {
    auto ls = service::acceptOn(ctx, k.key, [this, k](UniqueFd c, const event::Peer& p) {
      accept(std::move(c), p, k.implicitTls, k.protocol);
    });
    if (!ls) return ls.error();
    if (k.implicitTls && !ls->empty() && !ctx.tls())
      return Error{cfg.where("mrad", k.key) + ": needs [global] tls_cert and tls_key"};
    for (auto& l : *ls) listeners_.push_back(std::move(l));
  }
  if (listeners_.empty())
    return Error{"no [mrad] pop3_listen, pop3s_listen, imap_listen or imaps_listen socket"};
  return {};
}

void Mrad::onChannel(evutil_socket_t fd, short, void* self) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  auto* p = static_cast<MailProc*>(self);
  p->owner->mailProcessGone(*p, n == 0 ? "closed its channel" : "wrote to its channel");
}

void Mrad::mailProcessGone(const MailProc& gone, const std::string& why) {
  if (*failure_ != 0) return;
  YLOG_ERROR("mail process ended index=%zu (%s): closing sessions=%zu, exiting so that mrad is "
             "restarted",
             gone.index, why.c_str(), connections_.size());
  *failure_ = kExitMailProcessDied;
  for (auto& p : mailProcs_)
    if (p->channelEvent) event_del(p->channelEvent.get());
  connections_.clear();
  for (auto& l : listeners_) l->disable();
  if (!ctx_) return;
  exitSoon_ = std::make_unique<event::Timer>(base_, [this] { ctx_->exit(); });
  exitSoon_->arm(std::chrono::milliseconds(0));
}

void Mrad::accept(UniqueFd fd, const event::Peer& peer, bool implicitTls, Protocol protocol) {
  const std::string id = connections_.nextSessionId();
  std::optional<std::string> refusal;
  // POP3: "-ERR [SYS/TEMP] ..."; IMAP: "* BYE [UNAVAILABLE] ..." (RFC 5530).
  const char* prefix = protocol == Protocol::Imap ? "* BYE [UNAVAILABLE] " : "-ERR [SYS/TEMP] ";
  if (stopping_) {
    refusal = std::string(prefix) + "Server shutting down\r\n";
  } else if (connections_.size() >= settings_.maxConnections) {
    refusal = std::string(prefix) + "Too many connections, try again later\r\n";
  } else if (connections_.fromIp(peer.ip) >= settings_.maxConnectionsPerIp) {
    refusal = std::string(prefix) + "Too many connections from your address, try again later\r\n";
  }
  if (refusal)
    YLOG_NOTICE("connection refused session=%s ip=%s reason=\"%s\"", id.c_str(), peer.ip.c_str(),
                refusal->substr(0, refusal->size() - 2).c_str());
  else
    YLOG_DEBUG("connection session=%s ip=%s protocol=%s tls=%s", id.c_str(), peer.ip.c_str(),
               protocol == Protocol::Imap ? "imap" : "pop3", implicitTls ? "yes" : "no");
  LoginConnection* raw = connections_.add(
      std::make_unique<LoginConnection>(*this, settings_, peer, id, implicitTls, protocol),
      peer.ip);
  if (auto st = raw->start(std::move(fd), refusal); !st) {
    YLOG_WARN("cannot start session session=%s error=\"%s\"", id.c_str(),
              st.error().message.c_str());
    closed(raw);
  }
}

void Mrad::closed(LoginConnection* c) {
  if (connections_.remove(c) && stopping_ && connections_.empty() && ctx_) ctx_->exit();
}

void Mrad::reload(const config::Config& cfg) {
  settings_ = LoginSettings::fromConfig(cfg);
  YLOG_INFO("reloaded (the mail processes keep their settings and their count until mrad "
            "restarts)");
}

void Mrad::stop(service::Context& ctx) {
  stopping_ = true;
  for (auto& l : listeners_) l->disable();
  connections_.forEach([](LoginConnection& c) { c.shutdown(); });
  if (connections_.empty()) ctx.exit();
}

}  // namespace yubin::mrad
