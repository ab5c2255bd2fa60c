// The mail queue: writer, group committer, recovery, reader, state files;
// see queue.hpp and docs/queue.md.
#include "queue/queue.hpp"

#include <fcntl.h>
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

  std::string head(std::min<uint64_t>(fileSize, kHeaderSize), '\0');
  auto n = fs.pread(fd->get(), head.data(), head.size(), 0);
  if (!n) return withContext(path, n.error());
  head.resize(*n);
  auto header = parseHeader(head);
  if (!header) return withContext(path, header.error());
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

// ---------------------------------------------------------------- writing

PendingMessage::PendingMessage(PendingMessage&& o) noexcept
    : queue_(o.queue_),
      id_(std::move(o.id_)),
      fd_(std::move(o.fd_)),
      active_(std::exchange(o.active_, false)),
      buf_(std::move(o.buf_)),
      bufferSize_(o.bufferSize_),
      size_(o.size_),
      error_(std::move(o.error_)) {}

PendingMessage& PendingMessage::operator=(PendingMessage&& o) noexcept {
  if (this != &o) {
    abort();
    queue_ = o.queue_;
    id_ = std::move(o.id_);
    fd_ = std::move(o.fd_);
    active_ = std::exchange(o.active_, false);
    buf_ = std::move(o.buf_);
    bufferSize_ = o.bufferSize_;
    size_ = o.size_;
    error_ = std::move(o.error_);
  }
  return *this;
}

PendingMessage::~PendingMessage() { abort(); }

