// What became of one recipient's copy of a message, and the one table that
// turns it into an LMTP reply (per recipient, RFC 2033 §4.2) or an exit
// status of the delivery command (sysexits.h, as Postfix's local(8) and
// pipe(8) read them: 75 means "try again later", most others bounce).
// Pure functions: no I/O.
// Trust: none needed; runs inside mdad as the mailbox owner.
// Standards: RFC 2033, RFC 3463 (enhanced status codes), sysexits(3).
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.hpp"
#include "smtp/reply.hpp"

namespace yubin::mdad {

enum class Outcome : uint8_t {
  Delivered,    // the copy is on stable storage
  UnknownUser,  // no such user (or a bad address): 550 5.1.1 / EX_NOUSER
  NotLocal,     // resolves to remote addresses only; mdad does not forward
  Loop,         // Delivered-To: already names the recipient: 554 5.4.6
  BadMessage,   // empty, or a NUL byte in the header block: 554 5.6.0
  TooBig,       // over [mdad] max_message_size (the delivery command)
  OverQuota,    // the user's quota (or EDQUOT): 552 5.2.2 or 452 4.2.2
  NoSpace,      // ENOSPC: 452 4.3.1
  MailboxBusy,  // an mbox lock not obtained in time: 451 4.2.0
  TempFail,     // the user database cannot be read, an alias is broken
  Error,        // any other I/O error: 451 4.3.0
};

std::string_view outcomeName(Outcome o);

// True when the sender should try again later. Over quota is temporary
// only with [mdad] quota_temporary.
bool isTemporary(Outcome o, bool quotaTemporary);

// The LMTP reply for one recipient.
smtp::Reply replyFor(Outcome o, bool quotaTemporary);

// Exit statuses of the delivery command (sysexits.h values).
inline constexpr int kExOk = 0;
inline constexpr int kExUsage = 64;      // bad command line
inline constexpr int kExDataErr = 65;    // bad message or argument, mail loop, too big
inline constexpr int kExNoUser = 67;     // unknown recipient
inline constexpr int kExOsErr = 71;      // privileges could not be dropped
inline constexpr int kExCantCreat = 73;  // the mailbox cannot take it (over quota, permanent)
inline constexpr int kExTempFail = 75;   // try again later
inline constexpr int kExNoPerm = 77;     // the config file may not be read
inline constexpr int kExConfig = 78;     // the config is broken

int exitCodeFor(Outcome o, bool quotaTemporary);

// A store error (Maildir, mbox, quota scan) as an outcome: ENOSPC,
// EDQUOT, ETIMEDOUT (a lock timeout), anything else.
Outcome outcomeOfError(const Error& e);

// One answer for a recipient whose alias expands to several users: a
// temporary failure wins (the sender retries; users who already have it get
// a duplicate, which is better than a loss), then a permanent one, then
// Delivered. Between two failures of the same kind the first stays.
Outcome combine(Outcome sofar, Outcome next, bool quotaTemporary);

}  // namespace yubin::mdad
