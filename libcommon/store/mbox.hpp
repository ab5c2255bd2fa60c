// mbox (mboxrd) delivery and reading.
//
// Format: each message is "From <sender> <date>\n", the message bytes
// with every line matching ^>*From  given one more '>', then one empty
// line. <sender> is the envelope sender (MAILER-DAEMON when empty; blanks
// and control bytes become '_' so the line stays parseable) and <date> is
// asctime format in UTC ("Thu Jan  1 00:00:00 1970"). A message that does
// not end in LF gets one, so the separator stays valid. Delivery writes
// LF line endings (CRLF -> LF); converters may keep them.
//
// Appending: open (O_APPEND, O_NOFOLLOW, 0600, regular files only), take
// an fcntl write lock (an open file description lock, F_OFD_SETLK, so
// that threads of one process exclude each other too; in a bounded retry
// loop), then the dot-lock
// <mbox>.lock (written under a private name, then link(2)ed into place, so
// it never exists empty; holds "<pid> <host>\n"; a lock older than 5 min or
// whose pid is dead on this host is removed). fstat the size first; on any
// failure ftruncate back to it, so a failed append leaves the mailbox as it
// was; fsync before success. Locking fcntl before dot-lock means two of
// our own processes never race on removing a stale dot-lock.
//
// Reading: a From_ line starts a message when it is the first line of the
// file or follows an empty line; the empty line before it is the previous
// message's separator and is not part of that message. Lines matching
// ^>+From  lose one '>'. Bytes before the first From_ line form a message
// without From_ line (hasFromLine false) rather than being dropped.
//
// Trust level: runs as the mailbox owner; message bytes and existing
// mbox contents are untrusted (no separator, huge lines, binary, NULs are
// all tolerated; memory per message is the size of that message; work is
// linear). Standards: RFC 4155 (mbox), the mboxrd quoting convention.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "store/fs_ops.hpp"
#include "store/message_source.hpp"

namespace yubin::store {

// ---- From_ lines ----

// "Thu Jan  1 00:00:00 1970" (UTC).
std::string mboxFormatDate(int64_t t);
// "From <sender> <date>\n" as described above.
std::string mboxFromLine(std::string_view sender, int64_t date);

struct MboxFromLine {
  std::string sender;
  std::string dateText;
  std::optional<int64_t> date;  // seconds since the epoch, if dateText parsed
};
// Parses a line starting with "From " (its line end optional). The date is
// asctime-like: "Www Mmm dd hh:mm[:ss] [zone] yyyy [+hhmm]", taken as UTC
// unless a numeric offset follows; a sender containing blanks is accepted
// (the date is found from the right).
MboxFromLine mboxParseFromLine(std::string_view line);

// ---- locking and appending ----

enum class DotLock {
  Required,  // fail if <mbox>.lock cannot be created
  Try,       // skip it when the directory refuses (EACCES, EPERM, EROFS)
  Off,
};

struct MboxLockSettings {
  std::chrono::milliseconds timeout{30000};  // for each of the two locks
  DotLock dotLock = DotLock::Required;
  std::chrono::seconds staleAfter{300};
  std::string hostName;  // recorded in the dot-lock; empty = gethostname()
};

// Removes the header fields in which IMAP servers keep mbox state (as
// UW-IMAP and Dovecot do; mbox_folder.hpp and mbox_store.hpp read them)
// from a message's bytes arriving in pieces: in the header block (up to the
// first empty line) a field named Status, X-Status, X-Keywords, X-UID,
// X-IMAP or X-IMAPbase (any case) is dropped with its continuation lines. Memory: the start of one field name (a few bytes).
class MboxMetaFilter {
 public:
  void feed(std::string_view bytes, std::string& out);
  void finish(std::string& out);

