// The nameless spool file of one message; see spool.hpp.
#include "mdad/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/fs.hpp"

namespace yubin::mdad {
namespace {

// Written in pieces of this size: few system calls for big messages, little
// memory per connection.
constexpr size_t kWriteChunk = 128 * 1024;

}  // namespace

Result<SpoolFile> SpoolFile::create(const std::string& dir) {
#ifdef O_TMPFILE
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return SpoolFile(UniqueFd(fd));
  // EOPNOTSUPP / EISDIR / EINVAL: the file system or kernel lacks it; any
  // other error is real.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return errnoError("create spool file in " + dir);
#endif
  std::string path = dir + "/spool.XXXXXX";
  int tfd = ::mkostemp(path.data(), O_CLOEXEC);
  if (tfd < 0) return errnoError("create spool file in " + dir);
  UniqueFd owned(tfd);
  if (::unlink(path.c_str()) != 0) return errnoError("unlink " + path);
  return SpoolFile(std::move(owned));
}

void SpoolFile::append(std::string_view bytes) {
  if (!fd_ || failed_) return;
  size_ += bytes.size();
  buf_.append(bytes);
  if (buf_.size() >= kWriteChunk) flush();
}

void SpoolFile::flush() {
  if (failed_ || buf_.empty()) return;
  if (auto st = writeAll(fd_.get(), buf_); !st) {
    failed_ = true;
    error_ = st.error();
  }
  buf_.clear();
}

Result<store::FileSource> SpoolFile::finish() {
  if (!fd_) return Error{"spool file not open", EBADF};
  flush();
  std::string().swap(buf_);
  if (failed_) {
    fd_.reset();
    return error_;
  }
  return store::FileSource(std::move(fd_), 0, size_);
}

void SpoolFile::discard() {
  fd_.reset();
  std::string().swap(buf_);
  size_ = 0;
  failed_ = false;
}

Status ensurePrivateDir(const std::string& dir) {
  if (auto st = makeDirs(dir, 0700); !st) return st;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return errnoError("stat " + dir);
  if (!S_ISDIR(st.st_mode)) return Error{dir + ": not a directory", ENOTDIR};
  return {};
}

}  // namespace yubin::mdad
