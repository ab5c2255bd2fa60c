// Trace, From, Date and Message-ID additions; see header_fixer.hpp.
#include "mail/header_fixer.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/strings.hpp"

namespace yubin::mail {
namespace {

// RFC 5322 §3.6.8 ftext: printable US-ASCII but the colon.
bool isFtext(char c) { return c >= 33 && c <= 126 && c != ':'; }
bool isBlank(char c) { return c == ' ' || c == '\t'; }

}  // namespace

void HeaderFixer::startIfNeeded(std::string& out) {
  if (started_) return;
  started_ = true;
  out += add_.trace;
}

void HeaderFixer::endHeader(std::string& out, bool addSeparator) {
  if (!add_.from.empty() && !sawFrom_) out += "From: " + add_.from + "\r\n";
  if (!sawDate_) out += "Date: " + add_.date + "\r\n";
  if (!sawMessageId_) out += "Message-ID: " + add_.messageId + "\r\n";
  if (addSeparator) out += "\r\n";
  state_ = State::Body;
}

void HeaderFixer::notAField(std::string& out) {
  endHeader(out, true);
  out += hold_;
  hold_.clear();
}

void HeaderFixer::fieldName(std::string_view name) {
  sawField_ = true;
  if (iequals(name, "From")) sawFrom_ = true;
  if (iequals(name, "Date")) sawDate_ = true;
  if (iequals(name, "Message-ID")) sawMessageId_ = true;
}

void HeaderFixer::feed(std::string_view in, std::string& out) {
  startIfNeeded(out);
  while (!in.empty()) {
    char c = in.front();
    switch (state_) {
      case State::Body:
        out.append(in);
        return;
      case State::PassLine: {
        size_t lf = in.find('\n');
        if (lf == std::string_view::npos) {
          out.append(in);
          return;
        }
        out.append(in.substr(0, lf + 1));
        in.remove_prefix(lf + 1);
        state_ = State::LineStart;
        continue;
      }
      case State::LineStart:
        if (c == '\n') {
          endHeader(out, false);
          out += '\n';
          in.remove_prefix(1);
        } else if (c == '\r') {
          hold_.assign(1, '\r');  // (not = "\r": a GCC 12 -Wrestrict false alarm)
          state_ = State::Cr;
          in.remove_prefix(1);
        } else if (isBlank(c) && sawField_) {
          state_ = State::PassLine;  // a continuation: not examined
        } else if (isFtext(c)) {
          state_ = State::Name;
        } else {
          endHeader(out, true);  // a continuation of nothing, or not a field
        }
        continue;
      case State::Cr:
        if (c == '\n') {
          hold_.clear();
          endHeader(out, false);
          out += "\r\n";
          in.remove_prefix(1);
        } else {
          notAField(out);
        }
        continue;
      case State::Name:
      case State::AfterName:
        if (c == ':') {
          fieldName(std::string_view(hold_).substr(
              0, state_ == State::Name ? hold_.size() : nameEnd_));
          out += hold_;
          hold_.clear();
          state_ = State::PassLine;
          continue;
        }
        if (state_ == State::Name && isFtext(c)) {
          hold_ += c;
        } else if (isBlank(c)) {
          if (state_ == State::Name) nameEnd_ = hold_.size();
          hold_ += c;
          state_ = State::AfterName;
        } else {
          notAField(out);
          continue;
        }
        in.remove_prefix(1);
        if (hold_.size() > kHoldLimit) {
          // Too long to be a name we look for: a field, passed on unexamined.
          sawField_ = true;
          out += hold_;
          hold_.clear();
          state_ = State::PassLine;
        }
        continue;
    }
  }
}

void HeaderFixer::finish(std::string& out) {
  startIfNeeded(out);
  switch (state_) {
    case State::Body:
      return;
    case State::LineStart:
      endHeader(out, true);
      return;
    case State::PassLine:
      out += "\r\n";  // the last header line had no line end
      endHeader(out, true);
      return;
    case State::Name:
    case State::AfterName:
    case State::Cr:
      notAField(out);  // never reached a colon: body text
      return;
  }
}

std::string rfc5322Date(time_t t) {
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &tm);
  return buf;
}

std::string newMessageId(std::string_view host) {
  unsigned char raw[12];
  ssize_t n;
  while ((n = getrandom(raw, sizeof raw, 0)) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof raw)) {
    // The kernel's generator fails only on kernels older than Linux 3.17.
    fprintf(stderr, "getrandom failed: %s\n", strerror(errno));
    abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "<";
  for (unsigned char c : raw) {
    id += kHex[c >> 4];
    id += kHex[c & 15];
  }
  id += '@';
  id += host;
  id += '>';
  return id;
}

}  // namespace yubin::mail
