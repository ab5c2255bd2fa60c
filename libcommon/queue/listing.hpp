// The queue as yubinctl shows it ("yubinctl queue list"): one entry per
// message in queue/, hold/ and corrupt/ with its size, sender, recipients
// and their delivery state, arrival time and age; and two renderings, JSON
// for scripts and a mailq-like table for people.
// Trust: runs as root or the admin, reading a spool owned by yubin-mta.
// Read-only: never creates, moves or deletes anything. Files are opened
// without following symlinks or blocking on FIFOs, and every file may be
// corrupt; a bad file is shown as such, never a crash.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "queue/format.hpp"
#include "queue/fs.hpp"
#include "queue/queue.hpp"
#include "queue/queue_id.hpp"

namespace yubin::queue {

struct QueueEntry {
  QueueId id;
  Area area = Area::Queue;  // Queue, Hold or Corrupt
  // Empty when the file and its state read fine; else why not (the envelope
  // and state are then empty).
  std::string error;
  Envelope envelope;   // size included
  MessageState state;  // one entry per recipient

  // "queued", "deferred" (some recipient waits for a retry), "held" or
  // "corrupt" (in corrupt/ or unreadable).
  std::string status() const;
};

// Every message, oldest first within each area (queue, hold, corrupt).
// Messages removed while listing are skipped. Fails only if a folder
// cannot be read.
Result<std::vector<QueueEntry>> listQueue(const std::string& spoolDir, Fs& fs = realFs());

// {"version":1,"messages":[...]} and a newline; times in seconds since the
// epoch, ages relative to now. Strings are valid UTF-8 JSON.
std::string renderJson(const std::vector<QueueEntry>& entries, int64_t now);
// A table in the manner of mailq: one block per message, recipients below
// the sender, delivery state under each recipient, and a summary line.
std::string renderMailq(const std::vector<QueueEntry>& entries, int64_t now);

// "42s", "7m", "3h05m", "2d04h".
std::string formatAge(int64_t seconds);

}  // namespace yubin::queue
