// SMTP / LMTP replies as a client reads them: a strict, incremental parser of
// the server's reply lines, shared by mtad's LMTP client and the SMTP client.
// It is fed bytes in pieces of any size (one at a time included) and yields
// complete replies in order; a violation of the grammar is a sticky error,
// never a crash or an unbounded buffer.
//
// Trust: parses input from the peer server (mdad over a local socket, or any
// host on the Internet for the SMTP client): untrusted.
//
// Standards: RFC 5321 §4.2 (reply lines: three digits, then SP or "-" on
// every line but the last, the same code on every line), §4.5.3.1.5 (reply
// line length; we allow more than the 512 octets the RFC sets, since real
// servers exceed it), RFC 2033 §4.2 (one reply per recipient after DATA;
// the parser just yields them in order), RFC 2034 / RFC 3463 (enhanced
// status codes), RFC 6531 (UTF-8 in reply text is passed through).
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin::smtp {

// One reply. code is 200..559 (first digit 2-5, second 0-5). enhanced is
// "c.s.d" when the first line starts with an enhanced status code whose
// class equals the code's first digit, else empty; when set it is removed
// from the text of every line that starts with it.
struct ClientReply {
  int code = 0;
  std::string enhanced;
  std::vector<std::string> lines;  // text after "ddd " / "ddd-", one per line

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // "550 5.1.1 first line second line": one line for logs, the queue's
  // state file and a DSN's Diagnostic-Code. Text is already free of
  // control characters.
  std::string summary() const;

  bool operator==(const ClientReply&) const = default;
};

// A reply made up locally for a failure that has no server reply (connection
// refused, timeout, protocol error), so callers treat every outcome alike.
ClientReply localReply(int code, std::string_view enhanced, std::string_view text);

struct ReplyLimits {
  size_t maxLine = 2048;  // octets per line including CRLF
  size_t maxLines = 128;  // lines per reply
};

class ReplyParser {
 public:
  explicit ReplyParser(ReplyLimits limits = {}) : limits_(limits) {}

  // Consumes bytes. Complete replies are queued for next(). After an error
  // (failed()) further input is ignored.
  void feed(std::string_view bytes);
  // The oldest complete reply not yet taken.
  std::optional<ClientReply> next();
  size_t ready() const { return done_.size(); }

  bool failed() const { return failed_; }
  // What was wrong, for logs ("reply line too long", "mixed reply codes").
  const std::string& error() const { return error_; }
  // Bytes of an unfinished reply have been received.
  bool partial() const { return !line_.empty() || !current_.lines.empty(); }

 private:
  void line(std::string_view text);
  void fail(std::string what);

  ReplyLimits limits_;
  std::string line_;     // the current line, without its line ending
  bool sawCr_ = false;   // line_ is followed by a CR
  ClientReply current_;  // lines of a multi-line reply so far
  std::deque<ClientReply> done_;
  bool failed_ = false;
  std::string error_;
};

}  // namespace yubin::smtp
