// System calls for the queue; see fs.hpp.
#include "queue/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/fs.hpp"

namespace yubin::queue {

Result<UniqueFd> RealFs::open(const std::string& path, int flags, mode_t mode) {
  for (;;) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return UniqueFd(fd);
    if (errno != EINTR) return errnoError("open " + path);
  }
}

Result<size_t> RealFs::write(int fd, const char* data, size_t size) {
  for (;;) {
    ssize_t n = ::write(fd, data, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return errnoError("write");
  }
}

Status RealFs::pwrite(int fd, const char* data, size_t size, uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("pwrite");
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

Result<size_t> RealFs::pread(int fd, char* data, size_t size, uint64_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("pread");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status RealFs::fsync(int fd) {
  if (::fsync(fd) != 0) return errnoError("fsync");
  return {};
}

Status RealFs::rename(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return {};
  if (errno != EINVAL && errno != ENOSYS) return errnoError("rename " + from + " -> " + to);
  // The file system cannot refuse to replace atomically. Only mtad writes
  // the spool, so checking first is enough there.
  struct stat st;
  if (::lstat(to.c_str(), &st) == 0) return errnoError("rename " + from + " -> " + to, EEXIST);
  if (::rename(from.c_str(), to.c_str()) != 0) return errnoError("rename " + from + " -> " + to);
  return {};
}

Status RealFs::replace(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return errnoError("rename " + from + " -> " + to);
  return {};
}

Status RealFs::unlink(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return errnoError("unlink " + path);
  return {};
}

Status RealFs::fsyncDir(const std::string& dir) { return yubin::fsyncDir(dir); }

Result<std::vector<std::string>> RealFs::listDir(const std::string& dir) {
  CPtr<DIR, ::closedir> d(::opendir(dir.c_str()));
  if (!d) return errnoError("opendir " + dir);
  std::vector<std::string> out;
  errno = 0;
  while (struct dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(std::move(name));
    errno = 0;
  }
  if (errno != 0) return errnoError("readdir " + dir);
  return out;
}

Fs& realFs() {
  static RealFs fs;
  return fs;
}

}  // namespace yubin::queue
