// MaildirFolder: a Maildir folder (the INBOX root, or later any Maildir++
// folder) opened for a retrieval session.
//
// Snapshot: the files of new/ and cur/ at open, ordered as MaildirMailbox
// orders them (natural order of the base name = delivery order). The uid
// is the base name before any ',' field or ':' info (maildirId), so it
// survives flag changes and the move to cur/; a base name that is not a
// valid POP3 uid (too long, odd bytes) is replaced by its digest. The CRLF
// size comes from a ,W= field when the name has one, else from the cache
// file <folder>/yubin-sizes ("<id> <size on disk> <crlf size>" lines,
// rewritten with atomicWrite when it changed), else from reading the file
// once.
// markSeen: new/<name> -> cur/<name>:2,S, or cur/ with S added to the
// flags. expunge: unlink, then fsync cur/ and new/. A file renamed by
// another process since the snapshot (an IMAP client setting a flag) is
// found again by its id.
//
// For IMAP later: flags beyond S and UIDs can hang off the same listing
// (the id is already the stable key).
// Trust: as folder.hpp; file names are untrusted (names starting with '.'
// and non-regular files are skipped).
// Standards: maildir(5), the Maildir ,S=/,W= name fields as Dovecot writes them.
#pragma once

#include <memory>
#include <string>

#include "base/result.hpp"
#include "store/folder.hpp"

namespace yubin::store {

inline constexpr const char* kMaildirSizeCache = "yubin-sizes";

class MaildirFolder final : public Folder {
 public:
  // dir: the folder directory holding cur/ new/ tmp/. A missing folder (no
  // mail delivered yet) is an empty one.
  static Result<std::unique_ptr<MaildirFolder>> open(const std::string& dir);

  const std::vector<FolderMessage>& messages() const override { return list_; }
  Result<std::unique_ptr<MessageReader>> open(size_t index) override;
  Status markSeen(size_t index) override;
  Status expunge(const std::vector<size_t>& indexes) override;

  // The current file of message index, relative to the folder ("cur/...").
  const std::string& fileName(size_t index) const { return files_.at(index); }

 private:
  explicit MaildirFolder(std::string dir) : dir_(std::move(dir)) {}
  // The folder's directory, or AT_FDCWD with full paths when it could not
  // be opened (no mail delivered yet).
  int at() const;
  std::string at(size_t index) const;
  Status scan();
  // Finds the file of index again after another process renamed it.
  Result<std::string> relocate(size_t index);

  std::string dir_;
  std::vector<FolderMessage> list_;
  std::vector<std::string> ids_;    // maildirId of each message
  std::vector<std::string> files_;  // "new/<name>" or "cur/<name>"
  std::vector<uint64_t> diskSizes_; // as listed: a read-size hint
  // Files are opened and renamed relative to it: one lookup per message
  // instead of a walk down the whole path.
  UniqueFd dirFd_;
};

}  // namespace yubin::store
