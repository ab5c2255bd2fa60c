// libFuzzer target for the mbox parser and mboxrd quoting (hostile mbox
// files are untrusted input). Checks, for arbitrary bytes:
//  - parsing the input whole or in uneven pieces gives the same messages;
//  - offsets are ordered and inside the input, and each message's data is
//    its on-disk bytes with ^>+From  lines un-quoted;
//  - the input used as one message body, quoted and framed as mboxWriter
//    frames it, parses back to exactly that body (plus an LF if it had
//    none): quoting is reversible and no body can forge a separator.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "store/mbox.hpp"
#include "store/transform.hpp"

namespace {

using yubin::Status;
using yubin::store::MboxMessage;
using yubin::store::MboxParser;

std::vector<MboxMessage> parse(std::string_view in, bool uneven) {
  std::vector<MboxMessage> out;
  MboxParser p([&](MboxMessage&& m) -> Status {
    out.push_back(std::move(m));
    return {};
  });
  size_t pos = 0, step = 1;
  while (pos < in.size()) {
    size_t n = uneven ? std::min(step, in.size() - pos) : in.size();
    if (!p.feed(in.substr(pos, n))) abort();
    pos += n;
    step = step * 5 % 23 + 1;
  }
  if (!p.finish()) abort();
  return out;
}

std::string unquoteLines(std::string_view raw) {
  std::string out;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t nl = raw.find('\n', pos);
    size_t end = nl == std::string_view::npos ? raw.size() : nl + 1;
    std::string_view line = raw.substr(pos, end - pos);
    if (yubin::store::isQuotedFromLine(line)) line.remove_prefix(1);
    out.append(line);
    pos = end;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  auto whole = parse(in, false);
  auto pieces = parse(in, true);
  if (whole.size() != pieces.size()) abort();
  uint64_t last = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    const MboxMessage& a = whole[i];
    const MboxMessage& b = pieces[i];
    if (a.data != b.data || a.offset != b.offset || a.endOffset != b.endOffset ||
        a.from.sender != b.from.sender || a.from.date != b.from.date)
      abort();
    if (a.offset < last || a.dataOffset < a.offset || a.endOffset < a.dataOffset ||
        a.endOffset > size)
      abort();
    last = a.endOffset;
    if (unquoteLines(in.substr(a.dataOffset, a.endOffset - a.dataOffset)) != a.data) abort();
  }

  yubin::store::FromQuoter q;
  std::string framed = "From x Thu Jan  1 00:00:00 1970\n";
  q.feed(in, framed);
  q.finish(framed);
  if (!in.empty() && in.back() != '\n') framed += '\n';
  framed += '\n';
  auto one = parse(framed, true);
  std::string want(in);
  if (!want.empty() && want.back() != '\n') want += '\n';
  if (one.size() != 1 || one[0].data != want || !one[0].hasFromLine) abort();
  return 0;
}
