// libFuzzer target for the submission header fixer (header_fixer.hpp): any
// bytes as message content, fed whole and in pieces. The first input byte
// chooses the options (bit 0: a From: value is given; bits 1-7: the seed of
// the piece sizes); the rest is the message. Checks, for arbitrary bytes:
//  - the output does not depend on how the content is split, nor do
//    sawFrom/sawDate/sawMessageId;
//  - the output is the trace, then the content with one insertion: exactly
//    the missing fields (From only when a value is given), preceded by a
//    CRLF when the last header line had no line end and followed by a CRLF
//    when the message had no header/body separator; no content byte is
//    dropped, changed or moved;
//  - the fixer is idempotent: the output fixed again gets only a second
//    trace field, and every field the first pass added is seen there.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mail/header_fixer.hpp"

using namespace yubin::mail;

namespace {

const std::string kTrace = "Received: by fuzz.example\r\n";

HeaderAdditions additions(bool withFrom) {
  return {kTrace, withFrom ? "<fuzz@example.org>" : "", "Sat, 28 Nov 2026 01:02:03 +0000",
          "<fuzz@example.org>"};
}

struct Run {
  std::string out;
  bool from = false, date = false, messageId = false;
};

// Feeds `in` in pieces of 1 to 64 octets chosen by a small generator
// seeded with `seed`; seed 0 feeds it whole.
Run fix(std::string_view in, bool withFrom, uint32_t seed) {
  HeaderFixer f(additions(withFrom));
  Run r;
  uint32_t x = seed;
  while (!in.empty()) {
    size_t n = in.size();
    if (seed != 0) {
      x = x * 1103515245u + 12345u;
      n = std::min<size_t>(n, 1 + (x >> 16) % 64);
    }
    f.feed(in.substr(0, n), r.out);
    in.remove_prefix(n);
  }
  f.finish(r.out);
  r.from = f.sawFrom();
  r.date = f.sawDate();
  r.messageId = f.sawMessageId();
  return r;
}

std::string addedFields(const Run& r, bool withFrom) {
  const HeaderAdditions a = additions(withFrom);
  std::string s;
  if (withFrom && !r.from) s += "From: " + a.from + "\r\n";
  if (!r.date) s += "Date: " + a.date + "\r\n";
  if (!r.messageId) s += "Message-ID: " + a.messageId + "\r\n";
  return s;
}

// True when `rest` is `in` with `ins` inserted at one position.
bool isInsertion(std::string_view rest, std::string_view in, std::string_view ins) {
  if (rest.size() != in.size() + ins.size()) return false;
  size_t prefix = 0;
  while (prefix < in.size() && rest[prefix] == in[prefix]) ++prefix;
  size_t suffix = 0;
  while (suffix < in.size() && rest[rest.size() - 1 - suffix] == in[in.size() - 1 - suffix])
    ++suffix;
  // The insertion point k has in[:k] before it and in[k:] after it.
  size_t lo = in.size() - suffix;
  for (size_t k = lo; k <= prefix; ++k)
    if (rest.substr(k, ins.size()) == ins) return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 3 * HeaderFixer::kHoldLimit) return 0;
  const bool withFrom = data[0] & 1;
  const uint32_t seed = (data[0] >> 1) + 1;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  const Run whole = fix(in, withFrom, 0);
  const Run pieces = fix(in, withFrom, seed);
  if (whole.out != pieces.out || whole.from != pieces.from || whole.date != pieces.date ||
      whole.messageId != pieces.messageId)
    abort();

  const std::string& out = whole.out;
  if (out.compare(0, kTrace.size(), kTrace) != 0) abort();
  const std::string_view rest = std::string_view(out).substr(kTrace.size());
  const std::string fields = addedFields(whole, withFrom);
  if (!isInsertion(rest, in, fields) && !isInsertion(rest, in, fields + "\r\n") &&
      !isInsertion(rest, in, "\r\n" + fields + "\r\n"))
    abort();

  const Run again = fix(out, withFrom, seed);
  if (again.out != kTrace + out) abort();
  if (!again.date || !again.messageId || (withFrom && !again.from)) abort();
  if (again.from != (whole.from || withFrom)) abort();
  return 0;
}
