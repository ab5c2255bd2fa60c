// mime/lines: splits a byte stream fed in pieces into lines (LF or CRLF
// ends; a bare CR is data), reporting each line's offset and length but
// holding at most `keep` bytes of its content, so an endless line costs
// no memory. Shared by the header and structure parsers.
//
// Trust: sees untrusted message bytes; memory bounded by keep.
// Standards: RFC 5322 §2.1 (lines end in CRLF; LF alone accepted, as
// mail stored on Unix uses it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace yubin::mime {

struct Line {
  std::string_view text;   // content without the line end, at most keep bytes
  uint64_t offset = 0;     // of the line's first byte in the stream
  uint64_t length = 0;     // whole line including its end
  uint8_t eolLen = 0;      // 2 (CRLF), 1 (LF) or 0 (last line without end)
  bool truncated = false;  // content longer than keep
  uint64_t contentLength() const { return length - eolLen; }
};

class LineSplitter {
 public:
  explicit LineSplitter(size_t keep, uint64_t startOffset = 0)
      : keep_(keep), offset_(startOffset) {}
  // Bytes of each line's content that are kept from now on (takes effect
  // for the line under way too, as far as it has not been cut yet).
  void setKeep(size_t keep) { keep_ = keep; }
  uint64_t offset() const { return offset_ + partial_; }

  // Calls fn(const Line&) -> bool for every line completed by `in`; stops
  // after a line for which fn returns false. Returns the bytes consumed.
  template <class Fn>
  size_t feed(std::string_view in, Fn&& fn) {
    size_t pos = 0;
    while (pos < in.size()) {
      const char* start = in.data() + pos;
      const auto* nl = static_cast<const char*>(std::memchr(start, '\n', in.size() - pos));
      const size_t take = nl ? static_cast<size_t>(nl - start) + 1 : in.size() - pos;
      const std::string_view piece(start, take);
      pos += take;
      if (!nl) {
        append(piece);
        lastCr_ = piece.back() == '\r';
        partial_ += take;
        continue;
      }
      const bool cr = take >= 2 ? piece[take - 2] == '\r' : (partial_ > 0 && lastCr_);
      Line line;
      line.offset = offset_;
      line.length = partial_ + take;
      line.eolLen = cr ? 2 : 1;
      const uint64_t content = line.contentLength();
      line.truncated = content > keep_;
      const size_t shown = static_cast<size_t>(std::min<uint64_t>(content, keep_));
      if (partial_ == 0) {
        line.text = piece.substr(0, shown);
      } else {
        append(piece);
        line.text = std::string_view(buf_).substr(0, std::min(shown, buf_.size()));
      }
      offset_ += line.length;
      partial_ = 0;
      lastCr_ = false;
      const bool more = fn(static_cast<const Line&>(line));
      buf_.clear();
      if (!more) return pos;
    }
    return pos;
  }

  // End of stream: reports the last line if it had no line end.
  template <class Fn>
  void finish(Fn&& fn) {
    if (partial_ == 0) return;
    Line line;
    line.offset = offset_;
    line.length = partial_;
    line.eolLen = 0;
    line.truncated = partial_ > keep_;
    line.text = std::string_view(buf_).substr(
        0, std::min<size_t>(buf_.size(), static_cast<size_t>(std::min<uint64_t>(partial_, keep_))));
    offset_ += partial_;
    partial_ = 0;
    fn(static_cast<const Line&>(line));
    buf_.clear();
  }

 private:
  void append(std::string_view piece) {
    const size_t room = keep_ + 2 > buf_.size() ? keep_ + 2 - buf_.size() : 0;
    buf_.append(piece.substr(0, std::min(room, piece.size())));
  }
  size_t keep_;
  uint64_t offset_;       // of the line under way
  uint64_t partial_ = 0;  // bytes of the line under way seen so far
  bool lastCr_ = false;
  std::string buf_;
};

}  // namespace yubin::mime
