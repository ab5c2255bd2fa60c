// What msad adds to a submitted message on its way through: a Received:
// trace field first, and Date: and Message-ID: at the end of the header
// section when the client left them out (RFC 6409 §8.2, §8.3). The content
// streams through; only the current header line is held, and only while
// the header section lasts.
// Trust: scans untrusted message content from an authenticated user.
// Standards: RFC 5322 §2.2, §3.6 (header fields, Date, Message-ID),
// RFC 6409 §8, RFC 5321 §4.4 (Received).
#pragma once

#include <string>
#include <string_view>

namespace yubin::msad {

class HeaderFixer {
 public:
  // `received` is a whole field with its CRLF; `date` and `messageId` are
  // the field values to use when missing ("Tue, 1 Jul 2025 10:00:00
  // +0000", "<id@host>").
  HeaderFixer(std::string received, std::string date, std::string messageId);

  // Content in pieces of any size (CRLF line ends); the output for it is
  // appended to `out`.
  void feed(std::string_view in, std::string& out);
  // The end of the content: flushes what is held (and adds the missing
  // fields when the message had no body separator).
  void finish(std::string& out);

  bool sawDate() const { return sawDate_; }
  bool sawMessageId() const { return sawMessageId_; }

 private:
  void headerLine(std::string& out);
  void missing(std::string& out);

  std::string received_, date_, messageId_;
  bool started_ = false;
  bool inHeader_ = true;
  bool longLine_ = false;  // the current line passed the hold limit: not examined
  std::string line_;       // the current header line so far
  bool sawDate_ = false;
  bool sawMessageId_ = false;
};

// "Sat, 28 Nov 2026 01:02:03 +0000", in local time.
std::string rfc5322Date(long epochSeconds);
// "<random@host>".
std::string newMessageId(std::string_view host);

}  // namespace yubin::msad
