// Mailbox usage for quota checks: bytes and messages of a Maildir (the
// root and every Maildir++ folder, new/ and cur/; sizes from S= in the
// file name when present, else lstat) or of an mbox (file size, From_
// separators counted). Dovecot's maildirsize cache is not kept: usage is
// recomputed, which costs a directory scan per delivery.
//
// Trust level: runs as the mailbox owner; file names are untrusted (a
// bogus S= can only lie about the owner's own usage).
#pragma once

#include <cstdint>
#include <string>

#include "base/result.hpp"

namespace yubin::store {

struct Usage {
  uint64_t bytes = 0;
  uint64_t messages = 0;
};

// A missing Maildir or mbox is empty, not an error.
Result<Usage> maildirUsage(const std::string& root);
Result<Usage> mboxUsage(const std::string& path);

// True when adding one message of incomingSize bytes would go over either
// limit (0 = no limit). Exactly at the limit is allowed. Never overflows.
bool wouldExceed(const Usage& usage, uint64_t quotaBytes, uint64_t quotaMessages,
                 uint64_t incomingSize);

}  // namespace yubin::store
