// libFuzzer target for modified UTF-7 and mailbox names: whatever decodes
// must encode back to exactly the input (strict decoding admits only
// canonical forms); valid UTF-8 must survive encode -> decode; normalised
// names must be stable under a second normalisation; LIST matching must
// terminate and agree with itself.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "imap/mutf7.hpp"
#include "mail/address.hpp"

using namespace yubin::imap;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto d = mutf7Decode(in); d.ok()) {
    auto e = mutf7Encode(d.value());
    if (!e.ok() || e.value() != in) std::abort();
  }
  if (yubin::mail::isValidUtf8(in)) {
    auto e = mutf7Encode(in);
    if (!e.ok()) std::abort();
    auto d = mutf7Decode(e.value());
    // U+0000 is refused by the decoder on purpose.
    if (in.find('\0') == std::string_view::npos && (!d.ok() || d.value() != in)) std::abort();
  }
  for (bool utf8 : {false, true}) {
    MailboxNameRules rules{'.', utf8, 512};
    if (auto n = mailboxFromWire(in, rules); n.ok()) {
      auto again = mailboxFromWire(mailboxToWire(n.value(), utf8), rules);
      if (!again.ok() || again.value() != n.value()) std::abort();
    }
  }
  if (size > 2 && size < 300) {
    const size_t cut = data[0] % size;
    std::string_view pattern = in.substr(0, cut), name = in.substr(cut);
    if (matchPattern(pattern, name, '.') != matchPattern(pattern, name, '.')) std::abort();
    if (!matchPattern("*", name, '.')) std::abort();
  }
  return 0;
}
