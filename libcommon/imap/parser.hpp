// The incremental IMAP command parser: fed bytes in any pieces, it yields
// complete commands as typed syntax trees (command.hpp), tells the session
// when a continuation request must be sent before a literal, streams APPEND
// message literals to a sink instead of buffering them, and turns hostile or
// broken input into a BAD the session can answer before going on with the
// next command.
//
// Trust: parses untrusted network input; runs inside mrad (before and after
// login). Memory is bounded by ParserSettings whatever the client sends: a
// line, a literal or a whole command above its limit is never buffered, a
// literal announced over the limit is refused before its bytes are read, and
// one that arrives anyway (non-synchronising) is skipped without storing it.
//
// Standards: RFC 3501 §4 and §9, RFC 9051 §4 and §9 (literals, quoted
// strings; 8-bit in quoted strings only with UTF-8 enabled: RFC 9051 /
// RFC 6855), RFC 7888 (LITERAL+ "{n+}", LITERAL- up to 4096 octets),
// RFC 3516 (literal8 "~{n}" for APPEND), RFC 4469 / RFC 9051 (TOOBIG), and
// the commands listed in command.hpp.
//
// Deliberate leniency: a line may end in a bare LF as well as CRLF (many
// clients and test tools send LF). Everything else follows the ABNF; NUL is
// refused everywhere except inside literal8 (CVE-2019-11500 class).
//
// Session contract, in short:
//   Parser p(settings, &sink);
//   on readable: p.feed(bytes); then loop:
//     Event e = p.next();
//     NeedMore        -> stop; read more (stop reading while p.buffered() is large)
//     ContinueRequest -> send "+ Ready for literal\r\n" now (a synchronising
//                        literal follows); keep calling next()
//     Command         -> run it; while it runs (async storage), stop calling
//                        next(): commands are strictly ordered
//     ParseError      -> send tagged(e.tag or "*", Bad or No, e.tooBig ?
//                        "TOOBIG" : "", e.text); close if e.closeAdvised,
//                        otherwise keep calling next() (the parser has
//                        already resynchronised)
//     RawLine         -> only in line mode (see setLineMode)
// APPEND: with a sink, each message literal of an APPEND arrives as
// messageBegin / messageData... / messageEnd while the command is parsed; the
// next Command (an AppendArgs with the sizes, flags and dates) or ParseError
// for that command says whether to commit or discard what the sink wrote.
// Without a sink the content lands in AppendMessage::content.
// AUTHENTICATE continuation lines and IDLE's "DONE": after such a command
// the session calls setLineMode(true); next() then yields each line as a
// RawLine (CRLF removed) until setLineMode(false).
// ENABLE IMAP4rev2 / UTF8=ACCEPT: setUtf8(true).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "imap/command.hpp"

namespace yubin::imap {

enum class LiteralPlus : uint8_t {
  None,   // "{n+}" is refused (BAD, and the octets the client sends anyway are skipped)
  Minus,  // LITERAL-: "{n+}" up to 4096 octets
  Plus,   // LITERAL+: "{n+}" of any size within the limits
};

struct ParserSettings {
  size_t maxLine = 64 * 1024;          // octets of one line, CRLF excluded (literals not counted)
  size_t maxCommand = 1024 * 1024;     // octets kept for one command: lines + literals
  uint64_t maxLiteral = 64 * 1024;     // one literal other than an APPEND message
  uint64_t maxMessage = 64ULL << 20;   // one APPEND message literal (streamed to the sink)
  unsigned maxDepth = 32;              // nesting of parentheses, NOT and OR
  size_t maxItems = 10000;             // arguments in one command: keys, items, flags, names
  LiteralPlus literalPlus = LiteralPlus::Plus;
  bool multiAppend = true;             // several messages in one APPEND (RFC 3502)
  bool utf8 = false;                   // 8-bit (valid UTF-8) allowed in quoted strings
};

// Receives APPEND message literals while they arrive. `index` counts the
// messages of one APPEND from 0. Calls come from inside Parser::next().
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  virtual void messageBegin(size_t index, uint64_t size, bool binary) = 0;
  virtual void messageData(std::string_view chunk) = 0;
  virtual void messageEnd() = 0;
};

struct NeedMore {};
struct ContinueRequest {
  uint64_t size = 0;  // the literal's announced size
};
struct ParseError {
  std::string tag;        // "" when no tag could be read: answer "* BAD ..."
  std::string command;    // the command name, uppercased, when it could be read ("APPEND":
                          // answer a refused message with NO [TOOBIG])
  std::string text;       // short reason; never contains client bytes
  bool tooBig = false;    // a limit was exceeded: answer with [TOOBIG] (NO for APPEND)
  bool closeAdvised = false;  // the client sent something only an abuser sends (a huge
                              // non-synchronising literal): close rather than skip it
};
struct RawLine {
  std::string text;
};
using Event = std::variant<NeedMore, ContinueRequest, Command, ParseError, RawLine>;

class Parser {
 public:
  explicit Parser(ParserSettings settings = {}, MessageSink* sink = nullptr);

  // Appends bytes to the input; nothing is parsed until next().
  void feed(std::string_view bytes);
  // The next event; NeedMore when the input is used up.
  Event next();

  void setUtf8(bool on) { settings_.utf8 = on; }
  void setLiteralPlus(LiteralPlus mode) { settings_.literalPlus = mode; }
  void setLineMode(bool on) { lineMode_ = on; }
  bool lineMode() const { return lineMode_; }
  const ParserSettings& settings() const { return settings_; }
  // Octets fed but not consumed yet.
  size_t buffered() const { return in_.size() - pos_; }
  // True between commands (nothing of a command has been read).
  bool atCommandStart() const;

 private:
  enum class State : uint8_t { Line, Literal, StreamLiteral, SkipLiteral };

  Event lineComplete();
  Event finishDiscardedLine();
  Event lineTooLong();
  void resetCommand();
  ParseError makeError(std::string text, bool tooBig = false) const;

  ParserSettings settings_;
  MessageSink* sink_;
  std::string in_;
  size_t pos_ = 0;
  State state_ = State::Line;
  bool lineMode_ = false;
  // The command being read: its lines (CRLF-terminated when a literal
  // follows) and buffered literals, as the grammar's cursor will read them.
  std::string cmd_;
  size_t lineStart_ = 0;                // where the current line starts in cmd_
  std::vector<size_t> streamed_;        // cmd_ offsets of literals sent to the sink (in
                                        // order: the sink's message index)
  size_t appendResume_ = 0;             // cmd_ offset just past the last APPEND message
  uint64_t literalLeft_ = 0;
  bool discarding_ = false;             // dropping the rest of a command already answered
  std::string discardTail_;             // the end of a discarded line (literal detection)
};

// True for "DONE" in any case: the line that ends IDLE (RFC 2177).
bool isIdleDone(std::string_view line);

}  // namespace yubin::imap
