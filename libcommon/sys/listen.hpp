// Listening sockets: binding TCP (IPv4, IPv6) and Unix sockets, and handing
// them from a parent to a daemon with the systemd socket-activation protocol
// (fds from 3 on, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES). yubin-master and
// systemd hand sockets over the same way, so a daemon has one code path.
// Each socket is named after the config key it came from ("listen",
// "lmtp_socket"); the master's control channel is named "yubin-master".
// Trust: runs as root in the master (binding ports below 1024).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "config/config.hpp"

namespace yubin::sys {

struct Listener {
  std::string name;  // config key, or "yubin-master" for the control channel
  UniqueFd fd;
};

inline constexpr const char* kMasterChannelName = "yubin-master";

// Non-blocking, close-on-exec, SO_REUSEADDR; IPV6_V6ONLY for IPv6 addresses.
Result<UniqueFd> bindTcp(const config::Endpoint& ep, int backlog = 1024);
// Removes a stale socket file first; chmod to mode; chown to group unless
// group == (gid_t)-1.
Result<UniqueFd> bindUnix(const std::string& path, unsigned mode, gid_t group, int backlog = 1024);
// Binds every Listen and UnixListen key of a daemon's config section.
Result<std::vector<Listener>> bindForSection(const config::Config& cfg, std::string_view section);

// In a daemon: takes the sockets passed by the parent (checks LISTEN_PID,
// unsets the variables, sets close-on-exec). Empty when none were passed.
std::vector<Listener> takeInheritedSockets();
// In a child after fork, before exec: moves fds to 3.. in order and sets
// LISTEN_FDS, LISTEN_PID (getpid()) and LISTEN_FDNAMES.
Status passSockets(const std::vector<std::pair<std::string, int>>& fds);

}  // namespace yubin::sys
