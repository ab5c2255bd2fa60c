// Mailbox: the minimal read side that POP3/IMAP (mrad) will build on, and
// its Maildir implementation. A message is named by its id, the Maildir
// file name before any ',' field or ':' info, which survives flag changes.
// Flags are Maildir info letters (D draft, F flagged, P passed, R
// replied, S seen, T trashed; lower-case letters are keywords), kept
// sorted. No UID lists here: that is IMAP's business.
//
// Trust level: runs as the mailbox owner; file names in the folder are
// not trusted to be well-formed (odd names are listed as they are, names
// starting with '.' are skipped), ids from callers are checked.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "store/fs_ops.hpp"
#include "store/message_source.hpp"

namespace yubin::store {

struct MailboxEntry {
  std::string id;        // stable name (see maildirId)
  std::string fileName;  // current file relative to the folder: "new/..." or "cur/..."
  bool isNew = false;    // still in new/ (never seen by a reader)
  uint64_t size = 0;     // from S= when present, else stat
  std::string flags;     // normalised info flags
  int64_t mtime = 0;     // internal date
};

class Mailbox {
 public:
  virtual ~Mailbox() = default;
  // All messages, ordered by id in natural order (digit runs compared as
  // numbers), which for Maildir names is delivery order.
  virtual Result<std::vector<MailboxEntry>> list() = 0;
  virtual Result<std::unique_ptr<MessageSource>> open(std::string_view id) = 0;
  // Replaces the flags; a message in new/ moves to cur/.
  virtual Status setFlags(std::string_view id, std::string_view flags) = 0;
  virtual Status remove(std::string_view id) = 0;
};

// One Maildir folder directory (the root or a .Folder).
class MaildirMailbox final : public Mailbox {
 public:
  explicit MaildirMailbox(std::string dir, Fs& fs = realFs()) : dir_(std::move(dir)), fs_(fs) {}
  Result<std::vector<MailboxEntry>> list() override;
  Result<std::unique_ptr<MessageSource>> open(std::string_view id) override;
  Status setFlags(std::string_view id, std::string_view flags) override;
  Status remove(std::string_view id) override;
  const std::string& dir() const { return dir_; }

 private:
  // The current file of id, from the last listing, rescanning once when
  // another process has renamed it since.
  Result<std::string> locate(std::string_view id, bool rescan);
  std::string dir_;
  Fs& fs_;
  std::map<std::string, std::string, std::less<>> where_;  // id -> fileName
};

// Natural order: digit runs compare by value, everything else bytewise.
bool naturalLess(std::string_view a, std::string_view b);

// One message file of a Maildir folder, as scanMaildir() finds it.
struct MaildirFile {
  std::string id;        // maildirId of the name
  std::string fileName;  // "new/<name>" or "cur/<name>"
  uint64_t diskSize = 0;
  int64_t mtime = 0;
  bool isNew() const { return fileName[0] == 'n'; }
  std::string_view name() const { return std::string_view(fileName).substr(4); }
};
// The regular files of <dir>/new and <dir>/cur (names starting with '.'
// skipped), one per id, in natural order of the id (delivery order). new/
// is read before cur/: a message moved between the two reads is seen
// twice (cur/ wins) rather than not at all. A missing new/ or cur/ is
// empty. The one directory scan under MaildirMailbox and MaildirFolder.
Result<std::vector<MaildirFile>> scanMaildir(const std::string& dir);

}  // namespace yubin::store
