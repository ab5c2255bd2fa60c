// Stamped file reads for WatchedFile; see watched_file.hpp.
#include "auth/watched_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "base/unique_fd.hpp"

namespace yubin::auth {
namespace {

FileStamp fromStat(const struct stat& st) {
  FileStamp s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.mtimeSec = st.st_mtim.tv_sec;
  s.mtimeNsec = st.st_mtim.tv_nsec;
  s.size = st.st_size;
  s.mode = st.st_mode;
  return s;
}

}  // namespace

Result<FileStamp> stampOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return FileStamp{};
    return errnoError("stat " + path);
  }
  return fromStat(st);
}

Result<StampedText> readStamped(const std::string& path, size_t maxSize) {
  StampedText out;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    if (errno == ENOENT) return out;
    return errnoError("open " + path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errnoError("fstat " + path);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file"};
  out.stamp = fromStat(st);
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("read " + path);
    }
    if (n == 0) break;
    if (out.text.size() + static_cast<size_t>(n) > maxSize)
      return Error{path + ": file too large", EFBIG};
    out.text.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace yubin::auth
