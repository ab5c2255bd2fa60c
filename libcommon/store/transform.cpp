// Streaming transforms for mailbox writing; see transform.hpp.
#include "store/transform.hpp"

#include <cerrno>
#include <cstring>

namespace yubin::store {
namespace {

constexpr std::string_view kFrom = "From ";
constexpr size_t kFlushAt = size_t{64} * 1024;

}  // namespace

void CrlfToLf::feed(std::string_view in, std::string& out) {
  if (in.empty()) return;
  if (heldCr_) {
    heldCr_ = false;
    if (in.front() == '\n') {
      out += '\n';
      in.remove_prefix(1);
    } else {
      out += '\r';
    }
  }
  while (!in.empty()) {
    const void* p = std::memchr(in.data(), '\r', in.size());
    if (!p) {
      out.append(in);
      return;
    }
    size_t i = static_cast<size_t>(static_cast<const char*>(p) - in.data());
    out.append(in.substr(0, i));
    if (i + 1 == in.size()) {
      heldCr_ = true;
      return;
    }
    if (in[i + 1] == '\n') {
      out += '\n';
      in.remove_prefix(i + 2);
    } else {
      out += '\r';
      in.remove_prefix(i + 1);
    }
  }
}

void CrlfToLf::finish(std::string& out) {
  if (heldCr_) out += '\r';
  heldCr_ = false;
}

void FromQuoter::flushPending(std::string& out, bool quote) {
  out.append(gt_ + (quote ? 1 : 0), '>');
  out.append(kFrom.substr(0, matched_));
  gt_ = 0;
  matched_ = 0;
}

void FromQuoter::feed(std::string_view in, std::string& out) {
  size_t i = 0;
  while (i < in.size()) {
    if (atLineStart_) {
      char c = in[i];
      if (matched_ == 0 && c == '>') {
        ++gt_;
        ++i;
        continue;
      }
      if (c == kFrom[matched_]) {
        ++i;
        if (++matched_ == kFrom.size()) {
          flushPending(out, true);
          atLineStart_ = false;
        }
        continue;
      }
      flushPending(out, false);
      atLineStart_ = false;  // c is handled below as an ordinary byte
    }
    const void* nl = std::memchr(in.data() + i, '\n', in.size() - i);
    size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - in.data()) + 1 : in.size();
    out.append(in.substr(i, end - i));
    i = end;
    if (nl) atLineStart_ = true;
  }
}

void FromQuoter::finish(std::string& out) {
  if (atLineStart_) flushPending(out, false);
  atLineStart_ = true;
}

bool isQuotedFromLine(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] == '>') ++i;
  return i > 0 && line.substr(i, kFrom.size()) == kFrom;
}

Status writeAllFs(Fs& fs, int fd, std::string_view data, const std::string& label) {
  while (!data.empty()) {
    ssize_t n = fs.write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("write " + label);
    }
    if (n == 0) return Error{"write " + label + ": wrote nothing", EIO};
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

MessageWriter::MessageWriter(Fs& fs, int fd, std::string label, LineEndings endings, bool mboxQuote)
    : fs_(fs),
      fd_(fd),
      label_(std::move(label)),
      toLf_(endings == LineEndings::ToLf),
      quote_(mboxQuote) {}

Status MessageWriter::append(std::string_view bytes) {
  if (bytes.empty()) return {};
  buf_.append(bytes);
  written_ += bytes.size();
  last_ = bytes.back();
  if (buf_.size() >= kFlushAt) return flush();
  return {};
}

Status MessageWriter::put(std::string_view bytes) {
  std::string_view cur = bytes;
  if (toLf_) {
    tmp1_.clear();
    crlf_.feed(cur, tmp1_);
    cur = tmp1_;
  }
  if (quote_) {
    tmp2_.clear();
    quoter_.feed(cur, tmp2_);
    cur = tmp2_;
  }
  return append(cur);
}

void MessageWriter::endMessage() {
  tmp1_.clear();
  if (toLf_) crlf_.finish(tmp1_);
  tmp2_.clear();
  if (quote_) {
    quoter_.feed(tmp1_, tmp2_);
    quoter_.finish(tmp2_);
  } else {
    tmp2_ = tmp1_;
  }
  // append() cannot fail without a flush; a flush error resurfaces at the
  // caller's next flush(), which it must call before trusting the file.
  buf_.append(tmp2_);
  written_ += tmp2_.size();
  if (!tmp2_.empty()) last_ = tmp2_.back();
}

Status MessageWriter::raw(std::string_view bytes) { return append(bytes); }

Status MessageWriter::flush() {
  if (buf_.empty()) return {};
  Status st = writeAllFs(fs_, fd_, buf_, label_);
  buf_.clear();
  return st;
}

}  // namespace yubin::store
