// The maildrop: where yubin-sendmail leaves messages for mtad's pickup
// (docs in man/yubin-sendmail.8, section FILES). Owns the drop file format
// (encode and strict parse) and the one function that writes a drop file.
//
// A drop file is a small text header, then the message:
//
//   YUBIN-MAILDROP 1\n
//   sender <addr>\n        optional: the -f request ("<>" = null sender);
//                          honoured only for root and [sendmail] trusted_users
//   fullname <text>\n      optional: -F, for a From: the pickup adds
//   rcpt <addr>\n          one or more, in order
//   size <n>\n             octets of message that follow, exactly
//   \n
//   <n octets: the message, CRLF line ends, no dot stuffing>
//
// What the file says about who sent it is never trusted: the pickup takes
// the submitting user from the file's owner (fstat), and the sender rule
// from its configuration. A drop file is written under a name starting with
// '.' and renamed to its final name once complete and fsync'd; the pickup
// ignores dot names, so it never reads a half-written file.
//
// Trust: the parser reads files any local user can write (through the
// setgid yubin-postdrop): hostile input, checked field by field, bounded.
// The writer runs in yubin-postdrop (setgid yubin-drop) and in
// yubin-sendmail run by root.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace yubin::mtad {

inline constexpr std::string_view kMaildropMagic = "YUBIN-MAILDROP 1";
inline constexpr size_t kMaxDropRecipients = 10000;
inline constexpr size_t kMaxDropFieldLine = 1024;  // one header line, LF included
// The hard cap yubin-postdrop enforces (it reads no configuration); the
// pickup applies [mtad] max_message_size on top.
inline constexpr uint64_t kMaxDropFile = 256ull << 20;

struct DropHeader {
  std::optional<std::string> sender;  // -f as given ("" = none, "<>" null sender)
  std::optional<std::string> fullName;
  std::vector<std::string> recipients;
  uint64_t size = 0;
};

// The header for a message of msg.size octets. Values holding CR, LF or NUL
// are refused (EINVAL), as are more than kMaxDropRecipients recipients or an
// over-long line.
Result<std::string> encodeDropHeader(const DropHeader& header);

struct ParsedDrop {
  DropHeader header;
  size_t messageOffset = 0;  // where the message starts in the file
};

// Parses a whole drop file. Anything unexpected (bad magic, unknown or
// repeated field, no recipient, a size that disagrees with the bytes that
// follow, over-long lines, NUL/CR in the header) is an Error with errnum
// EBADMSG.
Result<ParsedDrop> parseDrop(std::string_view file);

// The calls writeDropFile makes to put a file on stable storage, behind a
// small interface so that tests can see their order and fail any one.
class DropSync {
 public:
  virtual ~DropSync() = default;
  virtual Status fsyncFile(int fd, const std::string& path);
  virtual Status rename(const std::string& from, const std::string& to);
  // Makes the new name in `dir` durable. fsync(2) of the folder when this
  // process may open it (root, the pickup); yubin-postdrop may not: its
  // group has write and search on the mode 1730 folder but no read, and
  // opening a folder needs read. It then syncs the file system holding the
  // file (syncfs(2) through `fileFd`), which commits the rename with
  // whatever else is pending there: heavier, but as durable.
  virtual Status syncDir(const std::string& dir, int fileFd);
};
DropSync& realDropSync();

// Writes `bytes` as a new drop file in `dir`: a ".<name>" temp file created
// O_EXCL|O_NOFOLLOW mode 0600, written, made 0644, fsync'd, renamed to
// "<name>", and the rename made durable (DropSync::syncDir). Only then does
// it return the final name: a success means the message survives a crash
// (sendmail's 0 exit promises that). A failure before the rename leaves
// nothing; a failure of the last sync leaves the complete file in place
// (the pickup may still take it: a possible duplicate, never a loss).
Result<std::string> writeDropFile(const std::string& dir, std::string_view bytes,
                                  DropSync& sync = realDropSync());

// True for a name the pickup considers: not starting with '.', no '/',
// at most 64 octets of [A-Za-z0-9._-].
bool isDropName(std::string_view name);

}  // namespace yubin::mtad
