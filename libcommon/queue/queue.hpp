// The mail queue: mtad's durable store (layout in docs/queue.md).
//
// Owns: the spool folders (tmp/, queue/, hold/, corrupt/, state/), writing
// messages (Queue::begin -> PendingMessage::append -> Queue::commit), the
// group committer that makes them durable, the reserve of spare files,
// startup recovery, reading messages back (QueueFile), the per-recipient
// state files and removal.
//
// The guarantee: a commit callback reports success only after the message
// file and its name in queue/ are on stable storage. Two ways get there:
//  - into a spare (QueueOptions::maxSpares): an empty queue/<id> made ahead
//    of need, whose name was made durable (queue/ fsync'd) before it was
//    handed out; the commit writes the message and a trailer with a
//    checksum into it and fsyncs the file: one device flush;
//  - the fallback, when no spare is ready: tmp/<id> is written and fsync'd,
//    renamed into queue/, and queue/ is fsync'd; sessions that commit at
//    the same moment share the directory fsync (group commit).
// Only then may mtad answer 250 to the end of DATA. A file in queue/ that
// is not (yet) a committed message (a spare, a commit under way, a crash's
// leftover) is never listed by scan(); at startup every version 2 file's
// trailer and checksum are verified and the files that fail are removed
// (never acknowledged: their fsync had not returned).
//
// Threads: a Queue is used from one thread (the event loop thread) except
// for its committer's, housekeeper's and spare makers' threads, which only
// touch the jobs handed to them, the spare reserve (under its lock) and the
// Fs. Callbacks run on the loop thread, never inside commit().
//
// Trust: runs as yubin-mta. Files in the spool are written by mtad only, but
// the reader treats them as possibly corrupt: a file that does not parse is
// moved to corrupt/ (quarantine), never retried in a loop, never a crash.
#pragma once

#include <event2/event.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "queue/format.hpp"
#include "queue/fs.hpp"
#include "queue/queue_id.hpp"

namespace yubin::queue {

// The folders under spool_dir. A message's queue state is the folder it is in;
// changing state is a rename.
enum class Area { Tmp, Queue, Hold, Corrupt, State };
const char* areaName(Area a);  // "tmp", "queue", "hold", "corrupt", "state"
std::string areaPath(const std::string& spoolDir, Area a);
std::string filePath(const std::string& spoolDir, Area a, const QueueId& id);

// Reads a small file without following a symlink or blocking on a FIFO, and
// only if it is a regular file (errnum EBADMSG otherwise). ENOENT is passed
// through. Safe for the admin CLI reading a spool owned by another user.
Result<std::string> readSpoolFile(Fs& fs, const std::string& path, size_t maxSize);

// A committed message opened for reading: the parsed envelope and access to
// the message bytes by offset, without loading them into memory.
class QueueFile {
 public:
  // Parses strictly. A format problem is an Error with errnum EBADMSG (the
  // caller quarantines); anything else (ENOENT, EIO, EMFILE) is an I/O error.
  static Result<QueueFile> open(const std::string& path, Fs& fs = realFs());

  const Envelope& envelope() const { return envelope_; }
  // Bytes of message data (also envelope().size).
  uint64_t size() const { return envelope_.size; }
  // Where the message data starts in the file (for sendfile and the like).
  uint64_t messageOffset() const { return messageOffset_; }
  int fd() const { return fd_.get(); }

  // Up to n bytes of message data from offset (relative to the message
  // start); fewer only at the end. A file that shrank is EBADMSG.
  Result<std::string> read(uint64_t offset, size_t n) const;
  // Whole message: for tests and small messages only.
  Result<std::string> readAll() const { return read(0, static_cast<size_t>(size())); }

  // Walks the message data in chunks of at most chunkSize bytes.
  class Reader {
   public:
    // The next chunk; an empty view at the end. The view stays valid until
    // the next call.
    Result<std::string_view> next();

   private:
    friend class QueueFile;
    Reader(const QueueFile* file, size_t chunkSize) : file_(file), chunkSize_(chunkSize) {}
    const QueueFile* file_;
    size_t chunkSize_;
    uint64_t offset_ = 0;
    std::string buf_;
  };
  Reader reader(size_t chunkSize = 65536) const { return Reader(this, chunkSize); }

