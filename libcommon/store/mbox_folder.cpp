// MboxFolder; see mbox_folder.hpp.
//
// One read descriptor stays open for the whole session. POSIX record locks
// belong to the process and the file: closing ANY descriptor of the mbox
// drops the process's fcntl lock on it. So the read descriptor is opened
// before the lock is taken and closed only after it is released (the
// MboxWriter that holds it is always a local of snapshot() or expunge()).
#include "store/mbox_folder.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "store/transform.hpp"

namespace yubin::store {
namespace {

constexpr size_t kChunk = size_t{64} * 1024;

class Hasher {
 public:
  Hasher() { crypto_generichash_init(&st_, nullptr, 0, crypto_generichash_BYTES); }
  void feed(std::string_view b) {
    crypto_generichash_update(&st_, reinterpret_cast<const unsigned char*>(b.data()), b.size());
  }
  std::string done() {
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash_final(&st_, h, sizeof h);
    return std::string(reinterpret_cast<const char*>(h), sizeof h);
  }

 private:
  crypto_generichash_state st_;
};

// The X-UIDL: field of the header block, trimmed; "" when absent.
std::string xUidl(std::string_view data) {
  std::string out;
  mboxHeaderLines(data, [&](std::string_view line, size_t) {
    if (!istartsWith(line, "X-UIDL:")) return true;
    out = std::string(trim(line.substr(7)));
    return false;
  });
  return out;
}

class MboxReader final : public MessageReader {
 public:
  MboxReader(int fd, uint64_t begin, uint64_t end, std::shared_ptr<void> keepAlive)
      : fd_(fd), pos_(begin), end_(end), keepAlive_(std::move(keepAlive)) {}
  Result<size_t> read(std::string& out, size_t max) override {
    size_t old = out.size();
    while (out.size() == old && !done_) {
      if (pos_ >= end_) {
        plain_.clear();
        un_.finish(plain_);
        meta_.feed(plain_, out);
        meta_.finish(out);
        done_ = true;
        break;
      }
      size_t n = static_cast<size_t>(std::min<uint64_t>(std::max<size_t>(max, 1), end_ - pos_));
      buf_.resize(n);
      auto got = mboxPread(fd_, buf_.data(), n, pos_);
      if (!got) return got.error();
      if (*got == 0) return Error{"mbox shorter than its snapshot", EIO};
      pos_ += *got;
      plain_.clear();
      un_.feed(std::string_view(buf_.data(), *got), plain_);
      meta_.feed(plain_, out);
    }
    return out.size() - old;
  }

 private:
  int fd_;
  uint64_t pos_;
  uint64_t end_;
  std::shared_ptr<void> keepAlive_;
  bool done_ = false;
  std::string buf_;
  std::string plain_;
  MboxUnquoter un_;
  MboxMetaFilter meta_;
};


}  // namespace

std::string mboxVisible(std::string_view data) {
  std::string out;
  out.reserve(data.size());
  MboxMetaFilter f;
  f.feed(data, out);
  f.finish(out);
  return out;
}

Result<size_t> mboxPread(int fd, char* buf, size_t n, uint64_t off) {
  for (;;) {
    ssize_t got = ::pread(fd, buf, n, static_cast<off_t>(off));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errnoError("read mbox");
    return static_cast<size_t>(got);
  }
}

void mboxHeaderLines(std::string_view data,
                     const std::function<bool(std::string_view, size_t)>& fn) {
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    std::string_view line =
        data.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || !fn(line, pos)) return;
    if (nl == std::string_view::npos) return;
    pos = nl + 1;
  }
}

std::string mboxBaseField(std::string_view data) {
  std::string out;
  mboxHeaderLines(data, [&](std::string_view line, size_t) {
    if (!istartsWith(line, "X-IMAPbase:")) return true;
    out = std::string(trim(line.substr(11)));
    return false;
  });
  return out;
}

std::string mboxPseudoMessage(std::string_view base, int64_t now) {
  return mboxFromLine("MAILER-DAEMON", now) + "Date: " + mboxFormatDate(now) +
         "\nFrom: Mail system internal data <MAILER-DAEMON@localhost>\n"
         "Subject: Folder state, do not delete\n"
         "X-IMAP: " +
         std::string(base) +
         "\nStatus: RO\n\n"
         "This entry holds the folder's IMAP state (UIDVALIDITY, next UID and\n"
         "keywords) while the folder has no messages. It is not mail; IMAP and\n"
         "POP3 clients never see it. Removing it resets the folder's UIDs.\n\n";
}

bool mboxIsPseudoMessage(std::string_view data) {
  bool found = false;
  mboxHeaderLines(data, [&](std::string_view line, size_t) {
    found = istartsWith(line, "X-IMAP:");
    return !found;
  });
  return found;
}

