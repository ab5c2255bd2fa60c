// Trace, From, Date and Message-ID additions; see header_fixer.hpp.
#include "mail/header_fixer.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

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

std::string rfc5322Date(int64_t t) {
  // Day and month names from our own tables, not strftime's %a/%b, which
  // follow LC_TIME.
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  if (!localtime_r(&tt, &tm) && !gmtime_r(&tt, &tm)) {
    tt = 0;  // out of range for struct tm: the epoch rather than garbage
    gmtime_r(&tt, &tm);
  }
  long offset = tm.tm_gmtoff / 60;  // minutes east of UTC
  char sign = offset < 0 ? '-' : '+';
  if (offset < 0) offset = -offset;
  char buf[64];
  snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", kDays[tm.tm_wday % 7],
           tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
           sign, offset / 60 % 100, offset % 60);
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