 private:
  QueueFile(UniqueFd fd, Fs* fs, Envelope env, uint64_t messageOffset)
      : fd_(std::move(fd)), fs_(fs), envelope_(std::move(env)), messageOffset_(messageOffset) {}
  UniqueFd fd_;
  Fs* fs_;
  Envelope envelope_;
  uint64_t messageOffset_;
};

// Reads state/<id> of a message with recipientCount recipients. A missing
// file means "every recipient pending". A file that does not parse or whose
// count disagrees is EBADMSG. Read-only: used by the queue and by yubinctl.
Result<MessageState> readState(Fs& fs, const std::string& spoolDir, const QueueId& id,
                               size_t recipientCount);

class Queue;

// A message being written to tmp/<id>, or into a spare queue/<id>. Move-only.
// Destroying it without a commit aborts it (the tmp file is removed; a
// spare goes back to the reserve if nothing was written into it, else it
// is removed).
class PendingMessage {
 public:
  PendingMessage() = default;
  PendingMessage(PendingMessage&& o) noexcept;
  PendingMessage& operator=(PendingMessage&& o) noexcept;
  PendingMessage(const PendingMessage&) = delete;
  PendingMessage& operator=(const PendingMessage&) = delete;
  ~PendingMessage();

  // False once committed, aborted or moved from.
  bool active() const { return active_; }
  const QueueId& id() const { return *id_; }
  // Message bytes appended so far.
  uint64_t size() const { return size_; }

  // Appends message bytes (CRLF line endings as received, Received: header
  // included). Buffered; a write error (ENOSPC, EIO) is returned here or at
  // commit, and sticks: every later append and the commit report it too.
  Status append(std::string_view data);
  // Removes the tmp file (or gives back or removes the spare). Idempotent.
  void abort();
  // Whether the message is written into a spare file (see QueueOptions).
  bool inSpare() const { return spare_; }

 private:
  friend class Queue;
  friend class Committer;
  Status create();  // tmp/<id>, O_EXCL, once
  Status flush();
  // Writes bytes at the end of the file, feeding the checksum.
  Status writeOut(std::string_view data);
  std::string filePath() const;
  void setError(Error e);

  Queue* queue_ = nullptr;
  std::optional<QueueId> id_;
  UniqueFd fd_;  // invalid until the first flush creates tmp/<id>; a spare's from the start
  bool active_ = false;
  bool spare_ = false;  // the file is queue/<id>, a spare
  std::string buf_;
  size_t bufferSize_ = 0;
  uint64_t size_ = 0;
  uint64_t written_ = 0;  // bytes written to the file so far
  std::string header_;    // the header as in the file; patched at commit
  ImageHasher hasher_;    // over every byte after the header
  std::optional<Error> error_;
};

struct QueueOptions {
  std::string spoolDir;
  Fs* fs = nullptr;  // null: realFs()
  uint32_t pid = 0;  // for queue IDs; 0: getpid()
  size_t writeBuffer = 64 * 1024;
  // The committer's threads: each finishes, fsyncs and renames one file at
  // a time, as soon as it is handed over, so up to this many file fsyncs
  // run at once (the file system can then merge their journal commits and
  // device flushes); whichever finds no directory fsync under way also
  // syncs queue/ for every rename done so far. 1: one file after another.
  size_t fsyncThreads = 16;
  // begin() only stages the message; tmp/<id> is created (O_EXCL) when the
  // write buffer first fills or at commit, so a message that fits the
  // buffer costs the calling thread no file system call (the commit's
  // thread creates and writes it). An error creating it (ENOSPC, EACCES,
  // EEXIST) is then returned by append or reported by the commit, and a
  // small message in progress has no file in tmp/ yet.
  bool createOnFlush = false;
  // Threads for saveStateLater and removeLater (the queue manager's state
  // saves and removals, off its event loop).
  size_t stateThreads = 4;
  // The most spare files kept ready (0: none, every commit takes the
  // tmp/ + rename + directory fsync path). A spare is an empty queue/<id>,
  // made by spareThreads threads after attachLoop() (one fsync of queue/
  // for each batch made), whose name is durable before begin() hands it
  // out: the commit into it then needs one file fsync. The reserve follows
  // the demand (about 1.5 times the most messages in progress at once in
  // the last 10 to 20 s, plus 32; topped up in batches once half is used),
  // up to this bound; begin() falls back to
  // tmp/ when it is empty. A spare's queue ID tells when its file was made
  // (at most 10 minutes before begin(): older spares are replaced).
  size_t maxSpares = 0;
  // 1: the spares waiting to be made are made in one go and made durable
  // by one fsync of queue/ (creating files in one folder is serialized by
  // its lock anyway; a second thread only spun on it).
  size_t spareThreads = 1;
};

using CommitCallback = std::function<void(Result<QueueId>)>;
using DoneCallback = std::function<void(Status)>;
using CommitTicket = uint64_t;

class Committer;
class Housekeeper;
class Spares;

class Queue {
 public:
  // Takes an exclusive lock on spool_dir/lock (EBUSY if another process
  // has the queue open: recovery would delete its half-written files), then
  // creates the folders (mode 0700) if needed, then recovers: removes
  // leftovers in tmp/ (never committed: their sessions got no 2xx), removes
  // the files in queue/ that are not whole (empty spares, version 2 files
  // whose trailer or checksum does not verify), moves files with names
  // that are not queue IDs out of queue/ and hold/ into corrupt/, and
  // removes state files whose message is gone (see docs/queue.md, "Crash
  // windows").
  static Result<std::unique_ptr<Queue>> open(QueueOptions options);
  // Stops the committer: queued commits are still made durable, but their
  // callbacks are dropped. Destroy the Queue before the event_base.
  ~Queue();
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  const std::string& spoolDir() const { return opts_.spoolDir; }
  Fs& fs() const { return *opts_.fs; }

