// MailStore and ImapMailbox: one user's mailboxes as an IMAP session sees
// them. MailStore is the folder tree (LIST, CREATE, DELETE, RENAME,
// SUBSCRIBE, STATUS, APPEND, SELECT); ImapMailbox is one selected mailbox:
// the session's view of its messages (sequence number = index + 1) with
// persistent UIDs, flags and keywords, kept in step with the disk by
// sync(), which reports what changed since the last call.
//
// Backends: Maildir++ (maildir_store.hpp: the INBOX is the root, folder
// "A.B" is the directory ".A.B" with mUTF-7 on disk as Dovecot and Courier
// lay it out; UIDs in a crash-safe uid list per folder; flags in the
// ":2,<flags>" info of the file name, keywords as Dovecot's letters a-z
// mapped by a per-folder keywords file), and MemoryStore (memory_store.hpp)
// for the protocol tests.
//
// Names are UTF-8, already decoded from the wire and normalised by
// imap::mailboxFromWire (INBOX in any case is "INBOX"); the hierarchy
// delimiter is delimiter(). A backend refuses any name that could leave the
// user's mail folder (empty components, ".", "..", "/", "~" at the start,
// NUL, control characters) with EINVAL.
//
// Concurrency: several sessions (in this process or others) and the
// delivery agent work on the same folders at once; each ImapMailbox sees the
// others' changes at its next sync(). Assigning UIDs is serialised across
// processes by the backend (a lock on the uid list).
//
// Trust: runs as the mailboxes' owner (mrad's mail process). File names and
// contents are untrusted; names from the client are checked here.
// CONDSTORE (RFC 7162): mod-sequences are optional. A backend opts in by
// overriding highestModSeq() to return the mailbox's HIGHESTMODSEQ (>= 1),
// filling MessageInfo::modSeq (>= 1) for every message of the view and
// MailboxStatus::highestModSeq, and bumping them: every flag or keyword
// change, APPEND, COPY/MOVE (destination) and expunge gives the messages
// concerned (for an expunge: the mailbox) a mod-sequence greater than any
// before, persisted so that it survives sessions and restarts; a change
// made by another writer must show as a greater mod-sequence at the next
// sync(). A backend that does not opt in keeps the defaults below (0:
// the session answers NOMODSEQ and refuses CHANGEDSINCE/UNCHANGEDSINCE).
// A backend may also override setFlagsUnchangedSince() to make the test
// atomic with the change across processes.
// Standards: RFC 3501 / RFC 9051 (UID, UIDVALIDITY, UIDNEXT, flags,
// \Recent), RFC 4315 (UIDPLUS: the UIDs APPEND and COPY assign), RFC 6154
// (special-use attributes), RFC 6851 (MOVE), RFC 7162 (CONDSTORE).
#pragma once

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "store/folder.hpp"  // MessageReader

