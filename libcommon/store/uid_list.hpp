// The per-folder UID list of the Maildir IMAP backend (maildir_store.hpp):
// which UID each message (by its Maildir id) has, the folder's UIDVALIDITY
// and UIDNEXT, and the first UID still \Recent (not yet shown to a
// read-write session). Plus the root-wide UIDVALIDITY allocator and the
// import of Dovecot's dovecot-uidlist, so a migrated tree keeps its UIDs.
//
// File <folder>/yubin-uidlist, text:
//   yubin-uidlist 1 V<uidvalidity> N<uidnext> R<first recent uid>
//   <uid> <maildir id>          (UIDs strictly ascending, all < uidnext)
//   ...
//   end <number of uid lines>
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

struct UidList {
  uint32_t uidValidity = 0;
  uint32_t uidNext = 1;
  uint32_t firstRecent = 1;  // UIDs >= this are \Recent for the next read-write session
  std::vector<std::pair<uint32_t, std::string>> entries;  // ascending UID
};

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