 private:
  enum class State : uint8_t { LineStart, Name, Keep, Drop, Body };
  State state_ = State::LineStart;
  bool dropping_ = false;  // the current field is hidden (for its continuations)
  std::string name_;       // the field name so far (State::Name)
};

struct MboxAppendOptions {
  LineEndings lineEndings = LineEndings::ToLf;
  // fsync after this append (delivery). Bulk writers may batch and call
  // MboxWriter::sync() at the end instead.
  bool sync = true;
  // Drop the fields IMAP servers keep their state in (MboxMetaFilter) from
  // the message (not from the prefix): a delivery must not let the sender
  // set flags, keywords or UIDs, as Dovecot's LDA and UW-IMAP's tmail drop
  // them too.
  bool hideImapState = false;
};

// An open, locked mbox. Locks are released by the destructor (or close()).
class MboxWriter {
 public:
  static Result<MboxWriter> open(const std::string& path, const MboxLockSettings& lock = {},
                                 Fs& fs = realFs());
  MboxWriter(MboxWriter&&) noexcept;
  MboxWriter& operator=(MboxWriter&&) = delete;
  MboxWriter(const MboxWriter&) = delete;
  ~MboxWriter();

  // Appends one message: From_ line, prefix (header lines from the
  // caller) and the message, quoted, then the separator. On failure the
  // file is truncated back to its size before this call.
  Status append(std::string_view sender, int64_t date, std::string_view prefix,
                const MessageSource& msg, const MboxAppendOptions& opts = {});
  Status sync();
  // Releases the locks and closes; reports a close error.
  Status close();

 private:
  MboxWriter(Fs& fs, std::string path, UniqueFd fd)
      : fs_(&fs), path_(std::move(path)), fd_(std::move(fd)) {}
  void release();
  void touchDotLock();

  Fs* fs_;
  std::string path_;
  UniqueFd fd_;
  std::string dotLockPath_;  // empty when we hold none
  std::chrono::steady_clock::time_point lastTouch_{};
};

// open + append + close: one delivery.
Status appendToMbox(const std::string& path, std::string_view sender, int64_t date,
                    std::string_view prefix, const MessageSource& msg,
                    const MboxLockSettings& lock = {}, const MboxAppendOptions& opts = {},
                    Fs& fs = realFs());

// ---- reading ----

struct MboxMessage {
  uint64_t offset = 0;      // first byte of the From_ line (or of the data)
  uint64_t dataOffset = 0;  // first byte after the From_ line
  uint64_t endOffset = 0;   // end of the data on disk (the separator follows)
  bool hasFromLine = true;
  MboxFromLine from;
  std::string data;  // un-quoted message bytes; empty unless keepData
};

// A push parser: feed() the mbox in pieces of any size, then finish().
// The callback receives each message once it is complete; an error it
// returns stops the parse and is returned.
class MboxParser {
 public:
  using Callback = std::function<Status(MboxMessage&&)>;
  explicit MboxParser(Callback cb, bool keepData = true)
      : cb_(std::move(cb)), keepData_(keepData) {}
  Status feed(std::string_view bytes);
  Status finish();

 private:
  Status endLine(bool complete);
  Status emit(uint64_t endOffset);

  Callback cb_;
  bool keepData_;
  std::string acc_;       // message data so far + the current line
  size_t lineStart_ = 0;  // where the current line starts in acc_
  uint64_t lineLen_ = 0;  // its true length (acc_ may hold less)
  uint64_t pos_ = 0;      // file offset of the current line
  bool inMessage_ = false;
  bool prevBlank_ = false;
  uint64_t prevBlankLen_ = 0;
  MboxMessage cur_;
};

struct MboxReadOptions {
  bool keepData = true;
  // Take an fcntl read lock for the duration (writers hold a write lock).
  bool lock = true;
  std::chrono::milliseconds lockTimeout{30000};
};
Status readMbox(const std::string& path, const MboxParser::Callback& cb,
                const MboxReadOptions& opts = {});

}  // namespace yubin::store