std::unique_ptr<MessageReader> mboxMessageReader(int fd, uint64_t begin, uint64_t end,
                                                 std::shared_ptr<void> keepAlive) {
  return std::make_unique<MboxReader>(fd, begin, end, std::move(keepAlive));
}

// ---- MboxUnquoter ----

void MboxUnquoter::feed(std::string_view bytes, std::string& out) {
  held_.append(bytes);
  drain(out, false);
}

void MboxUnquoter::finish(std::string& out) { drain(out, true); }

void MboxUnquoter::drain(std::string& out, bool final) {
  static constexpr std::string_view kFrom = "From ";
  size_t i = 0;
  while (i < held_.size()) {
    if (atLineStart_) {
      size_t j = i;
      while (j < held_.size() && held_[j] == '>') ++j;
      if (j > i) {
        std::string_view after = std::string_view(held_).substr(j);
        if (!final && after.size() < kFrom.size() && kFrom.substr(0, after.size()) == after)
          break;  // ">>Fro": the rest of the line decides
        if (after.substr(0, kFrom.size()) == kFrom) ++i;
      }
      atLineStart_ = false;
    }
    size_t nl = held_.find('\n', i);
    size_t stop = nl == std::string::npos ? held_.size() : nl + 1;
    out.append(held_, i, stop - i);
    if (nl != std::string::npos) atLineStart_ = true;
    i = stop;
  }
  held_.erase(0, i);
}

// ---- MboxFolder ----

Result<std::unique_ptr<MboxFolder>> MboxFolder::open(const std::string& path,
                                                     const MboxLockSettings& lock, Fs& fs) {
  std::unique_ptr<MboxFolder> f(new MboxFolder(path, lock, fs));
  if (auto st = f->snapshot(); !st) return st.error();
  return f;
}

Status MboxFolder::snapshot() {
  fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
  if (!fd_) {
    if (errno == ENOENT) return {};  // nothing delivered yet
    return errnoError("open " + path_);
  }
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return errnoError("fstat " + path_);
  if (!S_ISREG(st.st_mode)) return Error{path_ + ": not a regular file", EINVAL};
  auto w = MboxWriter::open(path_, lock_, fs_);
  if (!w) return w.error();
  struct stat now;
  if (::fstat(fd_.get(), &now) != 0) return errnoError("fstat " + path_);
  struct stat named;
  if (::lstat(path_.c_str(), &named) != 0 || named.st_ino != now.st_ino ||
      named.st_dev != now.st_dev)
    return Error{path_ + ": replaced while opening, try again", EAGAIN};
  ino_ = now.st_ino;
  dev_ = now.st_dev;
  snapshotEnd_ = static_cast<uint64_t>(now.st_size);

  std::map<std::string, int> uidCount;
  std::vector<std::string> xuidls;
  Hasher whole;
  MboxParser parser([&](MboxMessage&& m) -> Status {
    if (list_.empty() && headEnd_ == 0 && mboxIsPseudoMessage(m.data)) {
      headEnd_ = m.endOffset;  // the folder's internal data, not mail
      return {};
    }
    if (list_.empty() && headEnd_ == 0) base_ = mboxBaseField(m.data);
    const std::string visible = mboxVisible(m.data);
    Hasher h;
    h.feed("From " + m.from.sender + " " + m.from.dateText + "\n");
    h.feed(visible);
    std::string digest = h.done();
    std::string uid = xUidl(visible);
    if (!validUid(uid)) uid = hexEncode(std::string_view(digest).substr(0, 16));
    list_.push_back({std::move(uid), crlfSize(visible), false});
    spans_.push_back({m.offset, m.dataOffset, m.endOffset});
    return {};
  });
  std::string buf(kChunk, '\0');
  for (uint64_t pos = 0; pos < snapshotEnd_;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, snapshotEnd_ - pos));
    auto got = mboxPread(fd_.get(), buf.data(), n, pos);
    if (!got) return got.error();
    if (*got == 0) return Error{path_ + ": shorter than its size", EIO};
    std::string_view piece(buf.data(), *got);
    whole.feed(piece);
    if (auto s = parser.feed(piece); !s) return s;
    pos += *got;
  }
  if (auto s = parser.finish(); !s) return s;
  snapshotDigest_ = whole.done();
  // Duplicates (two copies of one message, or a repeated X-UIDL) get a
  // suffix in file order, so every uid is unique and stays the same.
  for (FolderMessage& m : list_) {
    int n = ++uidCount[m.uid];
    if (n > 1) m.uid += "-" + std::to_string(n);
  }
  return {};  // w goes out of scope: the locks are released, fd_ stays open
}

