// Converters between mbox (mboxrd) and Maildir, for yubinctl.
//
// What survives, byte for byte:
//  - The message bytes. mbox -> Maildir stores the un-quoted message as
//    it was between its From_ line and its separator, CRLF kept, minus the
//    Status: and X-Status: header fields; Maildir -> mbox writes the file
//    back quoted. So Maildir -> mbox -> Maildir gives back every file
//    exactly, with two exceptions: a file not ending in LF gains one LF
//    (mbox cannot represent its absence), and Status:/X-Status: fields
//    already inside a Maildir file are dropped.
//  - mbox -> Maildir -> mbox gives back the mbox file exactly when it is
//    in canonical form: From_ lines as mboxFromLine writes them (sender =
//    the Return-Path address, MAILER-DAEMON without one; UTC asctime
//    date), Status:/X-Status: as the last header fields in the form
//    written here, every message followed by one empty line.
// What is carried over:
//  - Flags: mbox Status: R <-> Maildir S (seen); Status: O (old) <-> the
//    message is in cur/ rather than new/ (any flag also puts it in cur/);
//    X-Status: A <-> R (replied), F <-> F (flagged), T <-> D (draft),
//    D <-> T (trashed). Written as "Status: [R]O" and "X-Status: " with
//    letters in the order A F T D, just before the empty line that ends
//    the header (with the line ending that line uses). Maildir P (passed)
//    and keyword letters have no mbox form and are lost.
//  - Internal dates: the From_ date becomes the Maildir file's mtime and
//    the mtime becomes the From_ date (seconds; UTC).
//  - Order: mbox order <-> Maildir names in natural order (delivery order).
// Not atomic as a whole: on an error the messages converted so far stay
// (the stats say how many); the mbox written is locked for the duration,
// and the mbox read is read-locked.
//
// Trust level: run by the mailbox owner or an administrator; contents are
// untrusted mail.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "store/fs_ops.hpp"
#include "store/maildir.hpp"
#include "store/mbox.hpp"

namespace yubin::store {

struct ConvertStats {
  uint64_t messages = 0;
  uint64_t bytes = 0;  // message bytes (as stored in the Maildir files)
};

// Appends every message of mboxPath to folder of the Maildir at root
// (created if needed); names from names.
Result<ConvertStats> mboxToMaildir(const std::string& mboxPath, const std::string& root,
                                   std::string_view folder, MaildirNameGenerator& names,
                                   Fs& fs = realFs());
// Appends every message of folder of the Maildir at root to mboxPath
// (created if needed), fsync'ed once at the end.
Result<ConvertStats> maildirToMbox(const std::string& root, std::string_view folder,
                                   const std::string& mboxPath, const MboxLockSettings& lock = {},
                                   Fs& fs = realFs());

// ---- the pieces, exposed for tests and for mrad's future mbox backend ----

// Removes every Status: and X-Status: field (with continuation lines)
// from the header block; the first value of each goes to *status and
// *xstatus (blank-trimmed).
std::string stripStatusHeaders(std::string_view msg, std::string* status, std::string* xstatus);
// Inserts "Status: <status>" / "X-Status: <xstatus>" (each only when not
// empty) at the end of the header block. If the message has no empty line
// the fields go at its end (after adding an LF if it lacks one).
std::string insertStatusHeaders(std::string_view msg, std::string_view status,
                                std::string_view xstatus);

struct MaildirPlacement {
  std::string flags;  // Maildir info flags
  bool intoCur = false;
};
MaildirPlacement maildirFlagsFromMbox(std::string_view status, std::string_view xstatus);
// {Status, X-Status} values for a Maildir message.
std::pair<std::string, std::string> mboxStatusFromMaildir(std::string_view flags, bool inCur);

// The address of the first Return-Path: field of the header block ("" for
// <> or when there is none).
std::string returnPathOf(std::string_view msg);

}  // namespace yubin::store