namespace yubin::store {

// System flags as bits (\Recent is not a stored flag: see MessageInfo).
enum SystemFlag : uint8_t {
  kFlagSeen = 1,
  kFlagAnswered = 2,
  kFlagFlagged = 4,
  kFlagDeleted = 8,
  kFlagDraft = 16,
};

struct Flags {
  uint8_t system = 0;                 // SystemFlag bits
  std::vector<std::string> keywords;  // IMAP flag-keyword atoms, as first created (case kept)
  bool operator==(const Flags&) const = default;
};

struct MessageInfo {
  uint32_t uid = 0;
  Flags flags;
  bool recent = false;        // \Recent for this session (RFC 3501 §2.3.2)
  uint64_t size = 0;          // RFC822.SIZE: octets with every line end as CRLF
  int64_t internalDate = 0;   // seconds since the epoch (Maildir: the file's mtime)
  uint64_t modSeq = 0;        // 0 when the backend has no mod-sequences
  bool expunged = false;      // gone from disk, not yet reported (see sync)
};

// What sync() found since the previous call, for the untagged responses.
struct MailboxChanges {
  // Sequence numbers to announce with EXPUNGE, in the order to send them
  // (each is valid after the ones before it were removed: descending works).
  std::vector<uint32_t> expunged;
  // UIDs of the expunged messages, in the same order (for VANISHED later).
  std::vector<uint32_t> expungedUids;
  bool existsChanged = false;   // messages were added: send EXISTS (and RECENT)
  // Indexes (0-based, after the expunges) whose flags changed: FETCH FLAGS.
  std::vector<size_t> flagsChanged;
};

enum class FlagOp : uint8_t { Replace, Add, Remove };

struct AppendedUids {
  uint32_t uidValidity = 0;
  std::vector<uint32_t> uids;  // in the order of the messages
};

struct CopiedUids {
  uint32_t uidValidity = 0;        // of the destination
  std::vector<uint32_t> sourceUids;  // only those that were copied, ascending
  std::vector<uint32_t> destUids;    // item by item with sourceUids
};

// What the loops over a whole mailbox need of a message (EXPUNGE, UNSEEN,
// \Recent, SEARCH by flag or mod-sequence): no keywords, size or date, so
// a backend answers it without building a MessageInfo.
struct MessageBrief {
  uint32_t uid = 0;
  uint8_t system = 0;  // SystemFlag bits
  bool recent = false;
  bool expunged = false;
  uint64_t modSeq = 0;
};

inline MessageBrief briefOf(const MessageInfo& m) {
  return {m.uid, m.flags.system, m.recent, m.expunged, m.modSeq};
}
// The octets a view kept as a vector of MessageInfo holds (mbox and the
// memory store keep one per session).
inline size_t viewBytes(const std::vector<MessageInfo>& view) {
  size_t n = view.capacity() * sizeof(MessageInfo);
  for (const auto& m : view) {
    n += m.flags.keywords.capacity() * sizeof(std::string);
    for (const auto& k : m.flags.keywords) n += k.capacity() > 15 ? k.capacity() + 1 : 0;
  }
  return n;
}

class ImapMailbox;

// The session's view of a selected mailbox as a list: index i is sequence
// number i + 1. A small handle on the mailbox (it holds no messages): each
// element is built on access, by value, from what the backend keeps (the
// Maildir backend reads the folder state every session of the process
// shares). Valid until the mailbox's next sync(), setFlags(), expunge() or
// copy().
class MessageList {
 public:
  class Iterator {
   public:
    using value_type = MessageInfo;
    using difference_type = std::ptrdiff_t;
    Iterator(const ImapMailbox* box, size_t i) : box_(box), i_(i) {}
    MessageInfo operator*() const;
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }

   private:
    const ImapMailbox* box_;
    size_t i_;
  };
  explicit MessageList(const ImapMailbox& box) : box_(&box) {}
  size_t size() const;
  bool empty() const { return size() == 0; }
  MessageInfo operator[](size_t i) const;
  MessageInfo at(size_t i) const;  // std::out_of_range past the end (tests)
  MessageInfo back() const { return (*this)[size() - 1]; }
  uint32_t uid(size_t i) const;
  MessageBrief brief(size_t i) const;
  Iterator begin() const { return {box_, 0}; }
  Iterator end() const { return {box_, size()}; }

 private:
  const ImapMailbox* box_;
};

// One selected mailbox. Not thread-safe; one per session.
class ImapMailbox {
 public:
  virtual ~ImapMailbox() = default;

  virtual uint32_t uidValidity() const = 0;
  virtual uint32_t uidNext() const = 0;
  // The mailbox's HIGHESTMODSEQ as of the last sync() (or setFlags());
  // 0: this backend keeps no mod-sequences (NOMODSEQ). See the header comment.
  virtual uint64_t highestModSeq() const { return 0; }
  virtual bool readOnly() const = 0;
  // The keywords defined in this mailbox (for FLAGS / PERMANENTFLAGS), and
  // whether new ones may be created (a backend may hold a bounded number).
  virtual std::vector<std::string> keywords() const = 0;
  virtual bool canCreateKeywords() const = 0;

  // The session's view: index i is sequence number i + 1 (see MessageList).
  // What a session keeps per message is its sequence-number -> UID map as
  // of what it has been told (and its \Recent set); flags, sizes, dates and
  // mod-sequences may be read from state the backend shares between
  // sessions. A message expunged elsewhere and not yet reported keeps its
  // sequence number (expunged = true, its last known data) until a
  // sync(true).
  MessageList messages() const { return MessageList(*this); }
  virtual size_t messageCount() const = 0;
  virtual uint32_t uidAt(size_t i) const = 0;
  virtual MessageInfo messageAt(size_t i) const = 0;
  virtual MessageBrief briefAt(size_t i) const { return briefOf(messageAt(i)); }
  // How many messages of the view are \Recent (for the RECENT response).
  virtual uint32_t recentCount() const {
    uint32_t n = 0;
    for (size_t i = 0, end = messageCount(); i < end; ++i) n += briefAt(i).recent ? 1 : 0;
    return n;
  }
  // Octets this session's view holds of its own (not what it shares with
  // other sessions): what issue 8 item 6 bounds.
  virtual size_t sessionBytes() const = 0;

