// libFuzzer target for the envelope address parser: random bytes as MAIL and
// RCPT arguments, with and without EHLO and SMTPUTF8. Checks that a parsed
// address renders to a form that parses back to the same address.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mail/address.hpp"

using namespace yubin::mail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool esmtp = flags & 1, utf8 = flags & 2;

  auto checkRoundTrip = [&](const Address& a, bool allowUtf8) {
    if (a.isPostmaster()) return;
    auto back = parseMailbox(a.str(), allowUtf8);
    if (!back.ok() || !(back.value() == a)) std::abort();
  };
  if (auto m = parseMailArguments(in, esmtp); m.ok()) {
    if (!m->null) checkRoundTrip(m->address, m->params.smtputf8);
    if (m->params.envid.size() > 100) std::abort();
  }
  if (auto r = parseRcptArguments(in, esmtp, utf8); r.ok()) {
    checkRoundTrip(r->address, utf8);
    (void)looksLikeRelayTrick(r->address);
    (void)r->address.normalized();
  }
  (void)parseMailbox(in, utf8);
  if (auto x = xtextDecode(in); x && xtextDecode(xtextEncode(*x)) != *x) std::abort();
  (void)isValidUtf8(in);
  return 0;
}
