// Mailbox usage for quota checks: bytes and messages of a Maildir (the
// root and every Maildir++ folder, new/ and cur/; sizes from S= in the
// file name when present, else lstat) or of an mbox (file size, From_
// separators counted); and MaildirUsageCache, which keeps a Maildir's usage
// between deliveries so that a delivery costs a few stat() calls instead
// of a scan of every folder.
//
// Trust level: runs as the mailbox owner; file names are untrusted (a
// bogus S= can only lie about the owner's own usage).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

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

// Usage of Maildirs, cached in memory (not in a maildirsize file, which
// every program that deletes mail would have to keep up to date). An
// entry holds the usage and a stamp: the mtimes of the root and of new/
// and cur/ of every folder found by the last scan. A lookup stat()s those
// directories and scans again only when the stamp differs (a message
// added, removed, or moved new/ -> cur/ by anyone; a folder made or
// removed changes the root's mtime) or the entry is older than maxAge.
// After a delivery of ours, added() counts the message and takes the new
// stamp, so our own deliveries never cause a scan.
//
// The approximation: a change made by another program between one of our
// links and the stat() that follows it in added() is taken for part of
// ours, and is seen only at the next change of that directory or after
// maxAge. A scan during which one of our deliveries ended is not kept
// (the message may have been linked after the stamp, in the same clock
// tick, and missed by the count). Two lookups that race may both pass a quota that has room for
// one of them (as with a scan per delivery). Thread-safe.
class MaildirUsageCache {
 public:
  struct Lookup {
    Usage usage;
    uint64_t generation = 0;  // hand back to added()
  };
  explicit MaildirUsageCache(std::chrono::seconds maxAge = std::chrono::seconds(60),
                             size_t maxEntries = 10000);
  // The usage of the Maildir at root (missing: empty).
  Result<Lookup> usage(const std::string& root);
  // One message of `bytes` was just delivered by us into root, after a
  // usage() lookup that returned `generation`. When a scan has replaced
  // the entry since, the entry is dropped instead (that scan may or may
  // not have seen the message).
  void added(const std::string& root, uint64_t generation, uint64_t bytes);
  // Full scans done so far (tests, logs).
  uint64_t scans() const;

 private:
  struct Entry {
    Usage usage;
    std::vector<std::string> folders;  // root first, then <root>/.Folder
    std::vector<int64_t> stamp;        // mtimes in ns: root, then new/, cur/ per folder
    std::chrono::steady_clock::time_point scannedAt;
    uint64_t generation = 0;
  };

  std::chrono::seconds maxAge_;
  size_t maxEntries_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
  uint64_t nextGeneration_ = 1;                     // guarded by mu_
  uint64_t scans_ = 0;                              // guarded by mu_
  uint64_t addedCalls_ = 0;  // guarded by mu_; a scan that saw it move is not kept
};

}  // namespace yubin::store