  // Looks at the disk: new messages get UIDs and are appended to the view;
  // flag changes by others update it. Messages gone from disk are removed
  // from the view and reported only when allowExpunge; otherwise they stay,
  // marked expunged (open() then fails with ENOENT), until a later call
  // with allowExpunge (RFC 3501 §7.4.1: no EXPUNGE during FETCH, STORE,
  // SEARCH). Cheap when nothing changed (directory mtimes).
  virtual Result<MailboxChanges> sync(bool allowExpunge) = 0;

  // A pull stream of message `index` as stored (LF or CRLF line ends).
  virtual Result<std::unique_ptr<MessageReader>> open(size_t index) = 0;

  // Changes the flags of the messages at these indexes; the view is
  // updated. Not necessarily durable on return (Maildir does not wait for
  // the disk; a power cut may lose the change, never a message). Keywords not yet defined are created
  // when canCreateKeywords(). EROFS when readOnly().
  // With mod-sequences, a message whose flags change gets a new modSeq
  // (also in the view); one whose flags stay as they were keeps its own.
  virtual Status setFlags(const std::vector<size_t>& indexes, FlagOp op, const Flags& flags) = 0;

  // STORE (UNCHANGEDSINCE n) (RFC 7162 §3.1.3): as setFlags, for the
  // messages whose modSeq is <= unchangedSince only; returns the indexes
  // that failed that test (for [MODIFIED]), ascending. The default checks
  // the view and then calls setFlags; a backend with other writers may
  // override it to test under its lock.
  virtual Result<std::vector<size_t>> setFlagsUnchangedSince(const std::vector<size_t>& indexes,
                                                             FlagOp op, const Flags& flags,
                                                             uint64_t unchangedSince) {
    std::vector<size_t> ok, failed;
    for (size_t i : indexes) {
      if (i < messageCount() && briefAt(i).modSeq > unchangedSince)
        failed.push_back(i);
      else
        ok.push_back(i);
    }
    if (!ok.empty())
      if (auto st = setFlags(ok, op, flags); !st) return st.error();
    std::sort(failed.begin(), failed.end());
    failed.erase(std::unique(failed.begin(), failed.end()), failed.end());
    return failed;
  }

  // Removes the messages at these indexes (only those with \Deleted; the
  // caller chooses them) from disk, durably. The view keeps them marked
  // expunged; the next sync(true) reports them, in the right order.
  virtual Status expunge(const std::vector<size_t>& indexes) = 0;

  // Copies the messages at these indexes into mailbox `dest` of the same
  // store (flags kept, \Recent set there); with move, they are then
  // expunged here as expunge() does. ENOENT: no such destination
  // ([TRYCREATE]).
  virtual Result<CopiedUids> copy(const std::vector<size_t>& indexes, const std::string& dest,
                                  bool move) = 0;

  // A file descriptor that becomes readable when the mailbox may have
  // changed on disk (inotify on the Maildir's new/ and cur/), or -1 when the
  // backend cannot tell (the session then syncs on a timer). After it turns
  // readable, drainChangeFd() empties it; sync() tells what changed.
  virtual int changeFd() const = 0;
  virtual void drainChangeFd() = 0;
};

struct MailboxListEntry {
  std::string name;        // UTF-8, e.g. "INBOX", "Archive.2024"
  bool noSelect = false;   // \Noselect: exists only as a parent
  bool hasChildren = false;
  bool subscribed = false;
  std::string specialUse;  // "\Sent", "\Drafts", "\Trash", "\Junk", "\Archive" or ""
};

struct MailboxStatus {
  uint32_t messages = 0;
  uint32_t recent = 0;
  uint32_t unseen = 0;
  uint32_t deleted = 0;
  uint32_t uidNext = 0;
  uint32_t uidValidity = 0;
  uint64_t size = 0;  // sum of RFC822.SIZE
  uint64_t highestModSeq = 0;
};

// Where the next step of a commit in steps (AppendTransaction) must run.
enum class CommitStep : uint8_t {
  // On the thread that owns the store and its sessions: the step touches
  // state the sessions of the process share (the Maildir folder states).
  Loop,
  // On any thread, while nothing else calls the transaction: disk writes
  // and fsyncs; the step touches nothing shared.
  Blocking,
  Done,  // committed: committedUids()
};

