// Folder helpers and MemoryFolder; see folder.hpp.
#include "store/folder.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>

#include "base/strings.hpp"
#include "base/fs.hpp"

namespace yubin::store {
namespace {

class StringReader final : public MessageReader {
 public:
  StringReader(const std::string& data, size_t chunk) : data_(data), chunk_(chunk) {}
  Result<size_t> read(std::string& out, size_t max) override {
    size_t n = std::min({max, chunk_, data_.size() - pos_});
    out.append(data_, pos_, n);
    pos_ += n;
    return n;
  }

 private:
  const std::string& data_;
  size_t chunk_;
  size_t pos_ = 0;
};

}  // namespace

void CrlfCounter::feed(std::string_view bytes) {
  for (char c : bytes) {
    if (c == '\n' && !prevCr_) ++total_;
    ++total_;
    prevCr_ = c == '\r';
  }
}

uint64_t crlfSize(std::string_view bytes) {
  CrlfCounter c;
  c.feed(bytes);
  return c.total();
}

bool validUid(std::string_view uid) {
  if (uid.empty() || uid.size() > 70) return false;
  return std::all_of(uid.begin(), uid.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

std::string uidDigest(std::string_view bytes) {
  unsigned char h[16];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size(), nullptr, 0);
  return hexEncode(std::string_view(reinterpret_cast<const char*>(h), sizeof h));
}

MemoryFolder::MemoryFolder(std::vector<Item> items)
    : items_(std::move(items)), seen_(items_.size()), removed_(items_.size()) {
  for (const Item& it : items_) list_.push_back({it.uid, crlfSize(it.data), false});
}

Result<std::unique_ptr<MessageReader>> MemoryFolder::open(size_t index) {
  if (index >= items_.size()) return Error{"no such message", EINVAL};
  if (failOpen || removed_[index]) return Error{"open: injected failure", EIO};
  return std::unique_ptr<MessageReader>(std::make_unique<StringReader>(items_[index].data,
                                                                       readChunk));
}

Status MemoryFolder::markSeen(size_t index) {
  if (index >= items_.size()) return Error{"no such message", EINVAL};
  seen_[index] = true;
  list_[index].seen = true;
  return {};
}

Status MemoryFolder::expunge(const std::vector<size_t>& indexes) {
  if (failExpunge) return Error{"expunge: injected failure", EIO};
  for (size_t i : indexes) {
    if (i >= items_.size()) return Error{"no such message", EINVAL};
    removed_[i] = true;
  }
  return {};
}

std::vector<std::string> MemoryFolder::remaining() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < items_.size(); ++i)
    if (!removed_[i]) out.push_back(items_[i].data);
  return out;
}

Result<uint64_t> crlfFileSize(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
  if (!fd) return errnoError("open " + path);
  CrlfCounter c;
  std::string buf(size_t{64} * 1024, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("read " + path);
    if (n == 0) break;
    c.feed(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  return c.total();
}

namespace {

class FileReader final : public MessageReader {
 public:
  FileReader(UniqueFd fd, int64_t sizeHint) : fd_(std::move(fd)), hint_(sizeHint) {}
  Result<size_t> read(std::string& out, size_t max) override {
    if (eof_ || max == 0) return size_t{0};
    size_t want = max;
    // One byte past the hinted end: a short read then proves the end.
    const bool hinted = hint_ >= 0 && static_cast<uint64_t>(hint_) >= pos_;
    if (hinted) want = std::min<uint64_t>(max, static_cast<uint64_t>(hint_) - pos_ + 1);
    size_t old = out.size();
    out.resize(old + want);
    for (;;) {
      ssize_t n = ::read(fd_.get(), out.data() + old, want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        out.resize(old);
        return errnoError("read message");
      }
      size_t got = static_cast<size_t>(n);
      out.resize(old + got);
      pos_ += got;
      // A regular file reads short only at its end (message files are
      // regular: the listing skips anything else).
      if (got == 0 || (hinted && got < want)) eof_ = true;
      return got;
    }
  }

 private:
  UniqueFd fd_;
  int64_t hint_;
  uint64_t pos_ = 0;
  bool eof_ = false;
};

}  // namespace

std::unique_ptr<MessageReader> fileReader(UniqueFd fd, int64_t sizeHint) {
  return std::make_unique<FileReader>(std::move(fd), sizeHint);
}

}  // namespace yubin::store
