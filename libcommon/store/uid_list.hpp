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
Status writeUidList(const std::string& dir, const UidList& list);

// Dovecot's list: "3 V<validity> N<next> ..." then "<uid> [fields] :<name>"
// lines, or version 1 "1 <validity> <next>" then "<uid> <name>". The ids
// are maildirId of the names; firstRecent = uidNext. nullopt when missing
// or not well-formed (UIDs not ascending, not below N, ...).
std::optional<UidList> parseDovecotUidList(std::string_view text);

// A fresh UIDVALIDITY for a folder under root (see the header comment).
Result<uint32_t> allocateUidValidity(const std::string& root);

}  // namespace yubin::store
