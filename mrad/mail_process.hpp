// The mail process: mrad's post-authentication half. The login process
// starts [mrad] mail_processes of them (one per online CPU by default; fork
// + exec of mrad itself with --mail-process, so none holds anything of the login process's
// memory: no TLS key, no listeners, no passwords), each with its own handoff
// channel as descriptor 3, and hands a user's sessions always to the same
// one (FNV-1a of the canonical address), so all of a user's sessions meet
// in one process. Its entry function
// states what it does, in order: read the config -> drop to [mrad]
// mail_user/mail_group (keeping [global] users_group to read the users
// file), no-new-privs -> start the commit threads, set up the channel -> run
// the loop. The commit threads run the disk waits of IMAP APPEND commits
// (store/append_commit.hpp: the message's and the folder's fsyncs, the uid
// log's fdatasync) and touch nothing but the transaction they are given;
// everything else, every session and the shared folder states, is the
// loop's.
// Each handed-over session gets its user's INBOX (store::Folder) and a
// pop3::MailSession; the in-use table (mailbox path -> session) keeps a
// second POP3 session of the same mailbox out with [IN-USE]. It lives in
// the one process that serves the user, so a killed session can never leave it behind, and a
// restarted mrad starts with it empty.
// When the channel closes (the login process ended) every session ends
// without the UPDATE state and the process exits.
// Trust: runs as mail_user, the mailboxes' owner; reads commands of
// authenticated users (on the client's own socket, handed over by the login
// process, or through its proxy for TLS sessions), never a
// password, never pre-authentication input.
#pragma once

#include <string>

namespace yubin::mrad {

// The descriptor the handoff channel is on in the mail process.
inline constexpr int kChannelFd = 3;
inline constexpr const char* kMailProcessFlag = "--mail-process";

// The mail process's main: `mrad --mail-process CONFIG [-f]`. Returns the
// exit status.
int runMailProcess(const std::string& configPath, bool foreground);

}  // namespace yubin::mrad
