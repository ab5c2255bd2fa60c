// yubinctl queue and mailq: the admin's view of the mail queue and the
// actions on it.
//
//   queue list [--json]        reads the spool ([global] spool_dir) itself,
//                              read-only, so it works while mtad is down
//   queue show ID [--json]     these ask yubin-master, which passes the
//   queue flush                command to mtad (ipc QueueCommand); mtad acts
//   queue retry|hold|release|  through its queue manager, never this program
//         delete|bounce ID
//   mailq                      the list as mtad sees it, in Postfix's format
//
// Trust: run by the admin. `list` reads a spool owned by yubin-mta without
// creating, moving, locking or deleting anything; the listing
// (libcommon/queue/listing.hpp) opens files without following symlinks or
// blocking on FIFOs. The other commands decide nothing: the master checks
// the caller's credentials and mtad validates every queue ID again.
// Everything printed from the queue (addresses, replies, ENVID) is escaped
// for the terminal or for JSON.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "ipc/ipc.hpp"

namespace yubin::config {
class Config;
}

namespace yubin::ctl {

// args: the words after "queue" (a leading "queue" is skipped too), e.g.
// {"list", "--json"}. `now` is the time ages are computed from (seconds
// since the epoch; tests pin it). Returns 0 ok, 1 error (message on err),
// 2 usage error.
// `ask` sends one message to yubin-master and returns its reply (an
// ErrorReply comes back as an Error); list does not use it.
using Asker = std::function<Result<ipc::Message>(const ipc::Message&)>;

int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err, int64_t now, const Asker& ask);
int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err, int64_t now);
int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err, const Asker& ask);

// mailq: args are the words after the program name (none are taken).
int runMailq(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
             const Asker& ask);

// --- the renderings, pure (tests pin them) ---------------------------------

// Postfix's mailq format: a header line; per message the queue ID with '*'
// (being delivered) or '!' (on hold) after it, the size, the arrival time
// (local time, "Sat Nov 28 03:56:28") and the sender ("MAILER-DAEMON" for
// <>), then each recipient not yet done on a line of its own at column 48,
// after the reason of its deferral in parentheses (printed once for
// recipients that share it); a blank line; and "-- N Kbytes in M
// Requests." at the end, or "Mail queue is empty".
std::string renderMailq(const std::vector<ipc::QueueMessageInfo>& messages);
// `queue show`: the envelope, then per recipient its ORCPT, NOTIFY, status,
// attempts, last and next attempt (UTC) and last reply.
std::string renderShow(const ipc::QueueMessageInfo& m, int64_t now);
// `queue show --json`: {"version":1,"message":{...}} and a newline.
std::string renderShowJson(const ipc::QueueMessageInfo& m);

}  // namespace yubin::ctl
