// The daemon skeleton: every daemon's main() is a Spec and one call to
// service::run(). The skeleton owns, in this order: options (-c PATH, -f
// foreground, --help, --version), loading the config, logging, taking the
// listening sockets (from yubin-master or systemd, else binding them itself),
// the TLS server context (if the Spec asks for it), Daemon::prepare (still
// root), dropping privileges to the section's user/group (and chroot) --
// before any network input is read --, signals (SIGHUP reload, SIGTERM and
// SIGINT graceful stop), answering the master's status requests on the
// inherited "yubin-master" channel, and the event loop.
// Trust: starts as root (or the invoking user in dev mode); everything the
// Daemon does after prepare() runs after the privilege drop.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "config/config.hpp"
#include "event/event.hpp"
#include "tls/tls.hpp"

namespace yubin::service {

// Exit statuses of run() (sysexits.h values where one fits).
inline constexpr int kExitOk = 0;
inline constexpr int kExitStartFailed = 1;  // Daemon::prepare or start failed
inline constexpr int kExitUsage = 64;       // EX_USAGE: bad command line
inline constexpr int kExitOsError = 71;     // EX_OSERR: bind, privilege drop, event loop
inline constexpr int kExitConfig = 78;      // EX_CONFIG: config or TLS files unusable

class Context;

// Implemented by each daemon.
class Daemon {
 public:
  virtual ~Daemon() = default;
  // Still root (unless dev mode), before the chroot and the privilege drop,
  // with no network input read yet: open what the daemon's user may not
  // (a root-only file, a folder outside the chroot). Most daemons need
  // nothing here.
  virtual Status prepare(Context& ctx) {
    (void)ctx;
    return {};
  }
  // Listeners are ready and privileges dropped; set up events on ctx.base().
  virtual Status start(Context& ctx) = 0;
  // SIGHUP: the config was re-read and validated; apply what can change.
  // ctx.config() already returns the new one; the TLS context, if any, was
  // reloaded (or kept, when the new files fail).
  virtual void reload(const config::Config& cfg) { (void)cfg; }
  // SIGTERM, SIGINT or the master went away: stop accepting, let sessions
  // finish; call ctx.exit() when idle (at once if there are no sessions).
  // The skeleton ends the loop after [master] stop_timeout anyway.
  virtual void stop(Context& ctx) = 0;
  // Open sessions, for `yubinctl status`.
  virtual size_t sessions() const = 0;
};

struct Spec {
  std::string_view name;     // program name for logs and --help ("mtad")
  std::string_view section;  // its config section ("mtad")
  std::string_view summary;  // one line for --help
  std::function<std::unique_ptr<Daemon>()> make;
  // Load [global] tls_cert / tls_key before the privilege drop (so the key
  // may be root-only) and reload them on SIGHUP. Daemons without TLS leave
  // this off and never hold the key.
  bool tls = false;
};

class Context {
 public:
  virtual ~Context() = default;
  virtual event_base* base() = 0;
  // The current config; after a reload, the new one (references taken
  // earlier stay valid only until the next reload).
  virtual const config::Config& config() const = 0;
  // All listening sockets that came from the config key `key`; each socket
  // is handed out once.
  virtual std::vector<UniqueFd> takeListeners(std::string_view key) = 0;
  // The server TLS context: nullptr unless Spec::tls is set and [global]
  // tls_cert is not empty. Make each session's SSL with tls()->newSsl().
  virtual tls::ServerContext* tls() = 0;
  // True once stop() was called.
  virtual bool stopping() const = 0;
  // Ends the event loop; run() then returns 0.
  virtual void exit() = 0;
};

// Wraps every socket of config key `key` in an event::Listener that calls fn
// with each accepted connection. Keep the listeners; destroying one closes
// its socket. Disable them in Daemon::stop.
Result<std::vector<std::unique_ptr<event::Listener>>> acceptOn(Context& ctx, std::string_view key,
                                                               const event::Listener::AcceptFn& fn);

// Runs the daemon; returns the process exit status (kExit*).
int run(int argc, char** argv, const Spec& spec);

// --- exposed for tests ---------------------------------------------------

struct Options {
  enum class Action { Run, Help, Version };
  Action action = Action::Run;
  std::string configPath;  // YUBIN_SYSCONFDIR "/yubin.conf" unless -c
  bool foreground = false;
};
// Parses argv[1..]; the error message is one line for stderr.
Result<Options> parseOptions(int argc, const char* const* argv);
// The --help text: every option, one per line.
std::string usage(const Spec& spec);
// The --version line: "mtad (yubin) 0.1.0\n".
std::string versionLine(const Spec& spec);

}  // namespace yubin::service
