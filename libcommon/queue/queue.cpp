// The mail queue: writer, group committer, recovery, reader, state files;
// see queue.hpp and docs/queue.md.
#include "queue/queue.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include "base/fs.hpp"
#include "base/log.hpp"

namespace yubin::queue {
namespace {

// State files hold one record group per recipient; even kMaxRecipients
// recipients with long replies stay well below this.
constexpr size_t kMaxStateSize = 64u << 20;

Error withContext(const std::string& what, const Error& e) {
  return Error{what + ": " + e.message, e.errnum};
}

Status writeAllFs(Fs& fs, int fd, std::string_view data) {
  while (!data.empty()) {
    auto n = fs.write(fd, data.data(), data.size());
    if (!n) return n.error();
    if (*n == 0) return Error{"write: wrote nothing", EIO};
    data.remove_prefix(std::min(*n, data.size()));
  }
  return {};
}

bool isTempStateName(const std::string& name) { return name.find(".tmp.") != std::string::npos; }

// Recovery's check of a file in queue/: an empty reason when it is a
// whole message (a version 2 file whose trailer and checksum verify, or a
// version 1 file, which only ever got its name after its fsync), else why
// it is not. `plain` marks the files that cannot be a message ever
// acknowledged, since every acknowledged version 2 file ends in a
// trailer and a length in its header: an unused spare, a file too short
// for a trailer, one that does not end in a trailer or whose header has
// no length yet (a commit cut short). The others (a trailer with
// a checksum or length that does not verify) are most likely a commit
// torn by a power loss, but a disk or a bug could do the same to an
// acknowledged message, so they are quarantined rather than removed. A
// file that cannot be read or is not a regular file is left to load(),
// which quarantines it.
struct Unfinished {
  std::string reason;  // empty: a whole message
  bool plain = false;  // true: removed; false: quarantined
};

Unfinished unfinished(Fs& fs, const std::string& path) {
  auto plain = [](std::string why) { return Unfinished{std::move(why), true}; };
  auto doubtful = [](std::string why) { return Unfinished{std::move(why), false}; };
  auto fd = fs.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
  if (!fd) return {};
  struct stat st;
  if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) return plain("empty (an unused spare)");
  std::string head(static_cast<size_t>(std::min<uint64_t>(size, kHeaderSize)), '\0');
  auto n = fs.pread(fd->get(), head.data(), head.size(), 0);
  if (!n) return {};
  head.resize(*n);
  auto header = parseHeader(head);
  if (header && header->version == 1) return {};
  if (size < kHeaderSize + kTrailerSize) return plain("too short for a trailer");
  std::string tail(kTrailerSize, '\0');
  n = fs.pread(fd->get(), tail.data(), tail.size(), size - kTrailerSize);
  if (!n || *n != kTrailerSize) return {};
  auto trailer = parseTrailer(tail);
  if (!trailer) {
    if (tail.compare(0, kTrailerMagic.size(), kTrailerMagic) != 0) return plain(trailer.error().message);
    return doubtful(trailer.error().message);
  }
  if (trailer->length != size - kTrailerSize)
    return doubtful("trailer length disagrees with the size");
  // The length goes into the header after the message and its trailer
  // are written: never written, it is a commit cut short.
  if (!header && head.compare(kMessageSizeOffset, 20, std::string(20, 'x')) == 0)
    return plain(header.error().message);
  if (!header) return doubtful(header.error().message);
  if (header->bodyEnd() != trailer->length)
    return doubtful("header length disagrees with the trailer");
  ImageHasher hasher(header->version);
  std::string chunk;
  for (uint64_t off = kHeaderSize; off < trailer->length;) {
    chunk.resize(static_cast<size_t>(std::min<uint64_t>(1u << 20, trailer->length - off)));
    n = fs.pread(fd->get(), chunk.data(), chunk.size(), off);
    if (!n || *n != chunk.size()) return {};
    hasher.update(chunk);
    off += chunk.size();
  }
  if (hasher.trailer(head, trailer->length) != tail)
    return doubtful("checksum mismatch (a torn write)");
  return {};
}

}  // namespace

const char* areaName(Area a) {
  switch (a) {
    case Area::Tmp:
      return "tmp";
    case Area::Queue:
      return "queue";
    case Area::Hold:
      return "hold";
    case Area::Corrupt:
      return "corrupt";
    case Area::State:
      return "state";
  }
  return "queue";
}

std::string areaPath(const std::string& spoolDir, Area a) { return spoolDir + "/" + areaName(a); }

std::string filePath(const std::string& spoolDir, Area a, const QueueId& id) {
  return areaPath(spoolDir, a) + "/" + id.str();
}

Result<std::string> readSpoolFile(Fs& fs, const std::string& path, size_t maxSize) {
  auto fd = fs.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
  if (!fd) {
    if (fd.error().errnum == ELOOP) return Error{path + ": is a symbolic link", EBADMSG};
    return fd.error();
  }
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return errnoError("fstat " + path);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file", EBADMSG};
  if (static_cast<uint64_t>(st.st_size) > maxSize) return Error{path + ": file too large", EBADMSG};
  std::string out(static_cast<size_t>(st.st_size), '\0');
  auto n = fs.pread(fd->get(), out.data(), out.size(), 0);
  if (!n) return withContext(path, n.error());
  out.resize(*n);
  return out;
}

// ---------------------------------------------------------------- reading

