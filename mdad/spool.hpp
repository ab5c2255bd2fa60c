// SpoolFile: where mdad keeps one incoming message while it delivers it to
// each recipient. The file never has a name that outlives the process:
// O_TMPFILE in the spool folder, or (on file systems without it) a
// mkstemp() name unlinked right after it is opened. A crash, even kill -9,
// leaves nothing behind. Not fsync'ed: the mailbox copies are what must be
// durable, and they are.
// Trust: the bytes are untrusted message content, only copied. Runs as the
// mailbox owner; the folder is private to it (0700).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "store/message_source.hpp"

namespace yubin::mdad {

class SpoolFile {
 public:
  SpoolFile() = default;
  // A fresh, nameless file in dir.
  static Result<SpoolFile> create(const std::string& dir);

  bool active() const { return fd_.valid(); }
  // Buffers and writes. After a write error the rest is dropped and the
  // error is kept for finish(), so a sender can be told at the end of data.
  void append(std::string_view bytes);
  uint64_t size() const { return size_; }
  // Writes what is buffered; the content as a MessageSource (the source
  // owns the file from here on).
  Result<store::FileSource> finish();
  // Drops the file.
  void discard();

 private:
  explicit SpoolFile(UniqueFd fd) : fd_(std::move(fd)) {}
  void flush();

  UniqueFd fd_;
  std::string buf_;
  uint64_t size_ = 0;
  bool failed_ = false;
  Error error_;
};

// Creates dir (and its parents) with mode 0700 when missing; checks that it
// is a directory.
Status ensurePrivateDir(const std::string& dir);

}  // namespace yubin::mdad
