// MaildirStore: the MailStore interface (mail_store.hpp) over a Maildir++
// tree laid out as Dovecot lays it out, so an existing Dovecot Maildir can
// be served as it is and both can work on it.
//
// Layout: the root is the INBOX (cur/ new/ tmp/); mailbox "A.B" is the
// directory <root>/.A.B with the name in modified UTF-7 (RFC 3501 §5.1.3;
// the delimiter is '.'), its own cur/ new/ tmp/ and a "maildirfolder"
// marker. A directory without cur/ is a \Noselect parent (what DELETE of a
// mailbox with children leaves). Directories whose names do not decode to
// an acceptable mailbox name (e.g. Dovecot's "..DOVECOT-TRASH") are skipped.
// Root files: "subscriptions" (one mUTF-7 name per line, as Dovecot's
// Maildir++ layout has it; Dovecot's "V\t2" format is read too),
// "yubin-special-use" ("<attribute> <mUTF-7 name>" lines), "yubin-store"
// (marker: the default special-use mailboxes were created once; a user who
// deletes them does not get them back), "yubin-uidvalidity" (uid_list.hpp).
// Per folder: "yubin-uidlist" (UIDs, crash-safe, see uid_list.hpp;
// imported from "dovecot-uidlist" when ours is missing), "dovecot-keywords"
// ("<n> <keyword>" lines: keyword n is the info letter 'a' + n, at most 26),
// "yubin-sizes" (the CRLF size cache MaildirFolder also keeps).
//
// Messages: flags are the ":2,<info>" letters D F R S T (T = \Deleted),
// other upper-case letters (P) are kept as they are; setFlags renames
// (atomic) without fsyncing the directory (a flag change is not waited for,
// as Dovecot's mail_fsync = optimized). The first read-write sync moves new/
// files to cur/ and takes \Recent (the uid list's first-recent UID).
// Size = octets with CRLF line ends (,W= field, the size cache, or counted
// once); internal date = file mtime (APPEND sets it with futimens).
// APPEND streams into tmp/, fsync, link into cur/ with ,S= ,W= and the
// flags, directory fsync, then the UID (its log batch fdatasync'd before
// the commit returns). The commit comes in steps (mail_store.hpp,
// CommitStep): the fsyncs and the link are Blocking steps that touch only
// the transaction's file, run by mrad on a worker thread; the keywords,
// the UID and the shared state are Loop steps (maildir_store.cpp,
// MaildirAppend). The folder state is told the name to expect, so the
// file appearing before its UID is not taken for another writer's, and
// gets the message once its UID is on disk.
// COPY links the file under a new
// unique name into the destination's cur/ (copies the bytes when link
// fails: EXDEV, EPERM, EMLINK); MOVE = COPY then expunge.
//
// Shared state: the sessions of one process that have a folder selected
// share one MaildirFolderState (per directory, reference-counted by them):
// the message list (UID, file name, size, internal date, mod-sequence),
// loaded once and then kept in step incrementally; it lingers a short
// while after its last session (30 s, a few folders at most). An inotify
// descriptor of the state on new/ and cur/ tells whether anything happened that the
// state does not already show (each event's name is checked against it;
// without inotify: the directory mtimes, one in the last second counting
// as "maybe changed again"); only then is the folder listed again and
// diffed by name, and only a differing name makes it read the uid list.
// Changes made through a session (STORE, EXPUNGE, APPEND, new/ -> cur/)
// update the state directly and stamp the messages with a new generation;
// a session keeps only its sequence-number -> UID map (4 octets a message)
// and its \Recent ranges, reads flags, sizes, dates and mod-sequences from
// the state, and its sync() reports the messages stamped since its last
// merge (not those it changed itself). A message removed from the state
// stays as a tombstone (its last flags, size, date) until every session
// that had it has reported the expunge at a sync(true), so a session still
// answers FETCH FLAGS by its old sequence numbers until then. Messages are
// followed by their Maildir id across renames by other writers.
// changeFd() is an inotify descriptor on new/ and cur/. If the uid list
// had to be rebuilt under a new UIDVALIDITY while a mailbox is selected,
// sync() fails with ESTALE (the session must end; clients resync).
//
// Trust: runs as the mailboxes' owner. File and directory names on disk
// and every file's contents are untrusted; mailbox names from the client
// are checked (checkMailboxName) before they become paths.
// Standards: RFC 3501 / 9051, RFC 4315 (UIDPLUS), RFC 6154 (SPECIAL-USE),
// RFC 6851 (MOVE); maildir(5), Maildir++; Dovecot's dovecot-uidlist (read)
// and dovecot-keywords (read and written).
// CONDSTORE (RFC 7162): the uid list keeps HIGHESTMODSEQ and each
// message's MODSEQ with the flag letters it had then (uid_list.hpp). A STORE
// renames and updates the list under its lock (the UNCHANGEDSINCE test
// too); a load that finds new files, files gone, or info letters that are
// not the list's (another writer: Dovecot, a Maildir client, mdad) takes
// the next mod-sequence for all of them in one write.
// Not here: a message structure cache.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "base/result.hpp"
#include "store/mail_store.hpp"

namespace yubin::store {

inline constexpr const char* kSpecialUseFile = "yubin-special-use";
inline constexpr const char* kStoreMarkerFile = "yubin-store";
inline constexpr const char* kKeywordsFile = "dovecot-keywords";
inline constexpr const char* kSubscriptionsFile = "subscriptions";

// The shared folder states of one process (see "Shared state" above):
// every store opened with the same object shares one state per folder.
// watches: the process's kept inotify descriptors (watch_pool.hpp), which
// mrad's mail process shares with its mbox stores; nullptr: their own.
class MaildirFolderStates;
class WatchPool;
std::shared_ptr<MaildirFolderStates> makeMaildirFolderStates(
    std::shared_ptr<WatchPool> watches = nullptr);
// How many folder states no session holds are kept for a while (a client
// that selects the folder again soon does not load its list again).
size_t lingeringFolderStates(const MaildirFolderStates& states);

// root: the user's Maildir (created if missing). The first open for a user
// without folders creates kDefaultMailboxes (subscribed, with their
// attributes). states: the process's folder states (mrad's mail process
// passes one for all its sessions); nullptr: this store's own.
Result<std::unique_ptr<MailStore>> openMaildirStore(
    const std::string& root, std::shared_ptr<MaildirFolderStates> states = nullptr);

// The directory of mailbox `name` (checked) under root: root for INBOX,
// else root + "/." + mUTF-7 of the name. EINVAL for a refused name.
Result<std::string> maildirStorePath(const std::string& root, const std::string& name);

}  // namespace yubin::store
