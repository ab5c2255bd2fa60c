// The system calls the queue makes, behind a small replaceable interface so
// tests can inject ENOSPC, EIO or short writes at any step (write, fsync,
// rename, directory fsync) and count directory fsyncs. RealFs is the default.
// Implementations must be thread-safe: the group committer calls them from
// its worker thread while the event loop thread writes new messages.
// Trust: paths are built by the queue from validated QueueIds; runs as
// yubin-mta (mtad) or as the admin (yubinctl, read-only calls).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::queue {

class Fs {
 public:
  virtual ~Fs() = default;
  virtual Result<UniqueFd> open(const std::string& path, int flags, mode_t mode) = 0;
  // One write(2): may be short. EINTR is retried inside.
  virtual Result<size_t> write(int fd, const char* data, size_t size) = 0;
  virtual Status pwrite(int fd, const char* data, size_t size, uint64_t offset) = 0;
  // Reads up to size bytes at offset; fewer only at end of file.
  virtual Result<size_t> pread(int fd, char* data, size_t size, uint64_t offset) = 0;
  virtual Status fsync(int fd) = 0;
  // Never replaces: fails with EEXIST when `to` exists, so a queue ID that
  // collides cannot overwrite a committed message.
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  // rename(2) that replaces `to` atomically: only for state files, which a
  // newer state supersedes.
  virtual Status replace(const std::string& from, const std::string& to) = 0;
  // ENOENT is an error like any other; callers that do not care check errnum.
  virtual Status unlink(const std::string& path) = 0;
  virtual Status fsyncDir(const std::string& dir) = 0;
  // Names in dir, without "." and "..", in no particular order.
  virtual Result<std::vector<std::string>> listDir(const std::string& dir) = 0;
};

class RealFs : public Fs {
 public:
  Result<UniqueFd> open(const std::string& path, int flags, mode_t mode) override;
  Result<size_t> write(int fd, const char* data, size_t size) override;
  Status pwrite(int fd, const char* data, size_t size, uint64_t offset) override;
  Result<size_t> pread(int fd, char* data, size_t size, uint64_t offset) override;
  Status fsync(int fd) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status replace(const std::string& from, const std::string& to) override;
  Status unlink(const std::string& path) override;
  Status fsyncDir(const std::string& dir) override;
  Result<std::vector<std::string>> listDir(const std::string& dir) override;
};

// The process-wide RealFs (stateless, so sharing it is harmless).
Fs& realFs();

}  // namespace yubin::queue
