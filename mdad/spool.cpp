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

void MessageBuffer::append(std::string_view bytes) {
  size_ += bytes.size();
  if (error_) return;
  if (spool_.active()) {
    spool_.append(bytes);
    return;
  }
  if (mem_.size() + bytes.size() <= memoryLimit_) {
    mem_.append(bytes);
    return;
  }
  auto s = SpoolFile::create(spoolDir_);
  if (!s) {
    error_ = s.error();
    std::string().swap(mem_);
    return;
  }
  spool_ = std::move(*s);
  spool_.append(mem_);
  std::string().swap(mem_);
  spool_.append(bytes);
}

Result<std::shared_ptr<const store::MessageSource>> MessageBuffer::finish() {
  if (error_) {
    Error e = *error_;
    discard();
    return e;
  }
  if (spool_.active()) {
    auto src = spool_.finish();
    discard();
    if (!src) return src.error();
    return std::shared_ptr<const store::MessageSource>(
        std::make_shared<store::FileSource>(std::move(*src)));
  }
  auto src = std::make_shared<store::MemorySource>(std::move(mem_));
  discard();
  return std::shared_ptr<const store::MessageSource>(std::move(src));
}

void MessageBuffer::discard() {
  spool_.discard();
  std::string().swap(mem_);
  error_.reset();
  size_ = 0;
}

Status ensurePrivateDir(const std::string& dir) {
  if (auto st = makeDirs(dir, 0700); !st) return st;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return errnoError("stat " + dir);
  if (!S_ISDIR(st.st_mode)) return Error{dir + ": not a directory", ENOTDIR};
  return {};
}

}  // namespace yubin::mdad
