// The daemon skeleton: every daemon's main() is a Spec and one call to
// service::run(). The skeleton owns, in this order: options (-c PATH, -f
// foreground, --help, --version), loading the config, logging, taking the
// listening sockets (from yubin-master or systemd, else binding them itself),
// dropping privileges to the section's user/group (and chroot) -- before any
// network input is read --, signals (SIGHUP reload, SIGTERM graceful stop,
// SIGINT), answering the master's status requests, and the event loop.
// Trust: starts as root (or the invoking user in dev mode); everything the
// Daemon does runs after the privilege drop.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "config/config.hpp"

namespace yubin::service {

class Context;

// Implemented by each daemon.
class Daemon {
 public:
  virtual ~Daemon() = default;
  // Listeners are ready and privileges dropped; set up events on ctx.base().
  virtual Status start(Context& ctx) = 0;
  // SIGHUP: the config was re-read and validated; apply what can change.
  virtual void reload(const config::Config& cfg) { (void)cfg; }
  // SIGTERM: stop accepting, let sessions finish; call ctx.exit() when idle.
  // The skeleton kills the loop after [master] stop_timeout anyway.
  virtual void stop(Context& ctx) = 0;
  // Open sessions, for `yubinctl status`.
  virtual size_t sessions() const = 0;
};

struct Spec {
  std::string_view name;     // program name for logs and --help ("mtad")
  std::string_view section;  // its config section ("mtad")
  std::string_view summary;  // one line for --help
  std::function<std::unique_ptr<Daemon>()> make;
};

class Context {
 public:
  virtual ~Context() = default;
  virtual event_base* base() = 0;
  virtual const config::Config& config() const = 0;
  // All listening sockets that came from the config key `key`.
  virtual std::vector<UniqueFd> takeListeners(std::string_view key) = 0;
  // Ends the event loop; run() then returns 0.
  virtual void exit() = 0;
};

// Runs the daemon; returns the process exit status.
int run(int argc, char** argv, const Spec& spec);

}  // namespace yubin::service
