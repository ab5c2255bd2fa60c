// The master's pure decisions; see policy.hpp.
#include "master/policy.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <cstring>

namespace yubin::master {

bool mayControl(const PeerCred& peer, const AccessPolicy& policy) {
  if (peer.uid == 0) return true;
  if (policy.devMode && peer.uid == policy.ownUid) return true;
  if (policy.adminGid) {
    if (peer.gid == *policy.adminGid) return true;
    if (std::find(peer.groups.begin(), peer.groups.end(), *policy.adminGid) != peer.groups.end())
      return true;
  }
  return false;
}

std::chrono::seconds Backoff::stableAfter() const {
  return std::max(cap_, std::chrono::seconds(10));
}

std::chrono::seconds Backoff::next(std::chrono::steady_clock::duration uptime) {
  if (uptime >= stableAfter()) delay_ = std::chrono::seconds(1);
  auto cap = std::max(cap_, std::chrono::seconds(1));
  std::chrono::seconds now = std::min(delay_, cap);
  delay_ = std::min(now * 2, cap);
  return now;
}

std::string describeExit(int st) {
  if (WIFEXITED(st)) return "exit code " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    const char* abbrev = sigabbrev_np(sig);
    std::string out = abbrev ? std::string("signal SIG") + abbrev : "signal " + std::to_string(sig);
    if (WCOREDUMP(st)) out += " (core dumped)";
    return out;
  }
  return "wait status " + std::to_string(st);
}

}  // namespace yubin::master