Result<QueueFile> QueueFile::open(const std::string& path, Fs& fs) {
  auto fd = fs.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
  if (!fd) {
    if (fd.error().errnum == ELOOP) return Error{path + ": is a symbolic link", EBADMSG};
    return fd.error();
  }
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return errnoError("fstat " + path);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file", EBADMSG};
  uint64_t fileSize = static_cast<uint64_t>(st.st_size);
  // A spare, or a commit into one under way: not a message (yet).
  const Error notCommitted{path + ": not a committed message", ENOENT};
  if (fileSize == 0) return notCommitted;

  std::string head(std::min<uint64_t>(fileSize, kHeaderSize), '\0');
  auto n = fs.pread(fd->get(), head.data(), head.size(), 0);
  if (!n) return withContext(path, n.error());
  head.resize(*n);
  auto header = parseHeader(head);
  if (!header) {
    if (head.rfind(encodeHeaderPlaceholder(0, 2).substr(0, 14), 0) == 0) return notCommitted;
    return withContext(path, header.error());
  }
  if (header->version >= 2) {
    // The cheap check: a trailer where the header says the file ends. The
    // checksum is verified at startup (recovery).
    if (fileSize < header->bodyEnd() + kTrailerSize) return notCommitted;
    std::string tail(kTrailerSize, '\0');
    n = fs.pread(fd->get(), tail.data(), tail.size(), fileSize - kTrailerSize);
    if (!n) return withContext(path, n.error());
    tail.resize(*n);
    auto trailer = parseTrailer(tail);
    if (!trailer || trailer->length != fileSize - kTrailerSize) return notCommitted;
    fileSize -= kTrailerSize;
  }
  if (fileSize - kHeaderSize < header->envelopeSize)
    return Error{path + ": corrupt queue file: truncated envelope", EBADMSG};
  std::string envBytes(static_cast<size_t>(header->envelopeSize), '\0');
  n = fs.pread(fd->get(), envBytes.data(), envBytes.size(), kHeaderSize);
  if (!n) return withContext(path, n.error());
  if (*n != envBytes.size())
    return Error{path + ": corrupt queue file: truncated envelope", EBADMSG};
  auto env = parseEnvelope(envBytes);
  if (!env) return withContext(path, env.error());
  uint64_t rest = fileSize - header->messageOffset();
  if (rest < header->messageSize)
    return Error{path + ": corrupt queue file: truncated message", EBADMSG};
  if (rest > header->messageSize)
    return Error{path + ": corrupt queue file: trailing bytes after the message", EBADMSG};
  env->size = header->messageSize;
  return QueueFile(std::move(*fd), &fs, std::move(*env), header->messageOffset());
}

Result<std::string> QueueFile::read(uint64_t offset, size_t n) const {
  if (offset >= size()) return std::string();
  n = static_cast<size_t>(std::min<uint64_t>(n, size() - offset));
  std::string out(n, '\0');
  auto got = fs_->pread(fd_.get(), out.data(), n, messageOffset_ + offset);
  if (!got) return got.error();
  if (*got != n) return Error{"corrupt queue file: message shrank while open", EBADMSG};
  return out;
}

Result<std::string_view> QueueFile::Reader::next() {
  if (offset_ >= file_->size()) return std::string_view();
  auto chunk = file_->read(offset_, chunkSize_);
  if (!chunk) return chunk.error();
  buf_ = std::move(*chunk);
  offset_ += buf_.size();
  return std::string_view(buf_);
}

Result<MessageState> readState(Fs& fs, const std::string& spoolDir, const QueueId& id,
                               size_t recipientCount) {
  std::string path = filePath(spoolDir, Area::State, id);
  auto bytes = readSpoolFile(fs, path, kMaxStateSize);
  if (!bytes) {
    if (bytes.error().errnum == ENOENT) {
      MessageState fresh;
      fresh.rcpts.resize(recipientCount);
      return fresh;
    }
    return bytes.error();
  }
  auto st = parseState(*bytes);
  if (!st) return withContext(path, st.error());
  if (st->rcpts.size() != recipientCount)
    return Error{path + ": corrupt state file: recipient count disagrees with the message",
                 EBADMSG};
  return st;
}

// ---------------------------------------------------------------- committer

struct CommitJob {
  CommitTicket ticket = 0;
  PendingMessage msg;
  std::optional<Result<QueueId>> result;
};

// Finished jobs handed from worker threads back to the loop thread: an
// eventfd registered on the loop wakes it, and each job's callback runs
// there (unless cancelled meanwhile) with the job's result.
template <class Job, class Callback>
class LoopReturn {
 public:
  LoopReturn() = default;
  LoopReturn(const LoopReturn&) = delete;
  LoopReturn& operator=(const LoopReturn&) = delete;

  Status start(event_base* base, const char* what) {
    int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return errnoError("eventfd");
    wakeFd_.reset(fd);
    wakeEvent_.reset(event_new(base, fd, EV_READ | EV_PERSIST, &LoopReturn::onWake, this));
    if (!wakeEvent_ || event_add(wakeEvent_.get(), nullptr) != 0)
      return Error{std::string("event_add for the ") + what + " failed", 0};
    return {};
  }
  // Loop thread.
  void expect(CommitTicket t, Callback cb) { callbacks_.emplace(t, std::move(cb)); }
  void cancel(CommitTicket t) { callbacks_.erase(t); }
  // Any thread.
  void post(std::vector<std::unique_ptr<Job>>&& jobs) {
    {
      std::lock_guard lock(mu_);
      for (auto& j : jobs) done_.push_back(std::move(j));
    }
    uint64_t one = 1;
    // Cannot fail short of a counter overflow; a lost wakeup would only
    // delay callbacks until the next one.
    [[maybe_unused]] ssize_t w = ::write(wakeFd_.get(), &one, sizeof one);
  }

 private:
  static void onWake(evutil_socket_t, short, void* arg) {
    static_cast<LoopReturn*>(arg)->deliver();
  }
  void deliver() {
    uint64_t count;
    [[maybe_unused]] ssize_t r = ::read(wakeFd_.get(), &count, sizeof count);
    std::vector<std::unique_ptr<Job>> done;
    {
      std::lock_guard lock(mu_);
      done.swap(done_);
    }
    for (auto& job : done) {
      auto it = callbacks_.find(job->ticket);
      if (it == callbacks_.end()) continue;  // cancelled
      Callback cb = std::move(it->second);
      callbacks_.erase(it);
      cb(std::move(*job->result));
    }
  }

  UniqueFd wakeFd_;
  CPtr<struct event, event_free> wakeEvent_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Job>> done_;                // guarded by mu_
  std::unordered_map<CommitTicket, Callback> callbacks_;  // loop thread only
};

