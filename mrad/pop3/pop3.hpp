// POP3 pieces both halves of a session share: the line reader with its
// length limit, the command splitter, the replies catalogue and the wire
// encoder that turns stored message bytes into a multi-line response
// (bare LF -> CRLF, dot-stuffing, TOP's line limit, the terminating dot).
// Pure: no sockets, no clock, no files.
// Trust: parses untrusted network input (the login half runs before
// authentication as [mrad] user; the mail half after it as mail_user).
// Standards: RFC 1939 (POP3), RFC 2449 (CAPA, response codes, 255-octet
// command lines), RFC 3206 (SYS and AUTH response codes), RFC 2595 (STLS),
// RFC 5034 (AUTH).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin::mrad::pop3 {

struct Limits {
  // Longest command line, CRLF included (RFC 2449 §4 says 255 octets for
  // commands; SASL responses may be longer, so the bound is a little looser).
  size_t maxLine = 2048;
  // Unknown, malformed or out-of-state commands before the server hangs up.
  unsigned maxBadCommands = 10;
};

// Splits a byte stream into lines (CRLF or bare LF). A line longer than the
// limit is reported once as too long and skipped up to its end.
class LineReader {
 public:
  explicit LineReader(size_t maxLine) : maxLine_(maxLine) {}
  void feed(std::string_view bytes) { buf_.append(bytes); }
  enum class Kind { None, Line, TooLong };
  // The next complete line (without its line end) in *line.
  Kind next(std::string* line);
  // Bytes received but not yet returned as lines (handed to the mail
  // process with the session).
  std::string takeRest();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  size_t maxLine_;
  bool skipping_ = false;
};

struct Command {
  std::string verb;               // upper-cased
  std::vector<std::string> args;  // split at single spaces
  std::string rest;               // everything after "VERB " as it came (PASS)
};
// "" verb for an empty line.
Command parseCommand(std::string_view line);

// Strict decimal message number or count (no sign, no leading blanks, at
// most 9 digits).
std::optional<uint64_t> parseNumber(std::string_view s);

// "+OK text\r\n" / "-ERR text\r\n" / "-ERR [CODE] text\r\n".
std::string ok(std::string_view text);
std::string err(std::string_view text);
std::string errCode(std::string_view code, std::string_view text);

inline constexpr std::string_view kInUse = "IN-USE";
inline constexpr std::string_view kSysTemp = "SYS/TEMP";
inline constexpr std::string_view kSysPerm = "SYS/PERM";
inline constexpr std::string_view kAuth = "AUTH";

// Message bytes -> the body of a multi-line response.
class WireEncoder {
 public:
  // bodyLines: TOP's n (the header, the empty line, then n lines of the
  // body); nullopt for the whole message.
  explicit WireEncoder(std::optional<uint64_t> bodyLines = std::nullopt)
      : limited_(bodyLines.has_value()), left_(bodyLines.value_or(0)) {}
  // Appends the encoded form of bytes to out. Returns false once TOP's
  // limit is reached (the rest need not be read).
  bool encode(std::string_view in, std::string& out);
  // Ends the response: CRLF if the last line had none, then ".\r\n".
  void finish(std::string& out);

 private:
  void endLine();
  bool limited_;
  uint64_t left_;
  bool done_ = false;
  bool atLineStart_ = true;
  bool prevCr_ = false;
  bool inBody_ = false;
  uint64_t lineLen_ = 0;
};

}  // namespace yubin::mrad::pop3
