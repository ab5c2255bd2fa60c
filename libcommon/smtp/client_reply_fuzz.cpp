// libFuzzer target for the client-side reply parser: the input is fed whole
// and in pieces whose sizes come from the input itself; both must agree, and
// every reply yielded must respect the grammar's promises (code range,
// lines within the limits, no control characters in the text).
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/client_reply.hpp"

using namespace yubin::smtp;

namespace {

constexpr ReplyLimits kLimits{.maxLine = 256, .maxLines = 16};

std::vector<ClientReply> drain(ReplyParser& p) {
  std::vector<ClientReply> out;
  while (auto r = p.next()) out.push_back(std::move(*r));
  return out;
}

void check(const ClientReply& r) {
  if (r.code < 200 || r.code > 559) std::abort();
  if (r.lines.empty() || r.lines.size() > kLimits.maxLines) std::abort();
  if (!r.enhanced.empty() && r.enhanced[0] != static_cast<char>('0' + r.code / 100)) std::abort();
  for (const auto& l : r.lines) {
    if (l.size() > kLimits.maxLine) std::abort();
    for (char c : l)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ReplyParser whole(kLimits);
  whole.feed(in);
  std::vector<ClientReply> a = drain(whole);

  // Pieces: each byte of the input also picks the length of the next piece.
  ReplyParser pieces(kLimits);
  std::vector<ClientReply> b;
  size_t i = 0;
  while (i < in.size()) {
    size_t n = 1 + static_cast<unsigned char>(in[i]) % 7;
    pieces.feed(in.substr(i, n));
    for (auto& r : drain(pieces)) b.push_back(std::move(r));
    i += n;
  }
  if (a != b || whole.failed() != pieces.failed() || whole.error() != pieces.error()) std::abort();
  for (const auto& r : a) check(r);
  return 0;
}