// Jobs that go through two steps, shared by the committer, the housekeeper
// and the spare makers:
//  1. on any of N threads, as soon as one is free: the job's own work
//     (write and fsync a file, save a state, create a spare), which either
//     finishes it or leaves it waiting for a directory fsync;
//  2. shared: one thread at a time (whichever finished a step 1 and finds
//     no step 2 under way) runs step 2 once for every job waiting so far,
//     then again for the jobs that arrived meanwhile, until none is left.
// So the step 1 of new jobs runs while an earlier group's directory fsync
// is under way, and every job that reaches step 2 during one shares the
// next: the group is whatever piled up, never a wait for company. With one
// thread, up to loneThreadBatch jobs waiting in the queue go through step 1
// before step 2 (0: none). Jobs handed over before the pool stops are
// still done.
template <class Job>
class TwoStepPool {
 public:
  struct Steps {
    std::function<bool(Job&)> one;  // true: the job waits for step 2
    std::function<void(const std::vector<Job*>&)> two;
    // Finished jobs (after step 1 or 2), on the worker thread.
    std::function<void(std::vector<std::unique_ptr<Job>>&&)> done;
    size_t loneThreadBatch = 0;
  };
  explicit TwoStepPool(Steps steps) : steps_(std::move(steps)) {}
  TwoStepPool(const TwoStepPool&) = delete;
  TwoStepPool& operator=(const TwoStepPool&) = delete;
  ~TwoStepPool() { stop(); }

  // `name` (at most 15 bytes) tells the pools apart in top -H, perf and
  // /proc/<pid>/task.
  void start(size_t threads, const char* name) {
    threads = std::max<size_t>(threads, 1);
    lone_ = threads == 1;
    for (size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { threadMain(); });
      ::pthread_setname_np(threads_.back().native_handle(), name);
    }
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  void submit(std::unique_ptr<Job> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void threadMain() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      std::unique_ptr<Job> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      const bool waits = steps_.one(*job);
      if (!waits) {
        std::vector<std::unique_ptr<Job>> finished;
        finished.push_back(std::move(job));
        steps_.done(std::move(finished));
        lock.lock();
        continue;
      }
      lock.lock();
      waiting_.push_back(std::move(job));
      if (lone_ && !jobs_.empty() && waiting_.size() < steps_.loneThreadBatch) continue;
      while (!twoRunning_ && !waiting_.empty()) {
        twoRunning_ = true;
        std::vector<std::unique_ptr<Job>> group;
        group.swap(waiting_);
        lock.unlock();
        std::vector<Job*> ptrs;
        ptrs.reserve(group.size());
        for (auto& j : group) ptrs.push_back(j.get());
        steps_.two(ptrs);
        steps_.done(std::move(group));
        lock.lock();
        twoRunning_ = false;
      }
    }
  }

  Steps steps_;
  std::vector<std::thread> threads_;
  bool lone_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> jobs_;      // step 1 to do; guarded by mu_
  std::vector<std::unique_ptr<Job>> waiting_;  // step 2 to do; guarded by mu_
  bool twoRunning_ = false;                    // guarded by mu_
  bool stopping_ = false;                      // guarded by mu_
};

// ---------------------------------------------------------------- spares

// One spare to make (or, with discard, an old one to remove).
struct SpareJob {
  explicit SpareJob(QueueId i) : id(std::move(i)) {}
  QueueId id;
  UniqueFd fd;
  bool discard = false;
  bool ok = false;
};

// A spare older than this is replaced, so that a queue ID's time stays
// near its message's arrival.
constexpr auto kSpareMaxAge = std::chrono::minutes(10);
// The reserve never aims below this: a lone session takes about one batch
// (and one fsync of queue/) per kMinSpares / 2 messages. Each fsync of
// queue/ is a device flush beside the commits' own (and on ext4 without a
// journal it writes the folder's blocks, which the next commits would
// otherwise write as part of their fsync): with 8, a lone session at
// bench/smtp-ingest saw 0.42 of them per message; an empty file costs an
// inode and nothing else.
constexpr size_t kMinSpares = 32;
// One spare maker takes every spare waiting to be made before the fsync of
// queue/ that makes them durable, so a batch never splits into two.
constexpr size_t kMaxSpareBatch = 1024;
// Demand is the most spares in use at once within the current and the
// previous window of this length.
constexpr auto kDemandWindow = std::chrono::seconds(10);

// The reserve of spare files: a TwoStepPool of spareThreads threads whose
// step 1 creates queue/<id> (O_EXCL) and whose step 2 fsyncs queue/ once
// for the batch; only then do the spares join the reserve. Every ID from
// the moment it is chosen until its file is gone or holds a committed
// message is in uncommitted_, so scan() never lists it.
class Spares {
 public:
  explicit Spares(Queue& q)
      : q_(q),
        pool_({[&q](SpareJob& j) { return create(q, j); },
               [&q](const std::vector<SpareJob*>& js) { syncCreated(q, js); },
               [this](std::vector<std::unique_ptr<SpareJob>>&& js) { arrived(std::move(js)); },
               kMaxSpareBatch}) {}
  ~Spares() {
    pool_.stop();
    // Unused spares: empty files; removed here (a crash leaves them to
    // recovery, which removes empty files in queue/).
    for (auto& s : ready_) (void)q_.fs().unlink(q_.path(Area::Queue, s.id));
  }

  void start() {
    pool_.start(q_.opts_.spareThreads, "queue-spares");
    std::lock_guard lock(mu_);
    windowStart_ = std::chrono::steady_clock::now();
    refillLocked();
  }

  // Loop thread: a spare, or nullopt when none is ready.
  std::optional<std::pair<QueueId, UniqueFd>> take() {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    std::optional<std::pair<QueueId, UniqueFd>> out;
    while (!ready_.empty() && !out) {
      Ready r = std::move(ready_.front());
      ready_.pop_front();
      if (now - r.made > kSpareMaxAge) {
        auto job = std::make_unique<SpareJob>(r.id);
        job->discard = true;
        pool_.submit(std::move(job));
        continue;
      }
      out.emplace(std::move(r.id), std::move(r.fd));
    }
    if (out) {
      ++inUse_;
      noteDemandLocked(now);
    }
    refillLocked();
    return out;
  }
  // A spare taken and never written to: back into the reserve.
  void giveBack(const QueueId& id, UniqueFd fd) {
    std::lock_guard lock(mu_);
    --inUse_;
    ready_.push_front(Ready{id, std::move(fd), std::chrono::steady_clock::now()});
  }
  // A taken spare's file is gone, or holds a committed message.
  void finished(const QueueId& id) {
    std::lock_guard lock(mu_);
    --inUse_;
    uncommitted_.erase(id);
  }
  bool uncommitted(const QueueId& id) const {
    std::lock_guard lock(mu_);
    return uncommitted_.count(id) > 0;
  }
  size_t ready() const {
    std::lock_guard lock(mu_);
    return ready_.size();
  }