Result<std::unique_ptr<MessageReader>> MboxFolder::open(size_t index) {
  if (index >= spans_.size()) return Error{"no such message", EINVAL};
  return mboxMessageReader(fd_.get(), spans_[index].dataOffset, spans_[index].endOffset);
}

Status MboxFolder::markSeen(size_t index) {
  if (index >= spans_.size()) return Error{"no such message", EINVAL};
  list_[index].seen = true;  // mbox keeps no flags (no Status: rewrite)
  return {};
}

Result<std::string> MboxFolder::digestPrefix(uint64_t end) const {
  Hasher h;
  std::string buf(kChunk, '\0');
  for (uint64_t pos = 0; pos < end;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, end - pos));
    auto got = mboxPread(fd_.get(), buf.data(), n, pos);
    if (!got) return got.error();
    if (*got == 0) return Error{path_ + ": shorter than its snapshot", EIO};
    h.feed(std::string_view(buf.data(), *got));
    pos += *got;
  }
  return h.done();
}

Status MboxFolder::expunge(const std::vector<size_t>& indexes) {
  if (indexes.empty() || !fd_) return {};
  std::vector<bool> gone(spans_.size());
  for (size_t i : indexes) {
    if (i >= spans_.size()) return Error{"no such message", EINVAL};
    gone[i] = true;
  }
  auto w = MboxWriter::open(path_, lock_, fs_);
  if (!w) return w.error();
  struct stat named;
  if (::lstat(path_.c_str(), &named) != 0) return errnoError("stat " + path_);
  if (named.st_ino != ino_ || named.st_dev != dev_)
    return Error{path_ + ": replaced by another program since the session began", ESTALE};
  const uint64_t size = static_cast<uint64_t>(named.st_size);
  if (size < snapshotEnd_)
    return Error{path_ + ": shrunk by another program since the session began", ESTALE};
  auto digest = digestPrefix(snapshotEnd_);
  if (!digest) return digest.error();
  if (*digest != snapshotDigest_)
    return Error{path_ + ": changed by another program since the session began", ESTALE};

  // The kept byte ranges: whole messages (From_ line to the next one) and
  // everything appended after the snapshot.
  std::vector<std::pair<uint64_t, uint64_t>> keep;
  if (headEnd_ > 0) keep.emplace_back(0, spans_.empty() ? snapshotEnd_ : spans_[0].offset);
  std::string head;  // a pseudo message that takes over the removed first message's base
  if (headEnd_ == 0 && !gone.empty() && gone[0] && !base_.empty())
    head = mboxPseudoMessage(base_, ::time(nullptr));
  for (size_t i = 0; i < spans_.size(); ++i) {
    if (gone[i]) continue;
    uint64_t end = i + 1 < spans_.size() ? spans_[i + 1].offset : snapshotEnd_;
    if (!keep.empty() && keep.back().second == spans_[i].offset)
      keep.back().second = end;
    else
      keep.emplace_back(spans_[i].offset, end);
  }
  if (size > snapshotEnd_) keep.emplace_back(snapshotEnd_, size);

  const std::string dir = dirName(path_);
  const size_t slash = path_.rfind('/');
  const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  const std::string tmp =
      (dir.empty() ? std::string() : dir + "/") + "." + base + ".yubin-" + std::to_string(::getpid());
  UniqueFd out(fs_.open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out) return errnoError("create " + tmp);
  ScopeExit removeTmp([&tmp] { ::unlink(tmp.c_str()); });
  if (auto st = writeAllFs(fs_, out.get(), head, tmp); !st) return st;
  std::string buf(kChunk, '\0');
  for (auto [from, to] : keep) {
    for (uint64_t pos = from; pos < to;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, to - pos));
      auto got = mboxPread(fd_.get(), buf.data(), n, pos);
      if (!got) return got.error();
      if (*got == 0) return Error{path_ + ": shorter than expected", EIO};
      if (auto st = writeAllFs(fs_, out.get(), std::string_view(buf.data(), *got), tmp); !st)
        return st;
      pos += *got;
    }
  }
  struct stat old;
  if (::fstat(fd_.get(), &old) == 0) (void)::fchmod(out.get(), old.st_mode & 07777);
  if (fs_.fsync(out.get()) != 0) return errnoError("fsync " + tmp);
  if (::close(out.release()) != 0) return errnoError("close " + tmp);
  if (fs_.rename(tmp.c_str(), path_.c_str()) != 0) return errnoError("rename " + tmp);
  removeTmp.dismiss();
  if (auto st = fsyncDir(dir.empty() ? std::string(".") : dir); !st) return st;
  return {};  // w released here: the old file's lock and the dot-lock
}

}  // namespace yubin::store