// An APPEND being received: the bytes go to a temporary file as they arrive
// (the parser streams the literal); commit() makes the message durable in
// the mailbox (file and directory fsync'd, and the UID it gets) and returns
// its UID.
//
// The same commit in steps, for a caller that keeps the disk waits off its
// event loop (mrad's mail process; store/append_commit.hpp drives it):
// startCommit(), then runStep() on the thread nextStep() names until it is
// Done; committedUids() then gives the UIDs. An error from runStep() ends
// the commit (nextStep() is Done, nothing of the message is left in the
// mailbox once the transaction is dropped, unless the error came after the
// message was placed: then it is there, as after a crash). A backend that
// does not split (mbox, the memory store) keeps these defaults: one Loop
// step that is commit() itself.
class AppendTransaction {
 public:
  virtual ~AppendTransaction() = default;
  virtual Status write(std::string_view bytes) = 0;
  // internalDate 0: now. Every step on the calling thread.
  virtual Result<AppendedUids> commit(const Flags& flags, int64_t internalDate) = 0;
  // Dropping a transaction without commit() removes the temporary file.

  virtual void startCommit(const Flags& flags, int64_t internalDate) {
    flags_ = flags;
    date_ = internalDate;
    step_ = CommitStep::Loop;
  }
  virtual CommitStep nextStep() const { return step_; }
  virtual Status runStep() {
    step_ = CommitStep::Done;
    auto r = commit(flags_, date_);
    if (!r) return r.error();
    uids_ = std::move(*r);
    return {};
  }
  virtual AppendedUids committedUids() const { return uids_; }

 private:
  Flags flags_;
  int64_t date_ = 0;
  CommitStep step_ = CommitStep::Done;
  AppendedUids uids_;
};

class MailStore {
 public:
  virtual ~MailStore() = default;

  virtual char delimiter() const = 0;

  // Every mailbox, INBOX first, then in name order; parents that exist
  // only as a path component are listed with noSelect.
  virtual Result<std::vector<MailboxListEntry>> list() = 0;
  // The subscribed names (they may name mailboxes that do not exist).
  virtual Result<std::vector<std::string>> subscriptions() = 0;
  virtual Status subscribe(const std::string& name, bool on) = 0;

  // EEXIST if it exists; parents are created as needed. specialUse: "" or
  // one of the five attributes above.
  virtual Status create(const std::string& name, const std::string& specialUse) = 0;
  // ENOENT, EINVAL for INBOX; a mailbox with children becomes \Noselect
  // (its messages are removed) as RFC 3501 §6.3.4 allows.
  virtual Status remove(const std::string& name) = 0;
  // Children move along. Renaming INBOX moves its messages into a new
  // mailbox `to` and leaves INBOX empty (RFC 3501 §6.3.5). EEXIST, ENOENT.
  virtual Status rename(const std::string& from, const std::string& to) = 0;

  virtual Result<MailboxStatus> status(const std::string& name) = 0;

  // readOnly: EXAMINE (no \Recent is taken, flags cannot change).
  virtual Result<std::unique_ptr<ImapMailbox>> select(const std::string& name, bool readOnly) = 0;

  // ENOENT: no such mailbox ([TRYCREATE]).
  virtual Result<std::unique_ptr<AppendTransaction>> beginAppend(const std::string& name) = 0;
};

inline MessageInfo MessageList::Iterator::operator*() const { return box_->messageAt(i_); }
inline size_t MessageList::size() const { return box_->messageCount(); }
inline MessageInfo MessageList::operator[](size_t i) const { return box_->messageAt(i); }
inline MessageInfo MessageList::at(size_t i) const {
  if (i >= size()) throw std::out_of_range("MessageList::at");
  return box_->messageAt(i);
}
inline uint32_t MessageList::uid(size_t i) const { return box_->uidAt(i); }
inline MessageBrief MessageList::brief(size_t i) const { return box_->briefAt(i); }

// The special-use mailboxes created for a user who has none yet (RFC 6154).
struct SpecialMailbox {
  const char* name;
  const char* use;
};
inline constexpr SpecialMailbox kDefaultMailboxes[] = {
    {"Drafts", "\\Drafts"}, {"Sent", "\\Sent"},       {"Trash", "\\Trash"},
    {"Junk", "\\Junk"},     {"Archive", "\\Archive"},
};

}  // namespace yubin::store