 private:
  struct Ready {
    QueueId id;
    UniqueFd fd;
    std::chrono::steady_clock::time_point made;
  };

  static bool create(Queue& q, SpareJob& job) {
    const std::string path = q.path(Area::Queue, job.id);
    if (job.discard) {
      (void)q.fs().unlink(path);
      return false;
    }
    auto fd = q.fs().open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (!fd) {
      YLOG_WARN("queue cannot make a spare file id=%s error=\"%s\"", job.id.str().c_str(),
                fd.error().message.c_str());
      return false;
    }
    job.fd = std::move(*fd);
    return true;
  }
  static void syncCreated(Queue& q, const std::vector<SpareJob*>& jobs) {
    Fs& fs = q.fs();
    if (auto st = fs.fsyncDir(q.dir(Area::Queue)); !st) {
      YLOG_WARN("queue cannot sync new spare files count=%zu error=\"%s\"", jobs.size(),
                st.error().message.c_str());
      for (SpareJob* j : jobs) {
        j->fd.reset();
        (void)fs.unlink(q.path(Area::Queue, j->id));
      }
      return;
    }
    for (SpareJob* j : jobs) j->ok = true;
  }
  // Worker thread: made (or failed, or discarded) spares.
  void arrived(std::vector<std::unique_ptr<SpareJob>>&& jobs) {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto& j : jobs) {
      if (j->discard) {
        uncommitted_.erase(j->id);
        continue;
      }
      --making_;
      if (j->ok)
        ready_.push_back(Ready{j->id, std::move(j->fd), now});
      else
        uncommitted_.erase(j->id);
    }
  }
  void noteDemandLocked(std::chrono::steady_clock::time_point now) {
    if (now - windowStart_ > kDemandWindow) {
      lastPeak_ = peak_;
      peak_ = 0;
      windowStart_ = now;
    }
    peak_ = std::max(peak_, inUse_);
  }
  void refillLocked() {
    const size_t demand = std::max(peak_, lastPeak_);
    const size_t target = std::min(q_.opts_.maxSpares, kMinSpares + demand + demand / 2);
    const size_t have = ready_.size() + making_;
    // Topped up in batches, once half is used, so that many spares share
    // one directory fsync (a lone session would otherwise pay one per
    // message, off its critical path but on the same disk).
    if (have > target / 2) return;
    for (size_t i = have; i < target; ++i) {
      auto job = std::make_unique<SpareJob>(q_.ids_.next());
      uncommitted_.insert(job->id);  // before its file exists
      ++making_;
      pool_.submit(std::move(job));
    }
  }

  Queue& q_;
  mutable std::mutex mu_;
  std::deque<Ready> ready_;                            // guarded by mu_
  std::set<QueueId> uncommitted_;                      // guarded by mu_
  size_t making_ = 0;                                  // guarded by mu_
  size_t inUse_ = 0;                                   // guarded by mu_
  size_t peak_ = 0, lastPeak_ = 0;                     // guarded by mu_
  std::chrono::steady_clock::time_point windowStart_;  // guarded by mu_
  TwoStepPool<SpareJob> pool_;                         // last: stopped first
};

// ---------------------------------------------------------------- writing

PendingMessage::PendingMessage(PendingMessage&& o) noexcept
    : queue_(o.queue_),
      id_(std::move(o.id_)),
      fd_(std::move(o.fd_)),
      active_(std::exchange(o.active_, false)),
      spare_(o.spare_),
      buf_(std::move(o.buf_)),
      bufferSize_(o.bufferSize_),
      size_(o.size_),
      written_(o.written_),
      header_(std::move(o.header_)),
      hasher_(o.hasher_),
      error_(std::move(o.error_)) {}

PendingMessage& PendingMessage::operator=(PendingMessage&& o) noexcept {
  if (this != &o) {
    abort();
    queue_ = o.queue_;
    id_ = std::move(o.id_);
    fd_ = std::move(o.fd_);
    active_ = std::exchange(o.active_, false);
    spare_ = o.spare_;
    buf_ = std::move(o.buf_);
    bufferSize_ = o.bufferSize_;
    size_ = o.size_;
    written_ = o.written_;
    header_ = std::move(o.header_);
    hasher_ = o.hasher_;
    error_ = std::move(o.error_);
  }
  return *this;
}

PendingMessage::~PendingMessage() { abort(); }

std::string PendingMessage::filePath() const {
  return queue_->path(spare_ ? Area::Queue : Area::Tmp, *id_);
}

void PendingMessage::abort() {
  if (!active_) return;
  active_ = false;
  buf_.clear();
  if (!fd_.valid()) return;  // never created
  if (spare_ && written_ == 0 && !error_) {
    // Untouched: still an empty file with a durable name.
    queue_->spares_->giveBack(*id_, std::move(fd_));
    return;
  }
  fd_.reset();
  if (auto st = queue_->fs().unlink(filePath()); !st && st.error().errnum != ENOENT)
    YLOG_WARN("queue cannot remove aborted message id=%s error=\"%s\"", id_->str().c_str(),
              st.error().message.c_str());
  if (spare_) queue_->spares_->finished(*id_);
}

Status PendingMessage::create() {
  if (fd_.valid()) return {};
  std::string tmp = queue_->path(Area::Tmp, *id_);
  auto fd = queue_->fs().open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  if (!fd) {
    setError(fd.error());
    return *error_;
  }
  fd_ = std::move(*fd);
  return {};
}

void PendingMessage::setError(Error e) {
  if (!error_) error_ = std::move(e);
}

Status PendingMessage::writeOut(std::string_view data) {
  // The checksum covers every byte after the header, in file order (the
  // header is only final at commit and enters the trailer's checksum then).
  if (written_ < kHeaderSize) {
    size_t skip = static_cast<size_t>(std::min<uint64_t>(kHeaderSize - written_, data.size()));
    hasher_.update(data.substr(skip));
  } else {
    hasher_.update(data);
  }
  written_ += data.size();  // also on failure: the file is no longer untouched
  if (auto st = writeAllFs(queue_->fs(), fd_.get(), data); !st) {
    setError(withContext("write " + filePath(), st.error()));
    return *error_;
  }
  return {};
}

