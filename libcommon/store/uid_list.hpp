// The per-folder UID list of the Maildir IMAP backend (maildir_store.hpp):
// which UID each message (by its Maildir id) has, the folder's UIDVALIDITY
// and UIDNEXT, the first UID still \Recent (not yet shown to a read-write
// session), and the CONDSTORE mod-sequences (RFC 7162): HIGHESTMODSEQ and
// each message's MODSEQ with the flags it had when it got it. Plus the
// root-wide UIDVALIDITY allocator and the import of Dovecot's
// dovecot-uidlist, so a migrated tree keeps its UIDs.
//
// File <folder>/yubin-uidlist, text (version 2):
//   yubin-uidlist 2 V<uidvalidity> N<uidnext> R<first recent uid> M<highestmodseq>
//   <uid> <modseq> <flags token> <maildir id>   (UIDs strictly ascending, all
//   ...                                          < uidnext; 1 <= modseq <= M)
//   end <number of uid lines>
// The flags token is "F" + the Maildir info letters the file had when the
// message got its modseq ("F" for none, see flagsToken()); a file found
// with other letters was changed by a writer that did not update this list
// (Dovecot, a Maildir client, a crash between rename and list update), and
// the next write gives it a new modseq. Version 1 (the same without M and
// without the two middle columns) is still read: its messages get modseq 1
// and an unknown token (""), which the next write fills in without a bump;
// the list is then written as version 2 (an older yubin reading that would
// rebuild it under a new UIDVALIDITY: no UID is ever reused).
// Change log <folder>/yubin-uidlist.log (so that a STORE, an APPEND or an
// expunge does not rewrite a list of every message):
//   yubin-uidlog 1 V<uidvalidity> B<the list's M>   bound to that list
//   E <uid> <modseq> <flags token> <maildir id>    entry new or changed
//   X <uid>                                        entry gone
//   H <uidnext> <first recent> <highestmodseq>     ends a batch
// One batch per change, appended under the lock and fdatasync'd (a batch
// of flag changes alone is not: see saveUidListChange). A reader
// applies the complete batches in order (the last record of a UID wins);
// what follows the last "H" line -- a write cut short by a crash -- is
// ignored. The log is folded into the list (rewritten whole, and a fresh
// log holding only its header written after it) once it is larger than
// kUidLogMinBound plus 16 bytes per message; a log whose V or B does not
// match the list (left from before a rewrite) is ignored. The list file
// itself stays version 2: a reader that does not know the log sees an
// older but sound state.
// Crash safety: the file is only ever replaced whole with atomicWrite
// (temp file, fsync, rename, directory fsync), so a reader sees the old
// list or the new one. Anything else -- a truncated file, a missing "end"
// line, a count that does not match, UIDs out of order or not below
// UIDNEXT, garbage -- reads as corrupt, and the caller rebuilds the list
// under a NEW UIDVALIDITY: clients then drop their caches, and no UID can
// ever be reused or duplicated under one UIDVALIDITY.
// Serialisation: every read-modify-write happens under an exclusive flock
// on <folder>/yubin-uidlist.lock (UidListLock); flock locks belong to the
// open file description, so two handles in one process exclude each other
// as two processes do.
// UIDVALIDITY: time-based, max(now, last + 1), the last value kept in
// <root>/yubin-uidvalidity under a lock on <root>/yubin-store.lock, so a
// re-created folder never gets a value it had before.
//
// Trust: runs as the mailbox owner; the files are untrusted input (checked
// strictly, never trusted to be complete).
// Standards: RFC 3501 §2.3.1.1 (UID, UIDVALIDITY); Dovecot's
// dovecot-uidlist versions 1 and 3 (read only).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::store {

inline constexpr const char* kUidListFile = "yubin-uidlist";
inline constexpr const char* kDovecotUidListFile = "dovecot-uidlist";

struct UidEntry {
  uint32_t uid = 0;
  std::string id;      // maildirId of the file name
  uint64_t modSeq = 1;
  std::string flags;   // flagsToken() of the file at modSeq; "" = not known yet
  bool operator==(const UidEntry&) const = default;
};

