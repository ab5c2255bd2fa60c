// Fs: the replaceable system-call layer under the mailbox code. Every call
// whose failure matters for crash safety (open, write, fsync, link, rename,
// unlink, ftruncate, mkdir) goes through here so a test can inject ENOSPC,
// EDQUOT, EIO or EEXIST and check that no partial file is left behind.
// The base class IS the real implementation; a test derives from it and
// overrides only the calls it wants to break.
//
// Trust level: none of its own; runs as whoever calls it (mdad as the
// mailbox owner). Methods follow the POSIX convention (-1 and errno).
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace yubin::store {

class Fs {
 public:
  virtual ~Fs() = default;
  virtual int open(const char* path, int flags, mode_t mode);
  // May write fewer bytes than asked (callers loop) and may fail with EINTR.
  virtual ssize_t write(int fd, const void* buf, size_t n);
  virtual int fsync(int fd);
  virtual int link(const char* from, const char* to);
  virtual int rename(const char* from, const char* to);
  virtual int unlink(const char* path);
  virtual int ftruncate(int fd, off_t size);
  virtual int mkdir(const char* path, mode_t mode);
};

// The process-wide real implementation (stateless, so not a "global" in
// the sense of the style guide: it holds no data).
Fs& realFs();

}  // namespace yubin::store