Status PendingMessage::flush() {
  if (error_) return *error_;
  if (auto st = create(); !st) return st;
  if (buf_.empty()) return {};
  auto st = writeOut(buf_);
  buf_.clear();
  return st;
}

Status PendingMessage::append(std::string_view data) {
  if (!active()) return Error{"append to a message that is not open", EINVAL};
  if (error_) return *error_;
  size_ += data.size();
  if (buf_.size() + data.size() <= bufferSize_) {
    buf_.append(data);
    return {};
  }
  if (auto st = flush(); !st) return st;
  if (data.size() < bufferSize_) {
    buf_.append(data);
    return {};
  }
  return writeOut(data);
}

// A single-threaded committer makes at most this many renames durable with
// one directory fsync.
constexpr size_t kMaxGroup = 256;

// The group committer, a TwoStepPool of fsyncThreads threads:
//  1. finishFile: write the rest of the buffer, patch the size, append the
//     trailer, fsync the file. A message in a spare is then committed (its
//     name was durable already); one in tmp/ is renamed into queue/ (only a
//     file whose data is on disk gets a name there) and waits for
//  2. syncRenamed: one fsync of queue/ for every rename so far.
class Committer {
 public:
  explicit Committer(Queue& q)
      : q_(q),
        pool_(
            {[&q](CommitJob& j) { return finishFile(q, j); },
             [&q](const std::vector<CommitJob*>& js) { syncRenamed(q, js); },
             [this](std::vector<std::unique_ptr<CommitJob>>&& js) { return_.post(std::move(js)); },
             kMaxGroup}) {}
  Status start(event_base* base);
  CommitTicket submit(PendingMessage&& msg, CommitCallback cb);
  void cancel(CommitTicket t) { return_.cancel(t); }

  // Step 1 for one job. True when the file was renamed into queue/ and
  // waits for step 2; false when the job is done: failed (nothing of it is
  // left) or committed into its spare (result set either way).
  static bool finishFile(Queue& q, CommitJob& job);
  // Step 2: one fsync of queue/ for jobs that passed step 1. Sets every
  // job's result; on failure their files are removed from queue/.
  static void syncRenamed(Queue& q, const std::vector<CommitJob*>& jobs);

 private:
  static void failJob(CommitJob& job, const Error& e);

  Queue& q_;
  LoopReturn<CommitJob, CommitCallback> return_;
  TwoStepPool<CommitJob> pool_;  // last: stopped before return_ goes
};

void Committer::failJob(CommitJob& job, const Error& e) {
  if (job.msg.id_) {
    YLOG_ERROR("queue commit failed id=%s error=\"%s\"", job.msg.id_->str().c_str(),
               e.message.c_str());
  }
  job.msg.abort();  // closes and unlinks tmp/<id>
  job.result = e;
}

bool Committer::finishFile(Queue& q, CommitJob& job) {
  Fs& fs = q.fs();
  PendingMessage& m = job.msg;
  if (!m.active()) {
    job.result = Error{"commit of a message that is not open", EINVAL};
    return false;
  }
  if (auto st = m.flush(); !st) {
    failJob(job, st.error());
    return false;
  }
  std::string digits = encodeMessageSize(m.size_);
  if (auto st = fs.pwrite(m.fd_.get(), digits.data(), digits.size(), kMessageSizeOffset); !st) {
    failJob(job, withContext("write header of " + m.id_->str(), st.error()));
    return false;
  }
  m.header_.replace(kMessageSizeOffset, digits.size(), digits);
  const std::string trailer = m.hasher_.trailer(m.header_, m.written_);
  if (auto st = writeAllFs(fs, m.fd_.get(), trailer); !st) {
    failJob(job, withContext("write trailer of " + m.id_->str(), st.error()));
    return false;
  }
  if (auto st = fs.fsync(m.fd_.get()); !st) {
    failJob(job, withContext("fsync " + m.id_->str(), st.error()));
    return false;
  }
  if (m.spare_) {
    // Data, size and trailer are on disk, and the name was before the
    // spare was handed out: committed, with one device flush.
    m.fd_.reset();
    m.active_ = false;
    q.spares_->finished(*m.id_);
    job.result = *m.id_;
    return false;
  }
  // From here on the file is "ready": its data is on disk, so a name in
  // queue/ never points to data that is not.
  if (auto st = fs.rename(q.path(Area::Tmp, *m.id_), q.path(Area::Queue, *m.id_)); !st) {
    failJob(job, st.error());
    return false;
  }
  m.fd_.reset();  // committed: no longer ours to abort
  m.active_ = false;
  return true;
}

void Committer::syncRenamed(Queue& q, const std::vector<CommitJob*>& jobs) {
  if (jobs.empty()) return;
  Fs& fs = q.fs();
  if (auto st = fs.fsyncDir(q.dir(Area::Queue)); !st) {
    // The files are complete but may vanish in a crash. The clients will be
    // told 4xx and retry, so remove them rather than deliver twice.
    for (CommitJob* job : jobs) {
      const QueueId& id = *job->msg.id_;
      YLOG_ERROR("queue commit failed id=%s error=\"%s\"", id.str().c_str(),
                 st.error().message.c_str());
      if (auto u = fs.unlink(q.path(Area::Queue, id)); !u)
        YLOG_ERROR("queue cannot remove unsynced message id=%s error=\"%s\"", id.str().c_str(),
                   u.error().message.c_str());
      job->result = withContext("fsync " + q.dir(Area::Queue), st.error());
    }
    return;
  }
  for (CommitJob* job : jobs) job->result = *job->msg.id_;
}

Status Committer::start(event_base* base) {
  if (auto st = return_.start(base, "queue committer"); !st) return st;
  pool_.start(q_.opts_.fsyncThreads, "queue-commit");
  return {};
}

CommitTicket Committer::submit(PendingMessage&& msg, CommitCallback cb) {
  auto job = std::make_unique<CommitJob>();
  job->ticket = q_.nextTicket_++;
  job->msg = std::move(msg);
  CommitTicket t = job->ticket;
  return_.expect(t, std::move(cb));
  pool_.submit(std::move(job));
  return t;
}

