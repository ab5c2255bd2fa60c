// The real system calls behind Fs; see fs_ops.hpp.
#include "store/fs_ops.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace yubin::store {

int Fs::open(const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); }
ssize_t Fs::write(int fd, const void* buf, size_t n) { return ::write(fd, buf, n); }
int Fs::fsync(int fd) { return ::fsync(fd); }
int Fs::link(const char* from, const char* to) { return ::link(from, to); }
int Fs::rename(const char* from, const char* to) { return ::rename(from, to); }
int Fs::unlink(const char* path) { return ::unlink(path); }
int Fs::ftruncate(int fd, off_t size) { return ::ftruncate(fd, size); }
int Fs::mkdir(const char* path, mode_t mode) { return ::mkdir(path, mode); }

Fs& realFs() {
  static Fs fs;
  return fs;
}

}  // namespace yubin::store
