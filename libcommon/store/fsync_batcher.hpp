// FsyncBatcher: one fsync of a directory or file shared by the threads
// that need it at the same time (group commit). A thread that wants what
// it did to `path` (a link into a Maildir's cur/, a batch appended to the
// uid log) on stable storage calls sync(path): if no sync of that path is
// running, it runs one for itself and for every thread that asked before
// it started; if one is running, that one may have started before our
// change, so the thread waits for it and then joins the next one. Each
// caller gets the result of an fsync that started after its request, so
// the rule "durable before the reply" holds as with a sync of its own;
// under load, N commits to one folder cost one directory fsync instead of N.
//
// Threads: every member may be called from any thread (a mutex inside);
// it is meant for the commit threads of mrad's mail process
// (append_commit.hpp), shared by every store of the process.
// Trust: none of its own; paths come from the store.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"

namespace yubin::store {

class FsyncBatcher {
 public:
  enum class Kind : uint8_t {
    Directory,  // open O_DIRECTORY, fsync
    Data,       // open the file read-only, fdatasync (ENOENT: nothing to sync)
  };
  // The system call, replaceable by tests (default: the real open + sync).
  using SyncFn = std::function<Status(const std::string& path, Kind kind)>;
  explicit FsyncBatcher(SyncFn fn = {});

  // Returns once a sync of path that started after this call has ended,
  // with its result.
  Status sync(const std::string& path, Kind kind);

  // Syncs actually run, and calls to sync() (tests, figures).
  uint64_t runs() const;
  uint64_t calls() const;

 private:
  struct Request {
    bool done = false;
    Status result;
  };
  struct Group {
    bool running = false;
    std::vector<Request*> pending;  // asked since the running sync started
    size_t users = 0;               // threads inside sync() for this path
    std::condition_variable cv;
  };

  SyncFn fn_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Group>> groups_;  // guarded by mu_
  uint64_t runs_ = 0, calls_ = 0;                                   // guarded by mu_
};

// The real sync of one path (what FsyncBatcher runs by default).
Status syncPath(const std::string& path, FsyncBatcher::Kind kind);

}  // namespace yubin::store