// ---------------------------------------------------------------- housekeeper

// One state save or removal for the housekeeper.
struct HouseJob {
  HouseJob(QueueId i, bool s) : id(std::move(i)), save(s) {}
  CommitTicket ticket = 0;
  QueueId id;
  bool save = false;    // else a removal
  std::string bytes;    // save: the encoded state
  std::string syncDir;  // set by step 1: the folder whose fsync the job waits for
  std::optional<Status> result;
};

// The queue manager's state saves and removals, a TwoStepPool of
// stateThreads threads: step 1 (a save: write, fsync and rename the state
// file; a removal: unlink the message), step 2 shared: each folder named
// by the jobs that reached it (state/, queue/, hold/) is fsync'd once, for
// all of them, then they are finished (a removal: unlink the state file,
// now that the message is gone for good).
class Housekeeper {
 public:
  explicit Housekeeper(Queue& q)
      : q_(q),
        pool_({[&q](HouseJob& j) { return stepOne(q, j); },
               [&q](const std::vector<HouseJob*>& js) { stepTwo(q, js); },
               [this](std::vector<std::unique_ptr<HouseJob>>&& js) { return_.post(std::move(js)); },
               0}) {}
  Status start(event_base* base);
  CommitTicket submit(std::unique_ptr<HouseJob> job, DoneCallback cb);
  void cancel(CommitTicket t) { return_.cancel(t); }

  // Step 1. True when the job waits for the fsync of job.syncDir; false
  // when it is done (result set).
  static bool stepOne(Queue& q, HouseJob& job);
  // Step 2 for jobs that passed step 1: sets every result.
  static void stepTwo(Queue& q, const std::vector<HouseJob*>& jobs);

 private:
  Queue& q_;
  LoopReturn<HouseJob, DoneCallback> return_;
  TwoStepPool<HouseJob> pool_;  // last: stopped before return_ goes
};

bool Housekeeper::stepOne(Queue& q, HouseJob& job) {
  if (job.result) return false;  // refused before it was handed over
  Fs& fs = q.fs();
  const std::string statePath = q.path(Area::State, job.id);
  if (job.save) {
    std::string tmp = statePath + ".tmp." + std::to_string(job.ticket);
    auto fd = fs.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (!fd) {
      job.result = withContext("create " + tmp, fd.error());
      return false;
    }
    Status st = writeAllFs(fs, fd->get(), job.bytes);
    if (st) st = fs.fsync(fd->get());
    fd->reset();
    if (st) st = fs.replace(tmp, statePath);
    if (!st) {
      (void)fs.unlink(tmp);
      job.result = withContext("state of " + job.id.str(), st.error());
      return false;
    }
    job.syncDir = q.dir(Area::State);
    return true;
  }
  // A removal: as Queue::remove.
  const bool hasState = fs.open(statePath, O_RDONLY | O_CLOEXEC, 0).ok();
  Status removed = Error{"no such message " + job.id.str(), ENOENT};
  for (Area a : {Area::Queue, Area::Hold}) {
    removed = fs.unlink(q.path(a, job.id));
    if (removed) {
      if (hasState) {
        job.syncDir = q.dir(a);
        return true;
      }
      break;
    }
    if (removed.error().errnum != ENOENT) {
      job.result = removed;
      return false;
    }
  }
  if (auto st = fs.unlink(statePath); !st && st.error().errnum != ENOENT) removed = st;
  job.result = removed;
  return false;
}

void Housekeeper::stepTwo(Queue& q, const std::vector<HouseJob*>& jobs) {
  Fs& fs = q.fs();
  std::map<std::string, Status> synced;
  for (HouseJob* job : jobs)
    if (!synced.count(job->syncDir)) synced.emplace(job->syncDir, fs.fsyncDir(job->syncDir));
  for (HouseJob* job : jobs) {
    const Status& st = synced.at(job->syncDir);
    if (!st) {
      // A save: the new state may not survive a crash; the caller keeps it
      // and tries again. A removal: the state file stays, so a message that
      // comes back after a crash still has it.
      job->result = withContext("fsync " + job->syncDir, st.error());
      continue;
    }
    Status r;
    if (!job->save) {
      if (auto u = fs.unlink(q.path(Area::State, job->id)); !u && u.error().errnum != ENOENT) r = u;
    }
    job->result = r;
  }
}

Status Housekeeper::start(event_base* base) {
  if (auto st = return_.start(base, "queue housekeeper"); !st) return st;
  pool_.start(q_.opts_.stateThreads, "queue-house");
  return {};
}

CommitTicket Housekeeper::submit(std::unique_ptr<HouseJob> job, DoneCallback cb) {
  job->ticket = q_.nextTicket_++;
  CommitTicket t = job->ticket;
  return_.expect(t, std::move(cb));
  pool_.submit(std::move(job));
  return t;
}

// ---------------------------------------------------------------- the queue

Queue::Queue(QueueOptions opts) : opts_(std::move(opts)), ids_(opts_.pid) {}

Queue::~Queue() {
  housekeeper_.reset();
  committer_.reset();
  spares_.reset();
}

