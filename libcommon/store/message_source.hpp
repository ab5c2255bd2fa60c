// MessageSource: a message received once (in memory or in a spool file)
// that can be delivered to several mailboxes without holding it all in
// memory; plus the helpers every delivery path shares: the Delivered-To
// loop check and the mapping of a failed delivery to its kind (full disk,
// over quota, temporary).
//
// Trust level: the message bytes are untrusted (they come from the
// network); this code only copies and scans them, bounded to what the
// caller hands over. Runs as the mailbox owner.
// Standards: RFC 5322 (header block ends at the first empty line; folded
// lines start with WSP), RFC 9228 / Postfix (Delivered-To: loop detection).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::store {

class MessageSource {
 public:
  using ChunkFn = std::function<Status(std::string_view)>;
  virtual ~MessageSource() = default;
  // Calls fn with consecutive pieces of the message (pieces never empty;
  // their boundaries are arbitrary, even in the middle of a CRLF). Stops
  // at and returns the first error, from fn or from reading.
  virtual Status forEachChunk(const ChunkFn& fn) const = 0;
  // Exact number of bytes forEachChunk will produce.
  virtual uint64_t size() const = 0;
};

// A message held in memory.
class MemorySource final : public MessageSource {
 public:
  explicit MemorySource(std::string data) : data_(std::move(data)) {}
  Status forEachChunk(const ChunkFn& fn) const override;
  uint64_t size() const override { return data_.size(); }
  const std::string& data() const { return data_; }

 private:
  std::string data_;
};

// A byte range of an open file (a spool file, a Maildir message), read
// with pread so one fd can serve several deliveries, even concurrently.
// A file that turns out shorter than the range is an error (EIO), never a
// silently truncated message.
class FileSource final : public MessageSource {
 public:
  FileSource(UniqueFd fd, uint64_t offset, uint64_t length)
      : fd_(std::move(fd)), offset_(offset), length_(length) {}
  // The whole of a regular file (refuses FIFOs, devices, directories).
  static Result<FileSource> open(const std::string& path);
  Status forEachChunk(const ChunkFn& fn) const override;
  uint64_t size() const override { return length_; }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  uint64_t offset_;
  uint64_t length_;
};

// Reads a whole source into memory (for small messages and tests).
Result<std::string> readAll(const MessageSource& src);

// Loop check: true when the message's header block holds a Delivered-To:
// field naming recipient. The header name is matched without regard to
// case; the address compares its local part exactly and its domain
// without regard to case; angle brackets and surrounding blanks are
// ignored. Only the header block is read (up to the first empty line, and
// at most 1 MiB so a header-less binary blob cannot make it read the whole
// spool file). A read error counts as "not listed": the delivery that
// follows will meet the same error and report it.
bool deliveredToListed(const MessageSource& src, std::string_view recipient);

// How line endings are written into a mailbox file. Delivery uses ToLf
// (mailbox files hold LF line endings, as Dovecot and Postfix local write
// them); converters use Keep so message bytes move unchanged.
enum class LineEndings { ToLf, Keep };

// What kind of failure a delivery error is, so the caller can choose the
// reply: NoSpace (ENOSPC: 452 4.3.1), OverQuota (EDQUOT: 452 4.2.2 or
// 552 5.2.2 by policy), Temporary (locks, I/O: 451 4.3.0).
enum class DeliveryFailure { NoSpace, OverQuota, Temporary };
DeliveryFailure classifyDeliveryError(const Error& e);

}  // namespace yubin::store
