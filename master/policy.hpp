// The master's small decisions, kept pure so they are tested alone: who may
// use the control socket, how long to wait before restarting a daemon that
// died, and how to say why it died.
// Trust: mayControl is the only authorisation of the control socket; its
// input comes from the kernel (SO_PEERCRED, SO_PEERGROUPS), never the client.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace yubin::master {

// What the kernel says about a control-socket peer.
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

struct AccessPolicy {
  bool devMode = false;  // master not started as root
  uid_t ownUid = 0;      // the master's uid
  std::optional<gid_t> adminGid;  // [master] admin_group, when it exists
};

// Root always; a member of the admin group (primary or supplementary); in
// dev mode also the master's own user.
bool mayControl(const PeerCred& peer, const AccessPolicy& policy);

// Restart delays: 1 s, doubling up to the cap; after a run of at least
// stableAfter the next delay is 1 s again.
class Backoff {
 public:
  explicit Backoff(std::chrono::seconds cap) : cap_(cap) {}
  void setCap(std::chrono::seconds cap) { cap_ = cap; }
  // The delay before the next start of a process that ran for `uptime`.
  std::chrono::seconds next(std::chrono::steady_clock::duration uptime);
  std::chrono::seconds stableAfter() const;

 private:
  std::chrono::seconds cap_;
  std::chrono::seconds delay_{1};
};

// "exit code 3", "signal SIGKILL", "signal SIGSEGV (core dumped)".
std::string describeExit(int waitStatus);

}  // namespace yubin::master