Result<std::unique_ptr<Queue>> Queue::open(QueueOptions options) {
  if (options.spoolDir.empty()) return Error{"queue: spool_dir is empty", EINVAL};
  while (options.spoolDir.size() > 1 && options.spoolDir.back() == '/') options.spoolDir.pop_back();
  if (!options.fs) options.fs = &realFs();
  if (options.pid == 0) options.pid = static_cast<uint32_t>(::getpid());
  if (options.writeBuffer == 0) options.writeBuffer = 64 * 1024;
  if (options.fsyncThreads == 0) options.fsyncThreads = 1;
  std::unique_ptr<Queue> q(new Queue(std::move(options)));
  if (auto st = makeDirs(q->spoolDir(), 0700); !st) return st.error();
  std::string lockPath = q->spoolDir() + "/lock";
  q->lock_.reset(::open(lockPath.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!q->lock_) return errnoError("open " + lockPath);
  if (::flock(q->lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return Error{q->spoolDir() + ": queue in use by another process", EBUSY};
    return errnoError("flock " + lockPath);
  }
  for (Area a : {Area::Tmp, Area::Queue, Area::Hold, Area::Corrupt, Area::State})
    if (auto st = makeDirs(q->dir(a), 0700); !st) return st.error();
  // A freshly made queue/ must itself be durable before anything committed
  // into it can be.
  if (auto st = q->fs().fsyncDir(q->spoolDir()); !st) return st.error();
  if (auto st = q->recover(); !st) return st.error();
  return q;
}

Status Queue::recover() {
  Fs& fs = this->fs();
  // tmp/: never committed, so no client got a 2xx for any of these.
  auto tmp = fs.listDir(dir(Area::Tmp));
  if (!tmp) return tmp.error();
  for (const std::string& name : *tmp) {
    if (auto st = fs.unlink(dir(Area::Tmp) + "/" + name); !st)
      YLOG_WARN("queue cannot remove leftover file=tmp/%s error=\"%s\"", name.c_str(),
                st.error().message.c_str());
  }
  if (!tmp->empty()) YLOG_NOTICE("queue removed uncommitted leftovers count=%zu", tmp->size());

  // queue/: a file there may be an unused spare or a commit into a spare
  // that a crash interrupted before its fsync returned (so no client got a
  // 2xx for it): only files that prove they are whole stay in queue/.
  auto inQueue = fs.listDir(dir(Area::Queue));
  if (!inQueue) return inQueue.error();
  size_t removed = 0;
  for (const std::string& name : *inQueue) {
    if (!QueueId::valid(name)) continue;
    const std::string p = dir(Area::Queue) + "/" + name;
    auto [why, plain] = unfinished(fs, p);
    if (why.empty()) continue;
    if (!plain) {
      YLOG_WARN("queue file does not verify file=queue/%s reason=\"%s\"", name.c_str(),
                why.c_str());
      if (auto id = QueueId::parse(name); !id || !quarantine(*id))
        YLOG_ERROR("queue cannot quarantine file=queue/%s", name.c_str());
      continue;
    }
    if (auto st = fs.unlink(p); !st) {
      YLOG_WARN("queue cannot remove unfinished file=queue/%s error=\"%s\"", name.c_str(),
                st.error().message.c_str());
      continue;
    }
    ++removed;
    if (why.rfind("empty", 0) != 0)
      YLOG_NOTICE("queue removed an unfinished file=queue/%s reason=\"%s\"", name.c_str(),
                  why.c_str());
  }
  if (removed) YLOG_NOTICE("queue removed unfinished files count=%zu", removed);

  std::set<std::string> messages;
  for (Area a : {Area::Queue, Area::Hold}) {
    auto names = fs.listDir(dir(a));
    if (!names) return names.error();
    for (const std::string& name : *names) {
      if (QueueId::valid(name)) {
        messages.insert(name);
        continue;
      }
      std::string from = dir(a) + "/" + name;
      std::string to = dir(Area::Corrupt) + "/" + name;
      auto st = fs.rename(from, to);
      YLOG_WARN("queue file with a foreign name moved aside file=%s/%s ok=%s", areaName(a),
                name.c_str(), st ? "yes" : st.error().message.c_str());
    }
  }
  auto states = fs.listDir(dir(Area::State));
  if (!states) return states.error();
  for (const std::string& name : *states) {
    std::string path = dir(Area::State) + "/" + name;
    if (QueueId::valid(name)) {
      if (messages.count(name)) continue;
      // The message was removed and the crash came before its state file
      // went (remove() deletes the message first).
      YLOG_INFO("queue removing orphan state file id=%s", name.c_str());
      (void)fs.unlink(path);
    } else if (isTempStateName(name)) {
      (void)fs.unlink(path);  // an atomicWrite interrupted by a crash
    } else {
      (void)fs.rename(path, dir(Area::Corrupt) + "/" + name);
      YLOG_WARN("queue state file with a foreign name moved aside file=state/%s", name.c_str());
    }
  }
  return {};
}

Status Queue::attachLoop(event_base* base) {
  if (committer_) fatal("Queue::attachLoop called twice");
  auto c = std::make_unique<Committer>(*this);
  if (auto st = c->start(base); !st) return st;
  committer_ = std::move(c);
  auto h = std::make_unique<Housekeeper>(*this);
  if (auto st = h->start(base); !st) return st;
  housekeeper_ = std::move(h);
  if (opts_.maxSpares > 0) {
    spares_ = std::make_unique<Spares>(*this);
    spares_->start();
  }
  return {};
}

Result<PendingMessage> Queue::begin(const Envelope& env) {
  if (auto st = validateEnvelope(env); !st) return st.error();
  std::string envBytes = encodeEnvelope(env);
  if (envBytes.size() > kMaxEnvelopeSize) return Error{"invalid envelope: too large", EINVAL};
  const std::string header = encodeHeaderPlaceholder(envBytes.size());
  for (int attempt = 0;; ++attempt) {
    PendingMessage m;
    m.queue_ = this;
    m.active_ = true;
    m.bufferSize_ = opts_.writeBuffer;
    m.header_ = header;
    // Appended, not assigned: an assignment would drop the reservation and
    // a large message would grow the buffer by doubling.
    m.buf_.reserve(std::max(opts_.writeBuffer, kHeaderSize + envBytes.size()));
    m.buf_.append(header);
    m.buf_.append(envBytes);
    if (spares_) {
      if (auto spare = spares_->take()) {
        m.id_ = std::move(spare->first);
        m.fd_ = std::move(spare->second);
        m.spare_ = true;
        return m;
      }
    }
    m.id_ = ids_.next();
    // createOnFlush: the file is created by the first flush, on the
    // committer's thread for a message that fits the write buffer. IDs
    // from ids_ are unique for this process, which holds the spool's lock;
    // a clash with a file left in tmp/ then fails that commit (EEXIST), and
    // rename never replaces a message in queue/.
    if (opts_.createOnFlush) return m;
    if (auto st = m.create(); !st) {
      // Another writer with the same pid bits in the same microsecond.
      if (st.error().errnum == EEXIST && attempt < 8) {
        m.active_ = false;
        continue;
      }
      return st.error();
    }
    return m;
  }
}

CommitTicket Queue::commit(PendingMessage&& msg, CommitCallback callback) {
  if (!committer_) fatal("Queue::commit without attachLoop");
  return committer_->submit(std::move(msg), std::move(callback));
}

void Queue::cancelCallback(CommitTicket ticket) {
  if (committer_) committer_->cancel(ticket);
  if (housekeeper_) housekeeper_->cancel(ticket);
}

Result<QueueId> Queue::commitNow(PendingMessage&& msg) {
  CommitJob job;
  job.msg = std::move(msg);
  if (Committer::finishFile(*this, job)) Committer::syncRenamed(*this, {&job});
  return std::move(*job.result);
}

Result<std::vector<QueueId>> Queue::scan(Area area) const {
  auto names = fs().listDir(dir(area));
  if (!names) return names.error();
  std::vector<QueueId> ids;
  for (const std::string& n : *names)
    if (auto id = QueueId::parse(n); id && !(area == Area::Queue && uncommitted(*id)))
      ids.push_back(std::move(*id));
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<QueueFile> Queue::openMessage(const QueueId& id, Area area) const {
  return QueueFile::open(path(area, id), fs());
}

Result<QueueFile> Queue::load(const QueueId& id, Area area) {
  auto f = openMessage(id, area);
  if (!f && f.error().errnum == EBADMSG) {
    YLOG_WARN("queue file is corrupt id=%s error=\"%s\"", id.str().c_str(),
              f.error().message.c_str());
    if (auto st = quarantine(id); !st)
      YLOG_ERROR("queue cannot quarantine id=%s error=\"%s\"", id.str().c_str(),
                 st.error().message.c_str());
  }
  return f;
}

Status Queue::quarantine(const QueueId& id) {
  if (uncommitted(id)) return Error{"no such message " + id.str(), ENOENT};
  Fs& fs = this->fs();
  std::string target = path(Area::Corrupt, id);
  Status moved = Error{"no such message " + id.str(), ENOENT};
  for (Area a : {Area::Queue, Area::Hold}) {
    moved = fs.rename(path(a, id), target);
    if (moved.ok() || moved.error().errnum != ENOENT) break;
  }
  if (!moved && moved.error().errnum == EEXIST) {
    // Quarantined before under the same name: keep both.
    auto now = std::chrono::system_clock::now().time_since_epoch();
    // Appended in two steps: GCC 12 at -O3 warns (-Wrestrict, falsely) on
    // "." + std::to_string(...).
    target += '.';
    target += std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(now).count());
    for (Area a : {Area::Queue, Area::Hold}) {
      moved = fs.rename(path(a, id), target);
      if (moved.ok() || moved.error().errnum != ENOENT) break;
    }
  }
  if (!moved) return moved;
  if (auto st = fs.rename(path(Area::State, id), target + ".state");
      !st && st.error().errnum != ENOENT)
    YLOG_WARN("queue cannot quarantine state file id=%s error=\"%s\"", id.str().c_str(),
              st.error().message.c_str());
  YLOG_WARN("queue file quarantined id=%s file=%s", id.str().c_str(), target.c_str());
  return fs.fsyncDir(dir(Area::Corrupt));
}

Result<MessageState> Queue::loadState(const QueueId& id, size_t recipientCount) const {
  return readState(fs(), spoolDir(), id, recipientCount);
}

Status Queue::saveState(const QueueId& id, const MessageState& state) {
  HouseJob job(id, true);
  job.bytes = encodeState(state);
  if (job.bytes.size() > kMaxStateSize) return Error{"state of " + id.str() + " too large", EFBIG};
  job.ticket = nextTicket_++;  // a unique temporary name
  if (Housekeeper::stepOne(*this, job)) Housekeeper::stepTwo(*this, {&job});
  return std::move(*job.result);
}

CommitTicket Queue::saveStateLater(const QueueId& id, const MessageState& state,
                                   DoneCallback callback) {
  if (!housekeeper_) fatal("Queue::saveStateLater without attachLoop");
  auto job = std::make_unique<HouseJob>(id, true);
  job->bytes = encodeState(state);
  if (job->bytes.size() > kMaxStateSize) {
    // Reported from the loop like any other outcome.
    job->bytes.clear();
    job->save = false;
    job->result = Error{"state of " + id.str() + " too large", EFBIG};
  }
  return housekeeper_->submit(std::move(job), std::move(callback));
}

CommitTicket Queue::removeLater(const QueueId& id, DoneCallback callback) {
  if (!housekeeper_) fatal("Queue::removeLater without attachLoop");
  auto job = std::make_unique<HouseJob>(id, false);
  if (uncommitted(id)) job->result = Error{"no such message " + id.str(), ENOENT};
  return housekeeper_->submit(std::move(job), std::move(callback));
}

Status Queue::remove(const QueueId& id) {
  // A message delivered at its first attempt has no state file: then the
  // unlink alone is the removal and it is not fsync'd (as Postfix does not
  // sync a deletion). A power loss may bring the message back, with no
  // state, and it is delivered again: a duplicate, never a loss. With a
  // state file, the message must be gone for good (its folder fsync'd)
  // before its state goes, or a crash could leave it with no state and
  // deliver it again to every recipient, also those the state says are
  // done. A state file left by a crash inside remove() goes at the next
  // start (recovery) or with the next remove().
  if (uncommitted(id)) return Error{"no such message " + id.str(), ENOENT};
  HouseJob job(id, false);
  if (Housekeeper::stepOne(*this, job)) Housekeeper::stepTwo(*this, {&job});
  return std::move(*job.result);
}

size_t Queue::sparesReady() const { return spares_ ? spares_->ready() : 0; }

bool Queue::uncommitted(const QueueId& id) const { return spares_ && spares_->uncommitted(id); }

Status Queue::moveBetween(const QueueId& id, Area from, Area to) {
  if (auto st = fs().rename(path(from, id), path(to, id)); !st) return st;
  if (auto st = fs().fsyncDir(dir(to)); !st) return st;
  return fs().fsyncDir(dir(from));
}

Status Queue::hold(const QueueId& id) {
  if (uncommitted(id)) return Error{"no such message " + id.str(), ENOENT};
  return moveBetween(id, Area::Queue, Area::Hold);
}
Status Queue::release(const QueueId& id) { return moveBetween(id, Area::Hold, Area::Queue); }

}  // namespace yubin::queue
