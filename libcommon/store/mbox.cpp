// mbox (mboxrd) appending with locks, and the mbox parser; see mbox.hpp.
#include "store/mbox.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "base/log.hpp"
#include "base/strings.hpp"
#include "store/transform.hpp"

namespace yubin::store {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr size_t kChunk = size_t{64} * 1024;
// Without keepData only a line's start matters (From_ detection, parsing).
constexpr size_t kLineCap = 4096;
// Refresh the dot-lock's mtime at most this often, so a long bulk write
// is never mistaken for a stale lock.
constexpr auto kTouchEvery = std::chrono::seconds(30);

// Sleeps between lock attempts: 1 ms doubling to 100 ms, with jitter so
// several waiting processes do not wake in step.
class Backoff {
 public:
  explicit Backoff(std::chrono::milliseconds timeout)
      : deadline_(SteadyClock::now() + timeout),
        rng_(static_cast<unsigned>(::getpid()) ^
             static_cast<unsigned>(SteadyClock::now().time_since_epoch().count())) {}
  // False once the deadline has passed; else sleeps and returns true.
  bool wait() {
    auto now = SteadyClock::now();
    if (now >= deadline_) return false;
    std::uniform_int_distribution<long> jitter(stepUs_ / 2, stepUs_ + stepUs_ / 2);
    auto d = std::chrono::microseconds(jitter(rng_));
    std::this_thread::sleep_for(std::min<SteadyClock::duration>(d, deadline_ - now));
    stepUs_ = std::min(stepUs_ * 2, 100000L);
    return true;
  }

 private:
  SteadyClock::time_point deadline_;
  std::minstd_rand rng_;
  long stepUs_ = 1000;
};

std::string localHostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// Open file description locks where the kernel has them (Linux 3.15+):
// they belong to the open file, not to the process, so two threads of one
// process exclude each other, and closing another descriptor of the same
// file does not drop them. Other processes' classic fcntl locks conflict
// with them both ways, so mutt, procmail and Dovecot still see them.
#ifdef F_OFD_SETLK
constexpr int kSetLock = F_OFD_SETLK;
#else
constexpr int kSetLock = F_SETLK;
#endif

Status fcntlLock(int fd, short type, std::chrono::milliseconds timeout, const std::string& path) {
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);  // l_pid must be 0 for an OFD lock
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  Backoff backoff(timeout);
  for (;;) {
    if (::fcntl(fd, kSetLock, &fl) == 0) return {};
    if (errno != EACCES && errno != EAGAIN && errno != EINTR) return errnoError("lock " + path);
    if (!backoff.wait())
      return Error{"lock " + path + ": timed out, held by another process", ETIMEDOUT};
  }
}

// True when the dot-lock at path was stale and is gone now (or vanished
// by itself): the caller retries at once.
bool removeIfStale(Fs& fs, const std::string& path, const MboxLockSettings& s,
                   const std::string& host) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  bool stale = ::time(nullptr) - st.st_mtime > s.staleAfter.count();
  std::string why = "old";
  if (!stale) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    char buf[256];
    ssize_t n = fd ? ::read(fd.get(), buf, sizeof buf - 1) : -1;
    if (n > 0) {
      std::string_view c(buf, static_cast<size_t>(n));
      size_t digits = 0;
      while (digits < c.size() && c[digits] >= '0' && c[digits] <= '9') ++digits;
      auto pid = parseU64(c.substr(0, digits));
      std::string_view lockHost =
          digits < c.size() ? trim(c.substr(digits + 1)) : std::string_view();
      if (pid && *pid > 0 && *pid <= INT_MAX && (lockHost.empty() || lockHost == host) &&
          ::kill(static_cast<pid_t>(*pid), 0) != 0 && errno == ESRCH) {
        stale = true;
        why = "dead pid " + std::to_string(*pid);
      }
    }
  }
  if (!stale) return false;
  // Only remove the very file we judged.
  struct stat again;
  if (::lstat(path.c_str(), &again) != 0) return errno == ENOENT;
  if (again.st_ino != st.st_ino || again.st_dev != st.st_dev) return true;
  if (fs.unlink(path.c_str()) != 0) return errno == ENOENT;
  YLOG_NOTICE("mbox: removed stale dot-lock path=%s reason=%s", path.c_str(), why.c_str());
  return true;
}

