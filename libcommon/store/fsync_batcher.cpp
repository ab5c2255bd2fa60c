// Group commit of fsyncs; see fsync_batcher.hpp.
#include "store/fsync_batcher.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/fs.hpp"
#include "base/unique_fd.hpp"

namespace yubin::store {

Status syncPath(const std::string& path, FsyncBatcher::Kind kind) {
  if (kind == FsyncBatcher::Kind::Directory) return fsyncDir(path);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return errno == ENOENT ? Status{} : errnoError("open " + path);
  if (::fdatasync(fd.get()) != 0) return errnoError("fdatasync " + path);
  return {};
}

FsyncBatcher::FsyncBatcher(SyncFn fn) : fn_(fn ? std::move(fn) : SyncFn(syncPath)) {}

Status FsyncBatcher::sync(const std::string& path, Kind kind) {
  std::unique_lock lock(mu_);
  ++calls_;
  auto& slot = groups_[path];
  if (!slot) slot = std::make_unique<Group>();
  Group& g = *slot;
  ++g.users;
  Request me;
  g.pending.push_back(&me);
  while (!me.done) {
    if (g.running) {
      g.cv.wait(lock);
      continue;
    }
    // Ours and every request made before this sync starts.
    g.running = true;
    std::vector<Request*> batch;
    batch.swap(g.pending);
    ++runs_;
    lock.unlock();
    Status st = fn_(path, kind);
    lock.lock();
    for (Request* r : batch) {
      r->result = st;
      r->done = true;
    }
    g.running = false;
    g.cv.notify_all();
  }
  Status result = std::move(me.result);
  if (--g.users == 0) groups_.erase(path);
  return result;
}

uint64_t FsyncBatcher::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}

uint64_t FsyncBatcher::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

}  // namespace yubin::store
