// Helpers shared by the store unit tests: a temporary directory removed
// at the end, a directory lister, and FaultyFs, an Fs whose calls can be
// told to fail (ENOSPC after N bytes, a failing fsync/link/rename).
// Test-only; never linked into a program.
#pragma once

#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "store/fs_ops.hpp"

namespace yubin::store::test {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/yubin-store-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    ::nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& s) const { return path_ + "/" + s; }

 private:
  std::string path_;
};

// Sorted names in dir (without . and ..); empty if dir is missing.
inline std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

class FaultyFs : public Fs {
 public:
  // write: succeed for writeBudget more bytes (a short write at the
  // edge), then fail with writeErr. Negative budget = unlimited.
  long long writeBudget = -1;
  int writeErr = ENOSPC;
  // fsync: fail the Nth call (1-based) with fsyncErr; 0 = never.
  int failFsyncAt = 0;
  int fsyncErr = EIO;
  // link: fail the first linkFailures calls with linkErr.
  int linkFailures = 0;
  int linkErr = EIO;
  int renameErr = 0;  // nonzero: every rename fails with it
  // open: paths ending in openFailSuffix fail with openErr.
  std::string openFailSuffix;
  int openErr = EACCES;
  int fsyncCalls = 0;
  int linkCalls = 0;

  int open(const char* path, int flags, mode_t mode) override {
    std::string p = path;
    if (!openFailSuffix.empty() && p.size() >= openFailSuffix.size() &&
        p.compare(p.size() - openFailSuffix.size(), openFailSuffix.size(), openFailSuffix) == 0) {
      errno = openErr;
      return -1;
    }
    return Fs::open(path, flags, mode);
  }
  ssize_t write(int fd, const void* buf, size_t n) override {
    if (writeBudget >= 0) {
      if (writeBudget == 0) {
        errno = writeErr;
        return -1;
      }
      n = std::min<size_t>(n, static_cast<size_t>(writeBudget));
      ssize_t r = Fs::write(fd, buf, n);
      if (r > 0) writeBudget -= r;
      return r;
    }
    return Fs::write(fd, buf, n);
  }
  int fsync(int fd) override {
    if (++fsyncCalls == failFsyncAt) {
      errno = fsyncErr;
      return -1;
    }
    return Fs::fsync(fd);
  }
  int link(const char* from, const char* to) override {
    ++linkCalls;
    if (linkFailures > 0) {
      --linkFailures;
      errno = linkErr;
      return -1;
    }
    return Fs::link(from, to);
  }
  int rename(const char* from, const char* to) override {
    if (renameErr) {
      errno = renameErr;
      return -1;
    }
    return Fs::rename(from, to);
  }
};

}  // namespace yubin::store::test
