// yubin-master's supervisor: binds every daemon's sockets, starts the daemons
// with their sockets and a status channel, restarts them with backoff,
// serves the control socket (status, reload, stop) and stops everything on
// SIGTERM. One libevent loop, one process, no threads.
// Trust: runs as root (or the invoking user in dev mode); reads no network
// input. The control socket is local; who may use it is decided here from
// SO_PEERCRED (policy.hpp), never from what the client says.
#pragma once

#include <string>

#include "config/config.hpp"

namespace yubin::master {

struct Options {
  std::string configPath;  // absolute; the daemons get the same path
  bool foreground = false;  // -f: log to stderr, pass -f to the daemons
};

// Runs until stopped (SIGTERM, SIGINT or a Stop command); returns the exit
// status: 0 after a clean stop, 1 when starting failed.
int runSupervisor(const Options& opts, config::Config cfg);

}  // namespace yubin::master
