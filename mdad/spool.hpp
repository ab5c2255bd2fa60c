// SpoolFile: where mdad keeps one incoming message while it delivers it to
// each recipient, when it is too big to keep in memory (MessageBuffer) or
// comes through the delivery command. The file never has a name that outlives the process:
// O_TMPFILE in the spool folder, or (on file systems without it) a
// mkstemp() name unlinked right after it is opened. A crash, even kill -9,
// leaves nothing behind. Not fsync'ed: the mailbox copies are what must be
// durable, and they are.
// Trust: the bytes are untrusted message content, only copied. Runs as the
// mailbox owner; the folder is private to it (0700).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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

// The message an LMTP connection is receiving: in memory up to
// memoryLimit bytes, and past that in a SpoolFile (the bytes held so far
// are written to it at once). Memory per connection is thus bounded by
// memoryLimit plus one write chunk. A spool file that cannot be created
// or written is reported by finish(); the rest of the data is dropped.
class MessageBuffer {
 public:
  MessageBuffer() = default;
  MessageBuffer(std::string spoolDir, size_t memoryLimit)
      : spoolDir_(std::move(spoolDir)), memoryLimit_(memoryLimit) {}
  void append(std::string_view bytes);
  uint64_t size() const { return size_; }
  bool spooled() const { return spool_.active(); }
  // The whole message, shareable between threads: a MemorySource, or a
  // FileSource that owns the spool file. The buffer is empty afterwards.
  Result<std::shared_ptr<const store::MessageSource>> finish();
  void discard();

 private:
  std::string spoolDir_;
  size_t memoryLimit_ = 0;
  std::string mem_;
  SpoolFile spool_;
  std::optional<Error> error_;
  uint64_t size_ = 0;
};

// Creates dir (and its parents) with mode 0700 when missing; checks that it
// is a directory.
Status ensurePrivateDir(const std::string& dir);

}  // namespace yubin::mdad
