// MboxFolder: an mbox file (mboxrd, as mdad writes it) opened for a
// retrieval session.
//
// Locking: the fcntl lock and the dot-lock (MboxWriter's, the same mdad
// takes, in the same order) are held only while the snapshot is read at
// open and while expunge rewrites the file, not for the whole session, so
// mdad keeps delivering while a client reads its mail. Sessions of the same
// mailbox are kept apart by their owner (mrad's in-use table), not by the
// file lock.
// Snapshot: offsets of every message up to the file's size at open, and a
// BLAKE2b digest of those bytes. uid: the X-UIDL: header when it is a valid
// uid and unique in the folder, else a digest of the From_ line and the
// message (a copy of an identical message gets "-2", "-3", ...).
// Reading: the message bytes with one '>' taken off ^>+From  lines and
// without the fields an IMAP server keeps its state in (MboxMetaFilter:
// Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase, as UW-IMAP and
// Dovecot write them); sizes and uids are of that visible form, so an IMAP
// session changing flags (mbox_store.hpp) leaves POP3's UIDL and sizes as
// they were. A first message carrying X-IMAP is the folder's internal data
// (UW-IMAP's and Dovecot's pseudo message), not mail: it is not listed and
// expunge keeps it; an expunge that removes the first message, which holds
// the X-IMAPbase field, writes a pseudo message with that base first, so
// the IMAP UIDs stay valid.
// expunge: takes the locks, checks that the file is the same inode and its
// first bytes are still exactly the snapshot (else nothing is removed: some
// other program rewrote the mailbox), copies the kept messages and every
// byte appended since the snapshot into a temporary file beside it, fsyncs
// it, renames it over the mbox and fsyncs the folder: a crash leaves the old
// or the new mailbox, never a broken one.
// A deliverer that was already waiting for the lock on the old file when
// the rename happens notices it (MboxWriter checks, once it holds the
// locks, that the path still names the file it locked) and starts over on
// the new file.
//
// Trust: as folder.hpp. All of this runs on the caller's thread and blocks
// it for the lock wait (at most the lock timeout) and the file I/O.
// Standards: RFC 4155 (mbox), the mboxrd quoting convention.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "store/folder.hpp"
#include "store/fs_ops.hpp"
#include "store/mbox.hpp"

namespace yubin::store {

class MboxFolder final : public Folder {
 public:
  // A missing file (or folder) is an empty mailbox. The locks and the
  // rewrite go through fs (tests inject a full disk), which must outlive
  // the folder.
  static Result<std::unique_ptr<MboxFolder>> open(const std::string& path,
                                                  const MboxLockSettings& lock = {},
                                                  Fs& fs = realFs());

  const std::vector<FolderMessage>& messages() const override { return list_; }
  Result<std::unique_ptr<MessageReader>> open(size_t index) override;
  Status markSeen(size_t index) override;
  Status expunge(const std::vector<size_t>& indexes) override;

 private:
  MboxFolder(std::string path, MboxLockSettings lock, Fs& fs)
      : path_(std::move(path)), lock_(std::move(lock)), fs_(fs) {}
  Status snapshot();
  Result<std::string> digestPrefix(uint64_t end) const;

  struct Span {
    uint64_t offset;      // From_ line
    uint64_t dataOffset;  // message data
    uint64_t endOffset;   // end of the data (separator follows)
  };
  std::string path_;
  MboxLockSettings lock_;
  Fs& fs_;
  UniqueFd fd_;  // read side; kept open for the whole session (see mbox_folder.cpp)
  ino_t ino_ = 0;
  dev_t dev_ = 0;
  uint64_t snapshotEnd_ = 0;
  uint64_t headEnd_ = 0;  // end of the pseudo message (0: none), always kept
  std::string base_;      // the first message's X-IMAPbase value, if any
  std::string snapshotDigest_;
  std::vector<FolderMessage> list_;
  std::vector<Span> spans_;
};

// The visible form of a whole (un-quoted) message.
std::string mboxVisible(std::string_view data);
// True when the header block of data has an X-IMAP: field (the pseudo
// message that holds a folder's UIDVALIDITY when it has no messages).
bool mboxIsPseudoMessage(std::string_view data);
// Calls fn(line, offset) for each line of the header block of data (up to
// the first empty line), without its line end; offset is where the line
// starts in data. fn returns false to stop.
void mboxHeaderLines(std::string_view data,
                     const std::function<bool(std::string_view, size_t)>& fn);
// pread(2) of at most n bytes at off, EINTR retried; 0 at the end.
Result<size_t> mboxPread(int fd, char* buf, size_t n, uint64_t off);
// The value of the X-IMAPbase: field in the header block of data ("" when
// there is none).
std::string mboxBaseField(std::string_view data);
// The pseudo message (From_ line to separator) that holds a folder's base
// ("<uidvalidity> <uidnext> [keyword...]") in an X-IMAP: field.
std::string mboxPseudoMessage(std::string_view base, int64_t now);
// A pull stream of the visible form of the message data in [begin, end)
// of fd (un-quoted, filtered). keepAlive is held as long as the reader
// (the owner of fd).
std::unique_ptr<MessageReader> mboxMessageReader(int fd, uint64_t begin, uint64_t end,
                                                 std::shared_ptr<void> keepAlive = {});

// One '>' off every line matching ^>+From , for bytes arriving in pieces.
// Exposed for tests.
class MboxUnquoter {
 public:
  // Appends the un-quoted form of what can be decided so far to out; keeps
  // an undecided line start for the next call (or finish()).
  void feed(std::string_view bytes, std::string& out);
  void finish(std::string& out);

 private:
  void drain(std::string& out, bool final);
  std::string held_;
  bool atLineStart_ = true;
};

}  // namespace yubin::store