// True when we now hold the dot-lock; false when DotLock::Try gave up on
// a directory that refuses it.
//
// The lock is a file written first under a name of its own and then
// link(2)ed to <mbox>.lock, so the lock never exists without its
// "<pid> <host>": a process killed between creating it and writing it
// would leave an empty lock that only its age (staleAfter, 5 min) could
// clear, and every delivery to the mailbox would wait until then. The
// private name ends in ".lock" too, so a mailbox listing skips it.
Result<bool> takeDotLock(Fs& fs, const std::string& path, const MboxLockSettings& s) {
  const std::string host = s.hostName.empty() ? localHostName() : s.hostName;
  static std::atomic<uint64_t> counter{0};
  const std::string mine =
      path + "." + std::to_string(::getpid()) + "." +
      std::to_string(counter.fetch_add(1, std::memory_order_relaxed)) + "." +
      std::to_string(SteadyClock::now().time_since_epoch().count() & 0xffffff) + ".lock";
  {
    UniqueFd fd(fs.open(mine.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) {
      int err = errno;
      if (s.dotLock == DotLock::Try && (err == EACCES || err == EPERM || err == EROFS))
        return false;
      return errnoError("create " + mine, err);
    }
    Status st = writeAllFs(fs, fd.get(), std::to_string(::getpid()) + " " + host + "\n", path);
    if (st && ::close(fd.release()) != 0) st = errnoError("close " + mine);
    if (!st) {
      fs.unlink(mine.c_str());
      return st.error();
    }
  }
  ScopeExit removeMine([&] { fs.unlink(mine.c_str()); });
  Backoff backoff(s.timeout);
  for (;;) {
    if (fs.link(mine.c_str(), path.c_str()) == 0) return true;
    int err = errno;
    if (err == EEXIST) {
      if (removeIfStale(fs, path, s, host)) continue;
      if (!backoff.wait())
        return Error{"dot-lock " + path + ": timed out, held by another process", ETIMEDOUT};
      continue;
    }
    if (s.dotLock == DotLock::Try && (err == EACCES || err == EPERM || err == EROFS)) return false;
    return errnoError("link " + path, err);
  }
}

int monthIndex(std::string_view t) {
  for (int i = 0; i < 12; ++i) {
    if (iequals(t, kMonths[i])) return i;
  }
  return -1;
}

bool isWeekday(std::string_view t) {
  return std::any_of(std::begin(kDays), std::end(kDays),
                     [&](const char* d) { return iequals(t, d); });
}

std::optional<int> smallNumber(std::string_view t, size_t minDigits, size_t maxDigits) {
  if (t.size() < minDigits || t.size() > maxDigits) return std::nullopt;
  auto v = parseU64(t);
  if (!v) return std::nullopt;
  return static_cast<int>(*v);
}

struct Token {
  size_t pos;
  std::string_view text;
};

// tokens[k] is a weekday and tokens[k+1] a month: parse the rest.
std::optional<int64_t> parseDateAt(const std::vector<Token>& tok, size_t k) {
  size_t i = k + 1;
  auto next = [&]() -> std::string_view {
    return i < tok.size() ? tok[i++].text : std::string_view();
  };
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  tm.tm_mon = monthIndex(next());
  auto day = smallNumber(next(), 1, 2);
  if (!day || *day < 1 || *day > 31) return std::nullopt;
  tm.tm_mday = *day;
  std::string_view time = next();
  auto parts = splitAny(time, ":");
  if (parts.size() < 2 || parts.size() > 3 || time.front() == ':' || time.back() == ':')
    return std::nullopt;
  auto hh = smallNumber(parts[0], 1, 2), mm = smallNumber(parts[1], 2, 2);
  auto ss = parts.size() == 3 ? smallNumber(parts[2], 2, 2) : std::optional<int>(0);
  if (!hh || !mm || !ss || *hh > 23 || *mm > 59 || *ss > 60) return std::nullopt;
  tm.tm_hour = *hh;
  tm.tm_min = *mm;
  tm.tm_sec = *ss;
  std::string_view yearText = next();
  auto year = smallNumber(yearText, 4, 4);
  if (!year) year = smallNumber(next(), 4, 4);  // a zone name came first
  if (!year) return std::nullopt;
  tm.tm_year = *year - 1900;
  int64_t offset = 0;
  std::string_view z = next();
  if (z.size() == 5 && (z[0] == '+' || z[0] == '-')) {
    auto hhmm = smallNumber(z.substr(1), 4, 4);
    if (hhmm && *hhmm % 100 < 60) {
      offset = int64_t{*hhmm / 100} * 3600 + int64_t{*hhmm % 100} * 60;
      if (z[0] == '-') offset = -offset;
    }
  }
  return static_cast<int64_t>(::timegm(&tm)) - offset;
}

}  // namespace

