// MessageSource implementations, the Delivered-To loop check and the
// failure classification; see message_source.hpp.
#include "store/message_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/strings.hpp"

namespace yubin::store {
namespace {

constexpr size_t kChunk = size_t{64} * 1024;
constexpr size_t kMaxHeaderScan = 1u << 20;

// local@domain with the domain lower-cased; the local part is kept exactly
// (RFC 5321 2.4: only the receiving host may interpret its case).
std::string normaliseAddress(std::string_view a) {
  a = trim(a);
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = trim(a.substr(1, a.size() - 2));
  size_t at = a.rfind('@');
  if (at == std::string_view::npos) return std::string(a);
  return std::string(a.substr(0, at + 1)) + toLower(a.substr(at + 1));
}

// Collects complete header fields (unfolded) until the empty line.
class HeaderScanner {
 public:
  explicit HeaderScanner(std::string_view want) : want_(normaliseAddress(want)) {}

  // Returns false once the scan is over (header ended, found, or limit).
  bool feed(std::string_view in) {
    for (char c : in) {
      if (done_) return false;
      if (++seen_ > kMaxHeaderScan) {
        done_ = true;
        return false;
      }
      if (c != '\n') {
        line_ += c;
        continue;
      }
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      endLine();
      line_.clear();
    }
    return !done_;
  }
  void finish() {
    if (!done_ && !line_.empty()) {
      endLine();
      line_.clear();
    }
    finishField();
  }
  bool found() const { return found_; }

 private:
  void endLine() {
    if (line_.empty()) {  // end of the header block
      finishField();
      done_ = true;
      return;
    }
    if ((line_[0] == ' ' || line_[0] == '\t') && !field_.empty()) {
      field_ += line_;
      return;
    }
    finishField();
    field_ = line_;
  }
  void finishField() {
    constexpr std::string_view kName = "delivered-to:";
    if (field_.size() >= kName.size() &&
        iequals(std::string_view(field_).substr(0, kName.size()), kName)) {
      if (normaliseAddress(std::string_view(field_).substr(kName.size())) == want_) {
        found_ = true;
        done_ = true;
      }
    }
    field_.clear();
  }

  std::string want_;
  std::string line_, field_;
  size_t seen_ = 0;
  bool done_ = false;
  bool found_ = false;
};

}  // namespace

Status MemorySource::forEachChunk(const ChunkFn& fn) const {
  std::string_view rest = data_;
  while (!rest.empty()) {
    size_t n = std::min(rest.size(), kChunk);
    if (auto st = fn(rest.substr(0, n)); !st) return st;
    rest.remove_prefix(n);
  }
  return {};
}

Result<FileSource> FileSource::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return errnoError("open " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errnoError("fstat " + path);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file", EINVAL};
  return FileSource(std::move(fd), 0, static_cast<uint64_t>(st.st_size));
}

Status FileSource::forEachChunk(const ChunkFn& fn) const {
  std::string buf(kChunk, '\0');
  uint64_t pos = 0;
  while (pos < length_) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, length_ - pos));
    ssize_t n = ::pread(fd_.get(), buf.data(), want, static_cast<off_t>(offset_ + pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("read message");
    }
    if (n == 0) return Error{"read message: file shorter than expected", EIO};
    if (auto st = fn(std::string_view(buf.data(), static_cast<size_t>(n))); !st) return st;
    pos += static_cast<uint64_t>(n);
  }
  return {};
}

Result<std::string> readAll(const MessageSource& src) {
  std::string out;
  out.reserve(static_cast<size_t>(src.size()));
  auto st = src.forEachChunk([&](std::string_view c) -> Status {
    out.append(c);
    return {};
  });
  if (!st) return st.error();
  return out;
}

bool deliveredToListed(const MessageSource& src, std::string_view recipient) {
  HeaderScanner scan(recipient);
  bool stopped = false;
  (void)src.forEachChunk([&](std::string_view c) -> Status {
    if (scan.feed(c)) return {};
    stopped = true;
    return Error{"scan over", 0};  // stops the iteration early
  });
  if (!stopped) scan.finish();
  return scan.found();
}

DeliveryFailure classifyDeliveryError(const Error& e) {
  if (e.errnum == ENOSPC) return DeliveryFailure::NoSpace;
  if (e.errnum == EDQUOT) return DeliveryFailure::OverQuota;
  return DeliveryFailure::Temporary;
}

}  // namespace yubin::store
