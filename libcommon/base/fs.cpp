// Crash-safe file operations; see fs.hpp.
#include "base/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>

#include "base/unique_fd.hpp"

namespace yubin {

Status writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

std::string dirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status fsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errnoError("open " + dir);
  if (::fsync(fd.get()) != 0) return errnoError("fsync " + dir);
  return {};
}

Status atomicWrite(const std::string& path, std::string_view data, mode_t mode) {
  std::random_device rd;
  std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(rd());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) return errnoError("create " + tmp);
  auto cleanup = ScopeExit([&] { ::unlink(tmp.c_str()); });
  if (::fchmod(fd.get(), mode) != 0) return errnoError("chmod " + tmp);
  if (auto st = writeAll(fd.get(), data); !st) return Error{tmp + ": " + st.error().message, st.error().errnum};
  if (::fsync(fd.get()) != 0) return errnoError("fsync " + tmp);
  if (::close(fd.release()) != 0) return errnoError("close " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errnoError("rename " + tmp);
  cleanup.dismiss();
  return fsyncDir(dirName(path));
}

Result<std::string> readFile(const std::string& path, size_t maxSize) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errnoError("open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("read " + path);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > maxSize) return Error{path + ": file too large", EFBIG};
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status makeDirs(const std::string& dir, mode_t mode) {
  if (dir.empty()) return {};
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return {};
    return Error{dir + ": not a directory", ENOTDIR};
  }
  std::string parent = dirName(dir);
  if (parent != dir && parent != "." && parent != "/") {
    if (auto s = makeDirs(parent, mode); !s) return s;
  }
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) return errnoError("mkdir " + dir);
  return {};
}

}  // namespace yubin