void PendingMessage::abort() {
  if (!active_) return;
  active_ = false;
  buf_.clear();
  if (!fd_.valid()) return;  // never created
  fd_.reset();
  std::string tmp = queue_->path(Area::Tmp, *id_);
  if (auto st = queue_->fs().unlink(tmp); !st && st.error().errnum != ENOENT)
    YLOG_WARN("queue cannot remove aborted message id=%s error=\"%s\"", id_->str().c_str(),
              st.error().message.c_str());
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

Status PendingMessage::flush() {
  if (error_) return *error_;
  if (auto st = create(); !st) return st;
  if (buf_.empty()) return {};
  auto st = writeAllFs(queue_->fs(), fd_.get(), buf_);
  buf_.clear();
  if (!st) {
    setError(withContext("write " + queue_->path(Area::Tmp, *id_), st.error()));
    return *error_;
  }
  return {};
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
  if (auto st = writeAllFs(queue_->fs(), fd_.get(), data); !st) {
    setError(withContext("write " + queue_->path(Area::Tmp, *id_), st.error()));
    return *error_;
  }
  return {};
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
  static void onWake(evutil_socket_t, short, void* arg) { static_cast<LoopReturn*>(arg)->deliver(); }
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
  std::vector<std::unique_ptr<Job>> done_;  // guarded by mu_
  std::unordered_map<CommitTicket, Callback> callbacks_;  // loop thread only
};

// A single-threaded committer makes at most this many renames durable with
// one directory fsync.
constexpr size_t kMaxGroup = 256;

// The group committer. Each commit goes through two steps:
//  1. on one of fsyncThreads file threads, as soon as one is free: write
//     the rest of the buffer, patch the size, fsync the file, rename it
//     into queue/ (only a file whose data is on disk gets a name there);
//  2. fsync of queue/, shared: one thread at a time (whichever file thread
//     finds no directory fsync under way) syncs the directory for every
//     rename done so far, then again for the renames that happened while it
//     was syncing, until none is left.
// So file fsyncs of new commits run while the directory fsync of earlier
// ones is under way, and every commit that reaches step 2 during one
// directory fsync shares the next one: the batch is whatever piled up,
// never a wait for company, so a lone commit is not delayed.
class Committer {
 public:
  explicit Committer(Queue& q) : q_(q) {}
  ~Committer();
  Status start(event_base* base);
  CommitTicket submit(PendingMessage&& msg, CommitCallback cb);
  void cancel(CommitTicket t) { return_.cancel(t); }

  // Step 1 for one job. True when the file is in queue/; false when the job
  // failed (its result is set, nothing of it is left in tmp/).
  static bool finishFile(Queue& q, CommitJob& job);
  // Step 2: one fsync of queue/ for jobs that passed step 1. Sets every
  // job's result; on failure their files are removed from queue/.
  static void syncRenamed(Queue& q, const std::vector<CommitJob*>& jobs);

 private:
  static void failJob(CommitJob& job, const Error& e);
  void threadMain();

  Queue& q_;
  LoopReturn<CommitJob, CommitCallback> return_;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<CommitJob>> jobs_;      // step 1 to do; guarded by mu_
  std::vector<std::unique_ptr<CommitJob>> renamed_;  // step 2 to do; guarded by mu_
  bool dirSyncing_ = false;                          // guarded by mu_
  bool stopping_ = false;                            // guarded by mu_
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
  if (auto st = fs.fsync(m.fd_.get()); !st) {
    failJob(job, withContext("fsync " + m.id_->str(), st.error()));
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
  for (size_t i = 0; i < q_.opts_.fsyncThreads; ++i)
    threads_.emplace_back([this] { threadMain(); });
  return {};
}

Committer::~Committer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

CommitTicket Committer::submit(PendingMessage&& msg, CommitCallback cb) {
  auto job = std::make_unique<CommitJob>();
  job->ticket = q_.nextTicket_++;
  job->msg = std::move(msg);
  CommitTicket t = job->ticket;
  return_.expect(t, std::move(cb));
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return t;
}

void Committer::threadMain() {
  std::unique_lock lock(mu_);
  for (;;) {
    // Stopping: every job handed over is still made durable first.
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;
    std::unique_ptr<CommitJob> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    bool inQueue = finishFile(q_, *job);
    lock.lock();
    if (!inQueue) {
      std::vector<std::unique_ptr<CommitJob>> failed;
      failed.push_back(std::move(job));
      lock.unlock();
      return_.post(std::move(failed));
      lock.lock();
      continue;
    }
    renamed_.push_back(std::move(job));
    // A single thread cannot overlap the two steps: it finishes what is
    // waiting first (up to kMaxGroup files), then syncs the directory once
    // for all of them, as a batch.
    if (q_.opts_.fsyncThreads == 1 && !jobs_.empty() && renamed_.size() < kMaxGroup) continue;
    // The thread that syncs the directory goes on while renames keep
    // coming in behind it; the others go back to files.
    while (!dirSyncing_ && !renamed_.empty()) {
      dirSyncing_ = true;
      std::vector<std::unique_ptr<CommitJob>> group;
      group.swap(renamed_);
      lock.unlock();
      std::vector<CommitJob*> ptrs;
      ptrs.reserve(group.size());
      for (auto& j : group) ptrs.push_back(j.get());
      syncRenamed(q_, ptrs);
      return_.post(std::move(group));
      lock.lock();
      dirSyncing_ = false;
    }
  }
}

// ---------------------------------------------------------------- housekeeper

// One state save or removal for the housekeeper.
struct HouseJob {
  HouseJob(QueueId i, bool s) : id(std::move(i)), save(s) {}
  CommitTicket ticket = 0;
  QueueId id;
  bool save = false;   // else a removal
  std::string bytes;   // save: the encoded state
  std::string syncDir; // set by step 1: the folder whose fsync the job waits for
  std::optional<Status> result;
};

// The queue manager's state saves and removals, in the committer's two
// steps: step 1 on one of stateThreads threads (a save: write, fsync and
// rename the state file; a removal: unlink the message), step 2 shared:
// one thread at a time fsyncs each folder named by the jobs that reached
// it (state/, queue/, hold/) once, for all of them, then finishes them (a
// removal: unlink the state file, now that the message is gone for good).
class Housekeeper {
 public:
  explicit Housekeeper(Queue& q) : q_(q) {}
  ~Housekeeper();
  Status start(event_base* base);
  CommitTicket submit(std::unique_ptr<HouseJob> job, DoneCallback cb);
  void cancel(CommitTicket t) { return_.cancel(t); }

  // Step 1. True when the job waits for the fsync of job.syncDir; false
  // when it is done (result set).
  static bool stepOne(Queue& q, HouseJob& job);
  // Step 2 for jobs that passed step 1: sets every result.
  static void stepTwo(Queue& q, const std::vector<HouseJob*>& jobs);

 private:
  void threadMain();

  Queue& q_;
  LoopReturn<HouseJob, DoneCallback> return_;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<HouseJob>> jobs_;      // guarded by mu_
  std::vector<std::unique_ptr<HouseJob>> synced_;   // step 2 to do; guarded by mu_
  bool dirSyncing_ = false;                         // guarded by mu_
  bool stopping_ = false;                           // guarded by mu_
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
      if (auto u = fs.unlink(q.path(Area::State, job->id)); !u && u.error().errnum != ENOENT)
        r = u;
    }
    job->result = r;
  }
}

