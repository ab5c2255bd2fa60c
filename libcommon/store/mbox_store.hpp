// MboxStore: the MailStore interface (mail_store.hpp) over mbox files
// (mboxrd, as mdad delivers them), with the IMAP state kept inside the
// files as UW-IMAP and Dovecot keep it, so either can work on them too.
//
// Layout (Dovecot's "mbox:<root>:INBOX=<inbox>" in spirit): INBOX is the
// user's mbox file from the users file; every other mailbox is one mbox
// file directly in the folder root, named by its full name in modified
// UTF-7 ("Work.2024" is the file <root>/Work.2024), so a mailbox can have
// children and still hold mail (a file cannot be a directory, so the
// hierarchy is in the name, as in Maildir++). Our users have no home, so
// the root is "<inbox>.folders" beside the INBOX file unless the caller
// names another (mboxFolderRoot). Names that could leave the root are
// refused (checkMailboxName), and so are names whose file would end in
// ".lock" (it would be another mailbox's dot-lock). Root files: names
// starting with '.' are never mailboxes: ".subscriptions" (one mUTF-7 name
// a line, as Dovecot keeps it for mbox), ".yubin/" (special-use list,
// UIDVALIDITY allocator, the "default mailboxes created" marker, APPEND
// spool files).
//
// State in the files: the first message carries "X-IMAPbase: <uidvalidity>
// <uidnext> [keyword...]" (the mailbox's keywords, at most 26); a mailbox
// without messages holds it in a pseudo message with "X-IMAP:" instead
// (never shown: not to IMAP, not to POP3). Each message carries "X-UID:",
// "Status:" (R = \Seen, O = not \Recent any more), "X-Status:" (A
// \Answered, F \Flagged, T \Draft, D \Deleted) and "X-Keywords:". These
// fields are hidden from clients (MboxMetaFilter): FETCH never shows them
// and RFC822.SIZE does not count them. UIDNEXT is the larger of the base's
// and the highest X-UID + 1 (an APPEND writes X-UID without touching the
// base). Messages without an X-UID (mdad's deliveries) or whose X-UID is
// not above the one before get the next UIDs, in file order, at the next
// sync, status or write. The internal date is the From_ line's date.
// \Recent: a message without O is recent; the first read-write session to
// see it takes it (writes O); EXAMINE does not.
//
// Writes (UID assignment, STORE, EXPUNGE, COPY/APPEND into a mailbox that
// needs UIDs assigned) rewrite the whole file: under the same locks mdad
// and POP3 take (fcntl, then the dot-lock, lock_timeout), the file is read
// again, a new one is written beside it (".<name>.yubin-<pid>"), fsync'd,
// renamed over the mbox and the folder fsync'd. A crash leaves the old or
// the new mailbox, never a broken one and never a lost message; a reader
// holding the old file keeps a consistent snapshot. We chose this over
// editing in place (which UW-IMAP and Dovecot do when the padding allows)
// because an interrupted in-place edit can cut a message; the cost is a
// write of the whole file per change (see docs/architecture.md).
// APPEND and COPY into a mailbox whose messages all have UIDs append at the
// end like a delivery (MboxWriter: truncated back on failure). A deliverer
// waiting for the lock of a file we replace starts over on the new one
// (MboxWriter checks the path after locking).
//
// sync() looks at the file's inode, size and mtime (nanoseconds) and reads
// it again only when one changed: changes by other sessions, other
// programs and deliveries are found by comparing UIDs and flags. A file
// replaced under a new UIDVALIDITY, or removed, expunges everything the
// view held. changeFd() is an inotify descriptor on the folder that holds
// the file (the file itself is replaced by every rewrite), so it also
// wakes for other files there; sync() is cheap then. A closed mailbox's
// descriptor is kept for the next SELECT (MboxStoreSettings::watches).
// Mod-sequences: none (highestModSeq() is 0, NOMODSEQ).
//
// Trust: runs as the mailboxes' owner (mrad's mail process). File contents
// (headers included: a client or a sender may put X-UID in a message) and
// directory entries are untrusted; names from the client are checked.
// Memory: one message at a time while a file is read or rewritten (COPY
// holds the copied message), plus the view (a few dozen bytes a message).
// Standards: RFC 3501 / 9051, RFC 4315 (UIDPLUS), RFC 6154 (SPECIAL-USE),
// RFC 4155 (mbox, mboxrd), UW-IMAP's and Dovecot's X-IMAP, X-IMAPbase,
// X-UID, Status, X-Status and X-Keywords fields.
#pragma once

#include <memory>
#include <string>

#include "base/result.hpp"
#include "store/fs_ops.hpp"
#include "store/mail_store.hpp"
#include "store/mbox.hpp"

namespace yubin::store {

class WatchPool;

struct MboxStoreSettings {
  std::string inbox;       // the user's mbox file (INBOX)
  std::string folderRoot;  // the other mailboxes; "" = mboxFolderRoot(inbox)
  MboxLockSettings lock;   // for every file (lock_timeout, dot-lock policy)
  // Create kDefaultMailboxes (subscribed) on the first open for a user.
  bool createDefaults = true;
  Fs* fs = nullptr;  // nullptr: realFs(); the rewrite's calls go through it
  // Where a closed mailbox's change descriptor is kept for the next SELECT
  // (watch_pool.hpp): mrad's mail process passes the one its Maildir
  // stores use; nullptr: the store's own.
  std::shared_ptr<WatchPool> watches;
};

// "<inbox>.folders".
std::string mboxFolderRoot(const std::string& inbox);

Result<std::unique_ptr<MailStore>> openMboxStore(const MboxStoreSettings& settings);

// The file of mailbox `name` (checked; EINVAL when refused).
Result<std::string> mboxStorePath(const MboxStoreSettings& settings, const std::string& name);

}  // namespace yubin::store
