// Shared POP3 pieces; see pop3.hpp.
#include "mrad/pop3/pop3.hpp"

#include "base/strings.hpp"

namespace yubin::mrad::pop3 {
namespace {

std::string toUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

}  // namespace

LineReader::Kind LineReader::next(std::string* line) {
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (skipping_) {
      if (nl == std::string::npos) {
        buf_.clear();
        pos_ = 0;
        return Kind::None;
      }
      pos_ = nl + 1;
      skipping_ = false;
      continue;
    }
    if (nl == std::string::npos) {
      if (buf_.size() - pos_ >= maxLine_) {
        skipping_ = true;
        buf_.clear();
        pos_ = 0;
        return Kind::TooLong;
      }
      if (pos_ > 0) {
        buf_.erase(0, pos_);
        pos_ = 0;
      }
      return Kind::None;
    }
    if (nl + 1 - pos_ > maxLine_) {
      pos_ = nl + 1;
      return Kind::TooLong;
    }
    size_t end = nl;
    if (end > pos_ && buf_[end - 1] == '\r') --end;
    line->assign(buf_, pos_, end - pos_);
    pos_ = nl + 1;
    return Kind::Line;
  }
}

std::string LineReader::takeRest() {
  std::string rest = skipping_ ? std::string() : buf_.substr(pos_);
  buf_.clear();
  pos_ = 0;
  return rest;
}

Command parseCommand(std::string_view line) {
  Command c;
  size_t sp = line.find(' ');
  c.verb = toUpper(line.substr(0, sp));
  if (sp == std::string_view::npos) return c;
  c.rest = std::string(line.substr(sp + 1));
  std::string_view rest = c.rest;
  for (;;) {
    size_t next = rest.find(' ');
    c.args.emplace_back(rest.substr(0, next));
    if (next == std::string_view::npos) break;
    rest.remove_prefix(next + 1);
  }
  return c;
}

std::optional<uint64_t> parseNumber(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::string ok(std::string_view text) {
  std::string r = "+OK";
  if (!text.empty()) r.append(" ").append(text);
  return r + "\r\n";
}

std::string err(std::string_view text) { return "-ERR " + std::string(text) + "\r\n"; }

std::string errCode(std::string_view code, std::string_view text) {
  return "-ERR [" + std::string(code) + "] " + std::string(text) + "\r\n";
}

void WireEncoder::endLine() {
  bool empty = lineLen_ == 0 || (lineLen_ == 1 && prevCr_);
  if (!inBody_) {
    if (empty) inBody_ = true;
  } else if (limited_ && left_ > 0) {
    --left_;
  }
  atLineStart_ = true;
  prevCr_ = false;
  lineLen_ = 0;
}

bool WireEncoder::encode(std::string_view in, std::string& out) {
  size_t i = 0;
  while (i < in.size()) {
    if (done_) return false;
    if (atLineStart_) {
      if (limited_ && inBody_ && left_ == 0) {
        done_ = true;
        return false;
      }
      if (in[i] == '.') out += '.';
      atLineStart_ = false;
    }
    size_t nl = in.find('\n', i);
    size_t end = nl == std::string_view::npos ? in.size() : nl;
    if (end > i) {
      out.append(in.data() + i, end - i);
      lineLen_ += end - i;
      prevCr_ = in[end - 1] == '\r';
    }
    if (nl == std::string_view::npos) break;
    if (!prevCr_) out += '\r';
    out += '\n';
    endLine();
    i = nl + 1;
  }
  if (limited_ && inBody_ && left_ == 0 && atLineStart_) done_ = true;
  return !done_;
}

void WireEncoder::finish(std::string& out) {
  if (!atLineStart_) out += "\r\n";
  atLineStart_ = true;
  out += ".\r\n";
}

}  // namespace yubin::mrad::pop3
