// The client-side reply parser; see client_reply.hpp.
#include "smtp/client_reply.hpp"

#include <utility>

namespace yubin::smtp {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Length of "c.s.d" at the start of text (followed by SP or the end), with
// class `cls`; 0 when there is none. RFC 3463: subject and detail are one to
// three digits.
size_t enhancedLength(std::string_view text, char cls) {
  if (text.size() < 5 || text[0] != cls || text[1] != '.') return 0;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t start = i;
    while (i < text.size() && isDigit(text[i]) && i - start < 3) ++i;
    if (i == start) return 0;
    if (part == 0) {
      if (i >= text.size() || text[i] != '.') return 0;
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ') return 0;
  return i;
}

// Reply text goes into logs and one-line state records: no control
// characters survive (a TAB becomes a space, the rest '?').
std::string cleanText(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\t')
      c = ' ';
    else if (u < 0x20 || u == 0x7f)
      c = '?';
  }
  return out;
}

}  // namespace

std::string ClientReply::summary() const {
  std::string s = std::to_string(code);
  if (!enhanced.empty()) s += " " + enhanced;
  for (const auto& l : lines) {
    if (l.empty()) continue;
    s += ' ';
    s += l;
  }
  return s;
}

ClientReply localReply(int code, std::string_view enhanced, std::string_view text) {
  ClientReply r;
  r.code = code;
  r.enhanced = std::string(enhanced);
  r.lines.push_back(cleanText(text));
  return r;
}

void ReplyParser::fail(std::string what) {
  if (failed_) return;
  failed_ = true;
  error_ = std::move(what);
  line_.clear();
  current_ = ClientReply();
}

void ReplyParser::feed(std::string_view bytes) {
  for (char c : bytes) {
    if (failed_) return;
    if (sawCr_) {
      sawCr_ = false;
      if (c != '\n') {
        fail("bare CR in reply line");
        return;
      }
      std::string text = std::move(line_);
      line_.clear();
      line(text);
      continue;
    }
    if (c == '\r') {
      sawCr_ = true;
      continue;
    }
    if (c == '\n') {
      fail("reply line ends with a bare LF");
      return;
    }
    if (c == '\0') {
      fail("NUL in reply line");
      return;
    }
    line_.push_back(c);
    if (line_.size() + 2 > limits_.maxLine) {
      fail("reply line too long");
      return;
    }
  }
}

void ReplyParser::line(std::string_view text) {
  if (text.size() < 3) return fail("reply line shorter than a reply code");
  if (text[0] < '2' || text[0] > '5' || text[1] < '0' || text[1] > '5' || !isDigit(text[2]))
    return fail("bad reply code");
  int code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
  bool last = true;
  if (text.size() > 3) {
    if (text[3] == '-')
      last = false;
    else if (text[3] != ' ')
      return fail("no space or hyphen after the reply code");
  }
  if (!current_.lines.empty() && code != current_.code) return fail("mixed reply codes");
  if (current_.lines.size() >= limits_.maxLines) return fail("too many lines in one reply");
  std::string body = cleanText(text.size() > 4 ? text.substr(4) : std::string_view());
  if (current_.lines.empty()) {
    current_.code = code;
    if (size_t n = enhancedLength(body, text[0]); n > 0) {
      current_.enhanced = body.substr(0, n);
      body.erase(0, n < body.size() ? n + 1 : n);
    }
  } else if (!current_.enhanced.empty()) {
    size_t n = current_.enhanced.size();
    if (body.compare(0, n, current_.enhanced) == 0 && (body.size() == n || body[n] == ' '))
      body.erase(0, n < body.size() ? n + 1 : n);
  }
  current_.lines.push_back(std::move(body));
  if (last) {
    done_.push_back(std::move(current_));
    current_ = ClientReply();
  }
}

std::optional<ClientReply> ReplyParser::next() {
  if (done_.empty()) return std::nullopt;
  ClientReply r = std::move(done_.front());
  done_.pop_front();
  return r;
}

}  // namespace yubin::smtp
