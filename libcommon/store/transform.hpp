// Streaming byte transforms used while writing a message into a mailbox
// file, each able to take its input in pieces of any size (a CRLF or a
// ">From " may be split across pieces):
//   CrlfToLf    CRLF -> LF (a lone CR is kept);
//   FromQuoter  mboxrd quoting: a line matching ^>*From  gets one more '>';
//   MessageWriter  the two above, buffered, counted, written through Fs.
// And the reverse of FromQuoter for one complete line (isQuotedFromLine).
//
// Trust level: the bytes are untrusted; state is a few counters, so memory
// does not grow with hostile input (e.g. a line of a million '>').
// Standards: mboxrd as described in RFC 4155 and by its authors
// (quoting is reversible: ">From " un-quotes to "From ").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "store/fs_ops.hpp"
#include "store/message_source.hpp"

namespace yubin::store {

class CrlfToLf {
 public:
  // Appends the converted form of in to out. A trailing CR is held back
  // until the next piece (or finish) shows whether an LF follows.
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  bool heldCr_ = false;
};

class FromQuoter {
 public:
  // The stream starts at the beginning of a line.
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  void flushPending(std::string& out, bool quote);
  bool atLineStart_ = true;
  uint64_t gt_ = 0;     // '>' seen at the start of the current line
  size_t matched_ = 0;  // bytes of "From " matched after them
};

// True when line (a whole line, with or without its end) matches
// ^>+From : the reader then drops its first byte.
bool isQuotedFromLine(std::string_view line);

// Writes message bytes to fd: put() applies the transforms, raw() does
// not (for the From_ line and separators; call endMessage() first).
// Buffered: nothing is guaranteed on disk before flush().
class MessageWriter {
 public:
  MessageWriter(Fs& fs, int fd, std::string label, LineEndings endings, bool mboxQuote);
  Status put(std::string_view bytes);
  // Flushes the transforms' held state (a held CR, a partial ">>Fro").
  void endMessage();
  Status raw(std::string_view bytes);
  Status flush();
  // Bytes handed to the file so far, including the buffered ones.
  uint64_t written() const { return written_; }
  // The last byte produced, or '\n' if none yet.
  char lastByte() const { return last_; }

 private:
  Status append(std::string_view bytes);
  Fs& fs_;
  int fd_;
  std::string label_;
  bool toLf_;
  bool quote_;
  CrlfToLf crlf_;
  FromQuoter quoter_;
  std::string buf_, tmp1_, tmp2_;
  uint64_t written_ = 0;
  char last_ = '\n';
};

// write() through fs until all of data is written (short writes, EINTR).
Status writeAllFs(Fs& fs, int fd, std::string_view data, const std::string& label);

}  // namespace yubin::store
