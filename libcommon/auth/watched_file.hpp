// WatchedFile<T>: a parsed file that is re-read when it changes on disk, for
// the users and aliases files (lookups see edits without a restart).
// A change is detected with one stat() per get(): (st_dev, st_ino, st_mtim
// with nanoseconds, st_size). If the new content fails to parse, the previous
// good data is kept and the error logged once; a read error (for example a
// moment of EACCES while yubinctl restores the file's group) is retried on the
// next call. A missing file is parsed as empty text.
// Trust: the files are admin-written; the parser validates everything.
// Not thread-safe: one WatchedFile per event loop.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/log.hpp"
#include "base/result.hpp"

namespace yubin::auth {

struct FileStamp {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  time_t mtimeSec = 0;
  long mtimeNsec = 0;
  off_t size = 0;
  mode_t mode = 0;  // not part of the comparison
  bool operator==(const FileStamp& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && mtimeSec == o.mtimeSec &&
           mtimeNsec == o.mtimeNsec && size == o.size;
  }
};

// stat(path); exists=false on ENOENT.
Result<FileStamp> stampOf(const std::string& path);
// Reads a regular file and the stamp of exactly what was read (fstat on the
// open descriptor). ENOENT gives an empty text and exists=false.
struct StampedText {
  FileStamp stamp;
  std::string text;
};
Result<StampedText> readStamped(const std::string& path, size_t maxSize = 64u << 20);

template <class T>
class WatchedFile {
 public:
  using Parser = std::function<Result<T>(std::string_view text, const std::string& path)>;

  // what: "users file", "aliases file" (for log lines).
  WatchedFile(std::string path, std::string what, Parser parse)
      : path_(std::move(path)), what_(std::move(what)), parse_(std::move(parse)) {}

  // The current data, re-read first when the file changed. nullptr when no
  // version of the file has ever been read and parsed successfully.
  std::shared_ptr<const T> get() {
    refresh();
    return data_;
  }

  // Reads and parses now (whatever the stamp says) and returns the outcome;
  // on success the new data replaces the old. For start-up checks.
  Status reload() {
    auto st = readStamped(path_);
    if (!st) return st.error();
    return install(std::move(*st));
  }

  const std::string& path() const { return path_; }

 private:
  void refresh() {
    auto stamp = stampOf(path_);
    if (!stamp) {
      noteReadError(stamp.error());
      return;
    }
    if (data_ && loaded_ == *stamp) return;
    if (failed_ && *failed_ == *stamp) return;  // same broken content: already logged
    auto st = readStamped(path_);
    if (!st) {
      noteReadError(st.error());
      return;
    }
    (void)install(std::move(*st));
  }

  Status install(StampedText st) {
    auto parsed = parse_(st.text, path_);
    if (!parsed) {
      failed_ = st.stamp;
      if (data_)
        YLOG_ERROR("%s reload failed, keeping the previous version: %s", what_.c_str(),
                   parsed.error().message.c_str());
      else
        YLOG_ERROR("%s not loaded: %s", what_.c_str(), parsed.error().message.c_str());
      return parsed.error();
    }
    if (!st.stamp.exists)
      YLOG_WARN("%s missing, treated as empty path=%s", what_.c_str(), path_.c_str());
    else if (st.stamp.mode & S_IROTH)
      YLOG_WARN("%s is world-readable path=%s", what_.c_str(), path_.c_str());
    if (data_) YLOG_INFO("%s reloaded path=%s", what_.c_str(), path_.c_str());
    data_ = std::make_shared<const T>(std::move(*parsed));
    loaded_ = st.stamp;
    failed_.reset();
    lastReadError_.clear();
    return {};
  }

  void noteReadError(const Error& e) {
    if (e.message == lastReadError_) return;  // log each distinct failure once
    lastReadError_ = e.message;
    YLOG_ERROR("%s unreadable%s: %s", what_.c_str(), data_ ? ", keeping the previous version" : "",
               e.message.c_str());
  }

  std::string path_;
  std::string what_;
  Parser parse_;
  std::shared_ptr<const T> data_;
  std::optional<FileStamp> loaded_;
  std::optional<FileStamp> failed_;
  std::string lastReadError_;
};

}  // namespace yubin::auth
