// WatchPool: the inotify descriptors that tell a selected mailbox's session
// of changes (ImapMailbox::changeFd()), kept when the mailbox is closed for
// the next SELECT of the same folder.
//
// Why keep them: closing an inotify instance waits for the kernel's grace
// period with the caller blocked (0.1-0.3 ms on this machine, measured in
// mrad's loop, where every session of the mail process waits with it: a
// third of what a SELECT of a 10,000-message Maildir costs), while adding
// the watches again on a kept one costs a call per path. A kept descriptor
// whose watches come back with other numbers (the folder was removed and
// made again: its old watches went with it) is closed and a new one made.
// At most kMaxKept are kept (each counts against the user's
// fs.inotify.max_user_instances, 128 by default); the oldest goes first.
//
// Threads: one (the mail process's loop). Trust: the paths are the store's
// own, already checked.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.hpp"

namespace yubin::store {

// A selected mailbox's wake-up descriptor and its watches' numbers; empty
// (fd() == -1) without inotify, as when inotify_init1 fails or the user's
// instances are used up: the session then polls.
class Watch {
 public:
  Watch() = default;
  int fd() const { return fd_ ? fd_.get() : -1; }
  explicit operator bool() const { return static_cast<bool>(fd_); }
  // Reads every event waiting (non-blocking).
  void drain() const;

 private:
  friend class WatchPool;
  UniqueFd fd_;
  std::vector<std::string> paths_;
  uint32_t mask_ = 0;
  std::vector<int> wds_;
};

class WatchPool {
 public:
  static constexpr size_t kMaxKept = 8;

  // A descriptor watching every path of `paths` for `mask`, with nothing
  // waiting on it: a kept one for the same paths and mask, or a new one.
  // Empty when inotify is not available or a path cannot be watched.
  Watch take(std::vector<std::string> paths, uint32_t mask);
  // Takes back a descriptor whose mailbox was closed. An empty one is
  // ignored.
  void keep(Watch w);
  size_t kept() const { return kept_.size(); }

 private:
  static std::vector<int> addWatches(int fd, const std::vector<std::string>& paths,
                                     uint32_t mask);
  std::vector<Watch> kept_;  // oldest first
};

}  // namespace yubin::store
