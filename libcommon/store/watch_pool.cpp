// Kept inotify descriptors of closed mailboxes; see watch_pool.hpp.
#include "store/watch_pool.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>

namespace yubin::store {

void Watch::drain() const {
  if (!fd_) return;
  char buf[4096];
  while (::read(fd_.get(), buf, sizeof buf) > 0) {
  }
}

std::vector<int> WatchPool::addWatches(int fd, const std::vector<std::string>& paths,
                                       uint32_t mask) {
  std::vector<int> wds;
  wds.reserve(paths.size());
  for (const std::string& p : paths) wds.push_back(::inotify_add_watch(fd, p.c_str(), mask));
  return wds;
}

Watch WatchPool::take(std::vector<std::string> paths, uint32_t mask) {
  for (auto it = kept_.rbegin(); it != kept_.rend(); ++it) {
    if (it->paths_ != paths || it->mask_ != mask) continue;
    Watch w = std::move(*it);
    kept_.erase(std::next(it).base());
    // What happened while it was kept is read again from the folder: the
    // events are stale. Adding a watch that is still there only gives back
    // its number.
    w.drain();
    if (addWatches(w.fd_.get(), w.paths_, mask) == w.wds_) return w;
    break;  // a path was replaced: closed here, a new one below
  }
  Watch w;
  w.fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!w.fd_) return {};
  w.wds_ = addWatches(w.fd_.get(), paths, mask);
  if (std::any_of(w.wds_.begin(), w.wds_.end(), [](int wd) { return wd < 0; })) return {};
  w.paths_ = std::move(paths);
  w.mask_ = mask;
  return w;
}

void WatchPool::keep(Watch w) {
  if (!w) return;
  if (kept_.size() >= kMaxKept) kept_.erase(kept_.begin());  // the oldest closed
  kept_.push_back(std::move(w));
}

}  // namespace yubin::store
