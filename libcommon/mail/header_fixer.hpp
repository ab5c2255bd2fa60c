// The header fields a mail system adds to a message it originates or
// accepts for submission: a trace field (Received:) before everything, and
// From:, Date: and Message-ID: at the end of the header section when the
// author left them out (RFC 6409 §8.1-8.3; Postfix's cleanup does the same
// for sendmail(1) mail). One streaming fixer for msad (submitted mail) and
// mtad's pickup (mail from yubin-sendmail).
//
// The header section ends at the first empty line, or at the first line
// that is neither a field nor the continuation of one ("hello" piped into
// sendmail): there the missing fields go, followed by the empty line the
// message lacked, so the result always has a header/body separator. Field
// names are matched in any case, with RFC 5322 §4.5.3's obsolete blanks
// before the colon. Line ends pass as they come; added lines use CRLF.
// Memory: at most kHoldLimit octets of a line are held (while its name is
// read); the rest streams through.
//
// Trust: scans untrusted message content (an authenticated user's, or any
// local user's); no allocation grows with the input beyond kHoldLimit.
// Standards: RFC 5322 §2.2 (fields, folding), §3.6 (From, Date,
// Message-ID), §3.3 (date-time), §4.5.3; RFC 6409 §8; RFC 5321 §4.4
// (Received, supplied by the caller).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace yubin::mail {

struct HeaderAdditions {
  std::string trace;      // whole field(s) with CRLF, put first (e.g. Received:)
  std::string from;       // From: value when missing; empty: From: is never added
  std::string date;       // Date: value when missing ("Tue, 1 Jul 2025 10:00:00 +0000")
  std::string messageId;  // Message-ID: value when missing ("<id@host>")
};

class HeaderFixer {
 public:
  // Octets of a line held while its field name is read; a longer name is
  // passed on unexamined (RFC 5322 lines are at most 998 octets).
  static constexpr size_t kHoldLimit = 4096;

  explicit HeaderFixer(HeaderAdditions add) : add_(std::move(add)) {}

  // Content in pieces of any size; the output for it is appended to `out`.
  void feed(std::string_view in, std::string& out);
  // The end of the content: ends a header line left open and adds what is
  // missing when the message had no body (or nothing at all).
  void finish(std::string& out);

  bool sawFrom() const { return sawFrom_; }
  bool sawDate() const { return sawDate_; }
  bool sawMessageId() const { return sawMessageId_; }

 private:
  enum class State {
    LineStart,   // at the start of a header line; hold_ empty
    Name,        // reading a field name into hold_
    AfterName,   // blanks after the name, before the colon (obsolete syntax)
    Cr,          // a line that began with CR: the separator if LF follows
    PassLine,    // the rest of a field or continuation line: streams through
    Body,        // past the header section: streams through
  };
  void startIfNeeded(std::string& out);
  // Adds the missing fields, then the separator when the message had none.
  void endHeader(std::string& out, bool addSeparator);
  // The held bytes turned out not to be a field: the header ends before them.
  void notAField(std::string& out);
  void fieldName(std::string_view name);

  HeaderAdditions add_;
  State state_ = State::LineStart;
  bool started_ = false;
  bool sawField_ = false;  // a field line was seen (a continuation needs one)
  std::string hold_;       // the start of the current line while undecided
  size_t nameEnd_ = 0;     // length of the name in hold_
  bool sawFrom_ = false;
  bool sawDate_ = false;
  bool sawMessageId_ = false;
};

// RFC 5322 §3.3 date-time of `t` (seconds since the epoch) in local time
// with its numeric zone: "Sat, 28 Nov 2026 01:02:03 +0100". The one
// formatter for Date:, Received: and the DSN dates; independent of the
// locale.
std::string rfc5322Date(int64_t t);
// "<24 random hex digits@host>" (RFC 5322 §3.6.4).
std::string newMessageId(std::string_view host);

}  // namespace yubin::mail
