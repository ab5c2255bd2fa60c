// DATA and BDAT content decoders and the dot-stuffing encoder. See data.hpp.
#include "smtp/data.hpp"

#include <cstring>

namespace yubin::smtp {

namespace {

// The length of the run of bytes from `i` holding neither CR nor LF.
size_t plainRun(std::string_view in, size_t i) {
  size_t j = i;
  while (j < in.size() && in[j] != '\r' && in[j] != '\n') ++j;
  return j - i;
}

}  // namespace

void DotDecoder::bareLineEnd(std::string& out) {
  bare_ = true;
  out += "\r\n";
  state_ = State::SoftLineStart;
}

size_t DotDecoder::cleanLines(std::string_view in, size_t i, Positions& next) const {
  // The first `c` at or after `from`, or in.size(); each byte is looked at
  // once per decode() call however often a line falls back to the byte
  // loop, so hostile input (many bare CRs, no LF) stays linear.
  auto find = [&in](char c, size_t from, size_t& cached) {
    if (cached == kUnknown || cached < from) {
      const void* p = std::memchr(in.data() + from, c, in.size() - from);
      cached = p ? static_cast<size_t>(static_cast<const char*>(p) - in.data()) : in.size();
    }
    return cached;
  };
  State s = state_;
  size_t j = i;
  while (j < in.size()) {
    if (s == State::LineStart && in[j] == '.') break;  // stuffing or the end: byte loop
    const size_t lf = find('\n', j, next.lf);
    if (lf == in.size() || lf == j || in[lf - 1] != '\r') break;  // partial line or bare LF
    if (find('\r', j, next.cr) < lf - 1) break;                   // a bare CR inside
    j = lf + 1;
    s = State::LineStart;
  }
  return j - i;
}

size_t DotDecoder::decode(std::string_view in, std::string& out) {
  size_t i = 0;
  Positions next;
  while (i < in.size() && state_ != State::Done) {
    if (state_ == State::Middle || state_ == State::LineStart) {
      // Fast path: a run of whole lines that end in CRLF, hold no other CR
      // or LF, and (at a line start) do not begin with a dot passes as it
      // is, in one append. Everything else takes the byte loop below.
      if (size_t n = cleanLines(in, i, next); n > 0) {
        out.append(in.data() + i, n);
        i += n;
        state_ = State::LineStart;
        continue;
      }
    }
    const char c = in[i];
    switch (state_) {
      case State::Middle: {
        size_t run = plainRun(in, i);
        out.append(in.data() + i, run);
        i += run;
        if (i == in.size()) break;
        if (in[i] == '\r') {
          state_ = State::Cr;
        } else {
          bareLineEnd(out);
        }
        ++i;
        break;
      }
      case State::LineStart:
      case State::SoftLineStart:
        ++i;
        if (c == '.') {
          state_ = state_ == State::LineStart ? State::Dot : State::SoftDot;
        } else if (c == '\r') {
          state_ = State::Cr;
        } else if (c == '\n') {
          bareLineEnd(out);
        } else {
          out.push_back(c);
          state_ = State::Middle;
        }
        break;
      case State::Dot:
        ++i;
        if (c == '\r') {
          state_ = State::DotCr;
        } else if (c == '\n') {
          out.push_back('.');
          bareLineEnd(out);
        } else {
          out.push_back(c);  // the stuffing dot is dropped
          state_ = State::Middle;
        }
        break;
      case State::SoftDot:
        // Only "..": a dot after a converted line ending is content unless
        // the client stuffed it.
        out.push_back('.');
        state_ = State::Middle;
        if (c == '.') ++i;  // otherwise the byte is read again in Middle
        break;
      case State::DotCr:
        if (c == '\n') {
          ++i;
          state_ = State::Done;
        } else {
          out.push_back('.');
          bareLineEnd(out);  // and read the byte again at the soft line start
        }
        break;
      case State::Cr:
        if (c == '\n') {
          ++i;
          out += "\r\n";
          state_ = State::LineStart;
        } else {
          bareLineEnd(out);  // and read the byte again
        }
        break;
      case State::Done:
        break;
    }
  }
  return i;
}

void ChunkDecoder::decode(std::string_view in, std::string& out) {
  if (binary_) {
    out.append(in);
    return;
  }
  size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    if (pendingCr_) {
      pendingCr_ = false;
      out += "\r\n";
      if (c == '\n') {
        ++i;
        continue;
      }
      bare_ = true;  // and read c again
    }
    if (c == '\r') {
      pendingCr_ = true;
      ++i;
    } else if (c == '\n') {
      bare_ = true;
      out += "\r\n";
      ++i;
    } else {
      size_t run = plainRun(in, i);
      out.append(in.data() + i, run);
      i += run;
    }
  }
}

void ChunkDecoder::finish(std::string& out) {
  if (!pendingCr_) return;
  pendingCr_ = false;
  bare_ = true;
  out += "\r\n";
}

// ---------------------------------------------------------------- DotEncoder

void DotEncoder::encode(std::string_view in, std::string& out) {
  if (in.empty()) return;
  out.reserve(out.size() + in.size() + in.size() / 64);
  size_t from = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (lineStart_ && c == '.') {
      out.append(in.substr(from, i - from));
      out.push_back('.');
      from = i;  // the '.' itself is copied with the next run
    }
    lineStart_ = c == '\n';
  }
  out.append(in.substr(from));
  beforeLast_ = in.size() >= 2 ? in[in.size() - 2] : last_;
  last_ = in.back();
  empty_ = false;
}

void DotEncoder::finish(std::string& out) {
  if (!empty_ && !(beforeLast_ == '\r' && last_ == '\n')) out += "\r\n";
  out += ".\r\n";
}

}  // namespace yubin::smtp
