// Message content coders for the SMTP engine and the clients: the decoders
// of the dot-stuffed DATA stream and of raw BDAT chunks (server side), and
// the dot-stuffing encoder (mtad's LMTP and SMTP clients). All stream: they keep a few bits of state, never
// a line, so a 10 MB line costs no memory.
//
// Trust: parses untrusted network input.
//
// Standards: RFC 5321 §4.1.1.4 and §4.5.2 (end of data, dot-stuffing),
// §2.3.8 (CR and LF only as CRLF), RFC 3030 (BDAT).
//
// SMTP smuggling: the message ends at the first <CR><LF>.<CR><LF> of the
// byte stream (counting the CRLF that ended the DATA command) and nowhere
// else: <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR><LF> and the like never end it.
// A bare CR or LF is reported (sawBareLineEnding); the output always carries
// it converted to CRLF, and the caller decides to reject or keep it. A line
// that begins after such a converted line ending can never end the message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace yubin::smtp {

class DotDecoder {
 public:
  // Consumes bytes of `in` up to and including the end-of-data line, appends
  // the unstuffed content with CRLF line endings to `out`, and returns the
  // number of bytes consumed (less than in.size() only when done()).
  size_t decode(std::string_view in, std::string& out);
  bool done() const { return state_ == State::Done; }
  bool sawBareLineEnding() const { return bare_; }
  void reset() { *this = DotDecoder(); }

 private:
  enum class State : uint8_t {
    LineStart,      // after a real CRLF: a '.' here is stuffing or the end
    SoftLineStart,  // after a converted bare CR/LF: a '.' here never ends
    Dot,            // LineStart then '.'
    SoftDot,        // SoftLineStart then '.'
    DotCr,          // LineStart then ".\r"
    Middle,
    Cr,
    Done,
  };
  // Where decode() last found the next LF and CR (kUnknown: not looked).
  static constexpr size_t kUnknown = static_cast<size_t>(-1);
  struct Positions {
    size_t lf = kUnknown;
    size_t cr = kUnknown;
  };
  // The length of the run of clean CRLF-ended lines at in[i...] (see
  // decode()), 0 when there is none.
  size_t cleanLines(std::string_view in, size_t i, Positions& next) const;
  void bareLineEnd(std::string& out);
  State state_ = State::LineStart;
  bool bare_ = false;
};

// BDAT content: passes bytes through, noting (and converting to CRLF) every
// CR not followed by LF and every LF not preceded by CR, across chunk
// boundaries. With `binary` (BODY=BINARYMIME) bytes pass untouched.
class ChunkDecoder {
 public:
  void decode(std::string_view in, std::string& out);
  // The last chunk has been read: a CR left pending is bare.
  void finish(std::string& out);
  bool sawBareLineEnding() const { return bare_; }
  void reset(bool binary) {
    *this = ChunkDecoder();
    binary_ = binary;
  }

 private:
  bool binary_ = false;
  bool pendingCr_ = false;
  bool bare_ = false;
};

// Dot-stuffing of message content for DATA (client side), across chunk
// boundaries: a '.' that starts a line is doubled. finish() appends the
// end-of-data line, after a CRLF when the content does not end with one.
class DotEncoder {
 public:
  void encode(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  bool lineStart_ = true;
  char last_ = '\0';
  char beforeLast_ = '\0';
  bool empty_ = true;
};

}  // namespace yubin::smtp
