// libFuzzer target for the decoder of mrad's login -> mail process record
// (handoff.hpp): any bytes into decodeHandoff. The decoder is strict, so a
// record it accepts has one encoding only: encoding what it returned must
// give back the very same bytes (no slack in lengths, bools or padding),
// and decoding that again the same Handoff.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mrad/handoff.hpp"

using namespace yubin::mrad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto h = decodeHandoff(in);
  if (!h) {
    if (h.error().message.empty()) std::abort();
    return 0;
  }
  if (h->protocol != Protocol::Pop3 && h->protocol != Protocol::Imap) std::abort();
  if (h->kind != MailboxKind::Maildir && h->kind != MailboxKind::Mbox) std::abort();
  std::string again = encodeHandoff(*h);
  if (again != in) std::abort();
  auto h2 = decodeHandoff(again);
  if (!h2 || !(*h2 == *h)) std::abort();
  return 0;
}