// ---- From_ lines ----

std::string mboxFormatDate(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm;
  if (!::gmtime_r(&tt, &tm)) {
    tt = 0;
    ::gmtime_r(&tt, &tm);
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s %s %2d %02d:%02d:%02d %d", kDays[tm.tm_wday % 7],
                kMonths[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                tm.tm_year + 1900);
  return buf;
}

std::string mboxFromLine(std::string_view sender, int64_t date) {
  std::string s = sender.empty() ? std::string("MAILER-DAEMON") : std::string(sender);
  for (char& c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) c = '_';
  }
  return "From " + s + " " + mboxFormatDate(date) + "\n";
}

MboxFromLine mboxParseFromLine(std::string_view line) {
  MboxFromLine out;
  if (line.substr(0, 5) == "From ") line.remove_prefix(5);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::vector<Token> tok;
  for (size_t i = 0; i < line.size();) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) tok.push_back({start, line.substr(start, i - start)});
  }
  for (size_t k = tok.size(); k-- > 0;) {
    if (k + 1 >= tok.size() || !isWeekday(tok[k].text) || monthIndex(tok[k + 1].text) < 0) continue;
    auto d = parseDateAt(tok, k);
    if (!d) continue;
    out.sender = std::string(trim(line.substr(0, tok[k].pos)));
    out.dateText = std::string(trim(line.substr(tok[k].pos)));
    out.date = d;
    return out;
  }
  if (!tok.empty()) {
    out.sender = std::string(tok[0].text);
    out.dateText = std::string(trim(line.substr(tok[0].pos + tok[0].text.size())));
  }
  return out;
}

namespace {

bool hiddenField(std::string_view name) {
  for (std::string_view h : {"Status", "X-Status", "X-Keywords", "X-UID", "X-IMAP", "X-IMAPbase"})
    if (iequals(name, h)) return true;
  return false;
}

// Longer than any hidden field name: the field is decided as kept.
constexpr size_t kMaxHiddenName = 10;

}  // namespace

// ---- MboxMetaFilter ----

void MboxMetaFilter::feed(std::string_view bytes, std::string& out) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    switch (state_) {
      case State::Body:
        out.append(bytes.substr(i));
        return;
      case State::LineStart:
        if (c == ' ' || c == '\t') {
          state_ = dropping_ ? State::Drop : State::Keep;
          if (!dropping_) out += c;
        } else if (c == '\n') {
          out += c;
          state_ = State::Body;
        } else {
          name_.assign(1, c);
          state_ = State::Name;
        }
        break;
      case State::Name:
        if (c == ':') {
          dropping_ = hiddenField(name_);
          if (!dropping_) {
            out += name_;
            out += c;
          }
          name_.clear();
          state_ = dropping_ ? State::Drop : State::Keep;
        } else if (c == '\n') {
          out += name_;
          out += c;
          state_ = name_ == "\r" ? State::Body : State::LineStart;
          name_.clear();
          dropping_ = false;
        } else if (name_.size() >= kMaxHiddenName || c == ' ' || c == '\t' || c == '\r') {
          out += name_;
          out += c;
          name_.clear();
          dropping_ = false;
          state_ = State::Keep;
        } else {
          name_ += c;
        }
        break;
      case State::Keep:
        out += c;
        if (c == '\n') state_ = State::LineStart;
        break;
      case State::Drop:
        if (c == '\n') state_ = State::LineStart;
        break;
    }
  }
}

void MboxMetaFilter::finish(std::string& out) {
  if (state_ == State::Name) out += name_;
  name_.clear();
  state_ = State::Body;
}

// ---- MboxWriter ----