struct UidList {
  uint32_t uidValidity = 0;
  uint32_t uidNext = 1;
  uint32_t firstRecent = 1;  // UIDs >= this are \Recent for the next read-write session
  uint64_t highestModSeq = 1;  // >= every entry's modSeq; bumped by any change
  std::vector<UidEntry> entries;  // ascending UID
  // Not stored: the base of the change log that readUidList applied (the
  // list file's M), 0 when none did; saveUidListChange appends to that log
  // only.
  uint64_t logBase = 0;
};

// The token a list line keeps for the info letters of a file name ("" for
// a file in new/): "F<letters>", or "#<hash>" when they hold a character
// a list line cannot (space, control, non-ASCII).
std::string flagsToken(std::string_view info);

// An exclusive flock on a lock file, released when destroyed.
class FileLock {
 public:
  static Result<FileLock> acquire(const std::string& path);
  FileLock(FileLock&&) = default;
  FileLock& operator=(FileLock&&) = default;

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// The lock that serialises changes of dir's uid list.
Result<FileLock> lockUidList(const std::string& dir);

// Text form and strict parse (nullopt: corrupt).
std::string formatUidList(const UidList& list);
std::optional<UidList> parseUidList(std::string_view text);

enum class UidListState { Ok, Missing, Corrupt };
struct UidListRead {
  UidListState state = UidListState::Missing;
  UidList list;
};
// Reads dir's yubin-uidlist; I/O errors other than ENOENT are errors.
Result<UidListRead> readUidList(const std::string& dir);
// Replaces dir's list whole (and removes the change log, folded in).
Status writeUidList(const std::string& dir, const UidList& list);

// The change log beside the list (see the header comment).
inline constexpr const char* kUidLogFile = "yubin-uidlist.log";
inline constexpr const char* kUidLogMagic = "yubin-uidlog 1";
// The log is folded into the list when it is larger than this plus 16
// bytes per message.
inline constexpr uint64_t kUidLogMinBound = uint64_t{64} << 10;
// Records `after` -- the list as read under the lock, then changed -- as
// one batch: the entries of the UIDs `changed` (new or with a new modseq or
// token), the UIDs `removed`, and the counters; appended to the log and
// fdatasync'd, or, once the log has grown past its bound, the whole list
// rewritten. Called under the lock. UidLogSync::Lazy (flag changes of
// STORE, and \Recent claims: nothing a client was promised) leaves out the
// fdatasync of an appended batch: a power cut may lose it, and the
// torn-record rule covers a cut batch; a rewrite of the whole list is
// durable either way.
enum class UidLogSync : uint8_t { Durable, Lazy };
Status saveUidListChange(const std::string& dir, const UidList& after,
                         const std::vector<uint32_t>& changed,
                         const std::vector<uint32_t>& removed,
                         UidLogSync sync = UidLogSync::Durable);
// One batch's text, and the replay of a log over its list (false: the log
// is not this list's or is damaged before its last complete batch, and
// nothing should be taken from it; the caller keeps the list unchanged).
std::string formatUidLogBatch(const UidList& after, const std::vector<uint32_t>& changed,
                              const std::vector<uint32_t>& removed);
bool applyUidLog(UidList& list, std::string_view text);
// The first-recent UID of dir's list from its header line alone (cheap);
// nullopt when the list is missing or its header unreadable.
std::optional<uint32_t> readFirstRecent(const std::string& dir);

// Dovecot's list: "3 V<validity> N<next> ..." then "<uid> [fields] :<name>"
// lines, or version 1 "1 <validity> <next>" then "<uid> <name>". The ids
// are maildirId of the names; firstRecent = uidNext. nullopt when missing
// or not well-formed (UIDs not ascending, not below N, ...).
std::optional<UidList> parseDovecotUidList(std::string_view text);

// A fresh UIDVALIDITY for a folder under root (see the header comment).
Result<uint32_t> allocateUidValidity(const std::string& root);

}  // namespace yubin::store