  // Starts the group committer, reporting completions on base's thread
  // (an eventfd registered on base). Call once, before commit().
  Status attachLoop(event_base* base);

  // Takes a spare when one is ready (its ID is the message's), else creates
  // tmp/<new id> (O_EXCL); stages the header and envelope. With
  // QueueOptions::createOnFlush the tmp/ file is created later (see there).
  // The envelope is validated (EINVAL); env.size is ignored; its
  // arrivalTime is the caller's (not the spare's age).
  Result<PendingMessage> begin(const Envelope& env);

  // Hands the message to the committer. callback runs later on the loop
  // thread with the ID once the message is durable in queue/, or with an
  // Error (then nothing of it remains in tmp/ or queue/). Never runs inside
  // commit(). The message may be one whose append failed: the callback then
  // gets that error. Requires attachLoop().
  CommitTicket commit(PendingMessage&& msg, CommitCallback callback);
  // The callback of this commit (or saveStateLater, removeLater) will not
  // run (the session went away); the work itself goes on. Unknown or
  // finished tickets are ignored.
  void cancelCallback(CommitTicket ticket);
  // The same work done on the calling thread, for tools and tests.
  Result<QueueId> commitNow(PendingMessage&& msg);

  // Committed message IDs in an area (Queue or Hold), in ID order.
  // Names that are not IDs are skipped, and so are this queue's spares and
  // commits into spares still under way.
  Result<std::vector<QueueId>> scan(Area area = Area::Queue) const;

  // Opens queue/<id> (or hold/<id>). Pure read: see load() for quarantine.
  Result<QueueFile> openMessage(const QueueId& id, Area area = Area::Queue) const;
  // openMessage, and if the file is corrupt (EBADMSG) it is quarantined
  // before the error is returned, so it is never tried again.
  Result<QueueFile> load(const QueueId& id, Area area = Area::Queue);
  // Moves the message (from queue/ or hold/) and its state file into
  // corrupt/ (<id> and <id>.state).
  Status quarantine(const QueueId& id);

  // Per-recipient state, see readState. saveState replaces state/<id> with
  // atomicWrite (durable when it returns).
  Result<MessageState> loadState(const QueueId& id, size_t recipientCount) const;
  Status saveState(const QueueId& id, const MessageState& state);

  // Deletes the message (from queue/ or hold/) and then its state file.
  // Order and crash windows: docs/queue.md.
  Status remove(const QueueId& id);

  // saveState and remove done on one of QueueOptions::stateThreads threads
  // (the queue manager's, so that no fsync waits on its loop). callback
  // runs later on the loop thread with the outcome (remove: ENOENT when
  // the message was already gone), never inside the call. Each is as
  // durable when its callback runs as the synchronous call is when it
  // returns, and the directory fsync is shared: one fsync of state/ for
  // every save renamed while the previous one ran, one fsync of queue/ (or
  // hold/) for every removal of a message with a state file likewise (a
  // message without one is unlinked with no fsync, as remove() does). The
  // caller keeps at most one of them per message in flight: two for the
  // same message may land in either order. Require attachLoop().
  CommitTicket saveStateLater(const QueueId& id, const MessageState& state, DoneCallback callback);
  CommitTicket removeLater(const QueueId& id, DoneCallback callback);
  // Admin hold: queue/<id> -> hold/<id> and back. The state file stays.
  Status hold(const QueueId& id);
  Status release(const QueueId& id);

  // Spares ready to be taken (for tests and the benchmark).
  size_t sparesReady() const;
  // Whether queue/<id> is a spare or a commit into one under way: not a
  // message (hold, remove, quarantine refuse it with ENOENT).
  bool uncommitted(const QueueId& id) const;

 private:
  friend class PendingMessage;
  friend class Committer;
  friend class Housekeeper;
  friend class Spares;
  explicit Queue(QueueOptions opts);
  Status recover();
  Status moveBetween(const QueueId& id, Area from, Area to);
  std::string path(Area a, const QueueId& id) const { return filePath(opts_.spoolDir, a, id); }
  std::string dir(Area a) const { return areaPath(opts_.spoolDir, a); }

  QueueOptions opts_;
  UniqueFd lock_;
  IdGenerator ids_;
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<Housekeeper> housekeeper_;
  std::unique_ptr<Spares> spares_;
  CommitTicket nextTicket_ = 1;  // shared by commits and the housekeeper's jobs
};

}  // namespace yubin::queue