Status Housekeeper::start(event_base* base) {
  if (auto st = return_.start(base, "queue housekeeper"); !st) return st;
  for (size_t i = 0; i < std::max<size_t>(q_.opts_.stateThreads, 1); ++i)
    threads_.emplace_back([this] { threadMain(); });
  return {};
}

Housekeeper::~Housekeeper() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

CommitTicket Housekeeper::submit(std::unique_ptr<HouseJob> job, DoneCallback cb) {
  job->ticket = q_.nextTicket_++;
  CommitTicket t = job->ticket;
  return_.expect(t, std::move(cb));
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return t;
}

void Housekeeper::threadMain() {
  std::unique_lock lock(mu_);
  for (;;) {
    // Stopping: every job handed over is still done first.
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;
    std::unique_ptr<HouseJob> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    bool waits = stepOne(q_, *job);
    std::vector<std::unique_ptr<HouseJob>> finished;
    if (!waits) {
      finished.push_back(std::move(job));
      return_.post(std::move(finished));
      lock.lock();
      continue;
    }
    lock.lock();
    synced_.push_back(std::move(job));
    while (!dirSyncing_ && !synced_.empty()) {
      dirSyncing_ = true;
      std::vector<std::unique_ptr<HouseJob>> group;
      group.swap(synced_);
      lock.unlock();
      std::vector<HouseJob*> ptrs;
      ptrs.reserve(group.size());
      for (auto& j : group) ptrs.push_back(j.get());
      stepTwo(q_, ptrs);
      return_.post(std::move(group));
      lock.lock();
      dirSyncing_ = false;
    }
  }
}

// ---------------------------------------------------------------- the queue

Queue::Queue(QueueOptions opts) : opts_(std::move(opts)), ids_(opts_.pid) {}

Queue::~Queue() {
  housekeeper_.reset();
  committer_.reset();
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
  return {};
}

Result<PendingMessage> Queue::begin(const Envelope& env) {
  if (auto st = validateEnvelope(env); !st) return st.error();
  std::string envBytes = encodeEnvelope(env);
  if (envBytes.size() > kMaxEnvelopeSize) return Error{"invalid envelope: too large", EINVAL};
  for (int attempt = 0;; ++attempt) {
    PendingMessage m;
    m.queue_ = this;
    m.id_ = ids_.next();
    m.active_ = true;
    m.bufferSize_ = opts_.writeBuffer;
    m.buf_.reserve(std::max(opts_.writeBuffer, kHeaderSize + envBytes.size()));
    m.buf_ = encodeHeaderPlaceholder(envBytes.size());
    m.buf_ += envBytes;
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
    if (auto id = QueueId::parse(n)) ids.push_back(std::move(*id));
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
  HouseJob job(id, false);
  if (Housekeeper::stepOne(*this, job)) Housekeeper::stepTwo(*this, {&job});
  return std::move(*job.result);
}

Status Queue::moveBetween(const QueueId& id, Area from, Area to) {
  if (auto st = fs().rename(path(from, id), path(to, id)); !st) return st;
  if (auto st = fs().fsyncDir(dir(to)); !st) return st;
  return fs().fsyncDir(dir(from));
}

Status Queue::hold(const QueueId& id) { return moveBetween(id, Area::Queue, Area::Hold); }
Status Queue::release(const QueueId& id) { return moveBetween(id, Area::Hold, Area::Queue); }

}  // namespace yubin::queue
