// Header additions for submitted messages; see headers.hpp.
#include "msad/headers.hpp"

#include <sodium.h>

#include <ctime>

#include "base/strings.hpp"

namespace yubin::msad {
namespace {

// A header line longer than this is passed on as it comes and not examined
// (field names are short; RFC 5322 lines are at most 998 octets).
constexpr size_t kHoldLimit = 4096;

// True when `line` is a field named `name` (any case, blanks before the
// colon allowed as RFC 5322 §4.5.3's obsolete syntax has them).
bool startsWithField(std::string_view line, std::string_view name) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view n = line.substr(0, colon);
  while (!n.empty() && (n.back() == ' ' || n.back() == '\t')) n.remove_suffix(1);
  return iequals(n, name);
}

}  // namespace

HeaderFixer::HeaderFixer(std::string received, std::string date, std::string messageId)
    : received_(std::move(received)), date_(std::move(date)), messageId_(std::move(messageId)) {}

void HeaderFixer::missing(std::string& out) {
  if (!sawDate_) out += "Date: " + date_ + "\r\n";
  if (!sawMessageId_) out += "Message-ID: " + messageId_ + "\r\n";
}

// line_ holds one complete line with its line end.
void HeaderFixer::headerLine(std::string& out) {
  if (line_ == "\r\n" || line_ == "\n") {
    missing(out);
    inHeader_ = false;
  } else if (startsWithField(line_, "Date")) {
    sawDate_ = true;
  } else if (startsWithField(line_, "Message-ID")) {
    sawMessageId_ = true;
  }
  out += line_;
  line_.clear();
}

void HeaderFixer::feed(std::string_view in, std::string& out) {
  if (!started_) {
    started_ = true;
    out += received_;
  }
  while (!in.empty()) {
    if (!inHeader_) {
      out.append(in);
      return;
    }
    size_t lf = in.find('\n');
    std::string_view part = lf == std::string_view::npos ? in : in.substr(0, lf + 1);
    in.remove_prefix(part.size());
    if (longLine_) {
      out.append(part);
      if (lf != std::string_view::npos) longLine_ = false;
      continue;
    }
    line_.append(part);
    if (lf != std::string_view::npos && line_.size() > kHoldLimit) {
      out += line_;  // too long to be one we look for: not examined
      line_.clear();
    } else if (lf != std::string_view::npos) {
      headerLine(out);
    } else if (line_.size() > kHoldLimit) {
      out += line_;
      line_.clear();
      longLine_ = true;
    }
  }
}

void HeaderFixer::finish(std::string& out) {
  if (!started_) {
    started_ = true;
    out += received_;
  }
  if (!inHeader_) return;
  if (!line_.empty()) {
    out += line_;
    line_.clear();
    out += "\r\n";
  } else if (longLine_) {
    out += "\r\n";
  }
  missing(out);
  inHeader_ = false;
}

std::string rfc5322Date(long epochSeconds) {
  time_t t = static_cast<time_t>(epochSeconds);
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &tm);
  return buf;
}

std::string newMessageId(std::string_view host) {
  unsigned char raw[12];
  randombytes_buf(raw, sizeof raw);
  static const char kHex[] = "0123456789abcdef";
  std::string id = "<";
  for (unsigned char c : raw) {
    id.push_back(kHex[c >> 4]);
    id.push_back(kHex[c & 15]);
  }
  id += "@";
  id += host;
  id += ">";
  return id;
}

}  // namespace yubin::msad