Result<MboxWriter> MboxWriter::open(const std::string& path, const MboxLockSettings& lock, Fs& fs) {
  // A reader that rewrites the mbox (POP3/IMAP expunge: temp file, then
  // rename over the path) may replace the file while we wait for its
  // lock. Once the locks are ours, the path must still name the inode we
  // locked; otherwise we hold the lock of a file nobody will read again, so
  // start over on the new one.
  for (int attempt = 0;; ++attempt) {
    UniqueFd fd(fs.open(path.c_str(),
                        O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                        0600));
    if (!fd) return errnoError("open " + path);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return errnoError("fstat " + path);
    if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file", EINVAL};
    if (auto s = fcntlLock(fd.get(), F_WRLCK, lock.timeout, path); !s) return s.error();
    MboxWriter w(fs, path, std::move(fd));
    if (lock.dotLock != DotLock::Off) {
      std::string lockPath = path + ".lock";
      auto held = takeDotLock(fs, lockPath, lock);
      if (!held) return held.error();
      if (*held) {
        w.dotLockPath_ = std::move(lockPath);
        w.lastTouch_ = SteadyClock::now();
      }
    }
    struct stat now;
    if (::lstat(path.c_str(), &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino)
      return w;
    if (attempt >= 10) return Error{path + ": replaced while waiting for its lock, 10 times", EAGAIN};
    // w releases its locks here; try the file now at the path.
  }
}

MboxWriter::MboxWriter(MboxWriter&& o) noexcept
    : fs_(o.fs_),
      path_(std::move(o.path_)),
      fd_(std::move(o.fd_)),
      dotLockPath_(std::exchange(o.dotLockPath_, std::string())),
      lastTouch_(o.lastTouch_) {}

MboxWriter::~MboxWriter() { release(); }

void MboxWriter::release() {
  // The dot-lock goes first, while the fcntl lock still keeps our own
  // kind away from it.
  if (!dotLockPath_.empty()) {
    if (fs_->unlink(dotLockPath_.c_str()) != 0)
      YLOG_WARN("mbox: cannot remove dot-lock path=%s errno=%d", dotLockPath_.c_str(), errno);
    dotLockPath_.clear();
  }
  if (fd_) {
    struct flock fl;
    std::memset(&fl, 0, sizeof fl);
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    ::fcntl(fd_.get(), kSetLock, &fl);
  }
}

Status MboxWriter::close() {
  release();
  if (fd_ && ::close(fd_.release()) != 0) return errnoError("close " + path_);
  return {};
}

void MboxWriter::touchDotLock() {
  if (dotLockPath_.empty()) return;
  auto now = SteadyClock::now();
  if (now - lastTouch_ < kTouchEvery) return;
  lastTouch_ = now;
  ::utimensat(AT_FDCWD, dotLockPath_.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
}

Status MboxWriter::sync() {
  if (!fd_) return Error{path_ + ": closed", EBADF};
  if (fs_->fsync(fd_.get()) != 0) return errnoError("fsync " + path_);
  return {};
}

Status MboxWriter::append(std::string_view sender, int64_t date, std::string_view prefix,
                          const MessageSource& msg, const MboxAppendOptions& opts) {
  if (!fd_) return Error{path_ + ": closed", EBADF};
  touchDotLock();
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return errnoError("fstat " + path_);
  const off_t oldSize = st.st_size;
  // The new From_ line must follow an empty line; repair a previous
  // message that ended without its separator (written by something else
  // or cut short by a crash).
  std::string lead;
  if (oldSize > 0) {
    char tail[2] = {0, 0};
    size_t n = oldSize >= 2 ? 2 : 1;
    ssize_t r;
    do {
      r = ::pread(fd_.get(), tail + (2 - n), n, oldSize - static_cast<off_t>(n));
    } while (r < 0 && errno == EINTR);
    if (r != static_cast<ssize_t>(n)) return errnoError("read " + path_, r < 0 ? errno : EIO);
    if (tail[1] != '\n') {
      lead = "\n\n";
    } else if (tail[0] != '\n') {
      lead = "\n";
    }
  }
  auto rollback = ScopeExit([&] {
    if (fs_->ftruncate(fd_.get(), oldSize) != 0) {
      YLOG_ERROR("mbox: cannot truncate back after a failed append path=%s size=%lld errno=%d",
                 path_.c_str(), static_cast<long long>(oldSize), errno);
    }
    (void)fs_->fsync(fd_.get());
  });
  MessageWriter w(*fs_, fd_.get(), path_, opts.lineEndings, /*mboxQuote=*/true);
  if (auto s = w.raw(lead); !s) return s;
  if (auto s = w.raw(mboxFromLine(sender, date)); !s) return s;
  if (auto s = w.put(prefix); !s) return s;
  if (opts.hideImapState) {
    MboxMetaFilter filter;
    std::string visible;
    auto put = [&](std::string_view c) {
      visible.clear();
      filter.feed(c, visible);
      return visible.empty() ? Status{} : w.put(visible);
    };
    if (auto s = msg.forEachChunk(put); !s) return s;
    visible.clear();
    filter.finish(visible);
    if (!visible.empty()) {
      if (auto s = w.put(visible); !s) return s;
    }
  } else {
    if (auto s = msg.forEachChunk([&](std::string_view c) { return w.put(c); }); !s) return s;
  }
  w.endMessage();
  if (w.lastByte() != '\n') {
    if (auto s = w.raw("\n"); !s) return s;
  }
  if (auto s = w.raw("\n"); !s) return s;
  if (auto s = w.flush(); !s) return s;
  if (opts.sync) {
    if (auto s = sync(); !s) return s;
  }
  rollback.dismiss();
  return {};
}

Status appendToMbox(const std::string& path, std::string_view sender, int64_t date,
                    std::string_view prefix, const MessageSource& msg, const MboxLockSettings& lock,
                    const MboxAppendOptions& opts, Fs& fs) {
  auto w = MboxWriter::open(path, lock, fs);
  if (!w) return w.error();
  if (auto s = w->append(sender, date, prefix, msg, opts); !s) return s;
  return w->close();
}

// ---- MboxParser ----

Status MboxParser::feed(std::string_view in) {
  while (!in.empty()) {
    const void* nl = std::memchr(in.data(), '\n', in.size());
    size_t n = nl ? static_cast<size_t>(static_cast<const char*>(nl) - in.data()) + 1 : in.size();
    std::string_view piece = in.substr(0, n);
    if (keepData_) {
      acc_.append(piece);
    } else if (acc_.size() < kLineCap) {
      acc_.append(piece.substr(0, kLineCap - acc_.size()));
    }
    lineLen_ += n;
    in.remove_prefix(n);
    if (nl) {
      if (auto st = endLine(true); !st) return st;
    }
  }
  return {};
}

Status MboxParser::endLine(bool complete) {
  std::string_view line = std::string_view(acc_).substr(lineStart_);
  const uint64_t lineOffset = pos_;
  pos_ += lineLen_;
  const bool separator =
      line.substr(0, 5) == "From " && (lineOffset == 0 || (inMessage_ && prevBlank_));
  if (separator) {
    MboxFromLine from = mboxParseFromLine(line);
    if (inMessage_) {
      acc_.resize(lineStart_);
      if (auto st = emit(lineOffset - (prevBlank_ ? prevBlankLen_ : 0)); !st) return st;
    }
    acc_.clear();
    cur_ = MboxMessage{};
    cur_.offset = lineOffset;
    cur_.dataOffset = pos_;
    cur_.from = std::move(from);
    inMessage_ = true;
    prevBlank_ = false;
  } else {
    if (!inMessage_) {
      cur_ = MboxMessage{};
      cur_.hasFromLine = false;
      cur_.offset = cur_.dataOffset = lineOffset;
      inMessage_ = true;
    }
    prevBlank_ = complete && (lineLen_ == 1 || (lineLen_ == 2 && line[0] == '\r'));
    prevBlankLen_ = lineLen_;
    if (keepData_) {
      if (isQuotedFromLine(line)) acc_.erase(lineStart_, 1);
    } else {
      acc_.clear();
    }
  }
  lineStart_ = acc_.size();
  lineLen_ = 0;
  return {};
}

Status MboxParser::emit(uint64_t endOffset) {
  cur_.endOffset = endOffset;
  if (keepData_) {
    if (prevBlank_) acc_.resize(acc_.size() - prevBlankLen_);
    cur_.data = std::move(acc_);
  }
  acc_.clear();
  inMessage_ = false;
  return cb_(std::move(cur_));
}

Status MboxParser::finish() {
  if (lineLen_ > 0) {
    if (auto st = endLine(false); !st) return st;
  }
  Status st;
  if (inMessage_) st = emit(pos_ - (prevBlank_ ? prevBlankLen_ : 0));
  acc_.clear();
  lineStart_ = 0;
  lineLen_ = 0;
  pos_ = 0;
  inMessage_ = prevBlank_ = false;
  return st;
}

Status readMbox(const std::string& path, const MboxParser::Callback& cb,
                const MboxReadOptions& opts) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return errnoError("open " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errnoError("fstat " + path);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file", EINVAL};
  if (opts.lock) {
    if (auto s = fcntlLock(fd.get(), F_RDLCK, opts.lockTimeout, path); !s) return s;
  }
  MboxParser parser(cb, opts.keepData);
  std::string buf(kChunk, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("read " + path);
    }
    if (n == 0) break;
    if (auto s = parser.feed(std::string_view(buf.data(), static_cast<size_t>(n))); !s) return s;
  }
  return parser.finish();
}

}  // namespace yubin::store
