// libFuzzer target for the maildrop file (maildrop.hpp) as mtad's pickup
// reads it: any bytes are a drop file some local user wrote (hostile by
// definition). parseDrop first; a file it accepts then goes through what
// the pickup does with it (preparePickup, for a trusted and an untrusted
// submitter) and the envelope that comes out through the queue's own
// validation and file encoding.
//
// Checked, besides memory safety and leaks:
// - a refusal is always EBADMSG (the pickup quarantines on it);
// - an accepted file has one meaning: the header re-encoded by
//   encodeDropHeader parses back to the same header, and the message is
//   exactly the `size` octets after it;
// - an untrusted submitter's -f never becomes the sender; the -F name
//   quoted for From: holds no control character (no header injection
//   through the file);
// - an envelope the queue accepts (validateEnvelope) survives
//   encodeEnvelope / parseEnvelope unchanged.
// Trust: test code.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mtad/maildrop.hpp"
#include "mtad/pickup.hpp"
#include "queue/format.hpp"

using namespace yubin;
using namespace yubin::mtad;

namespace {

void runPickup(const ParsedDrop& drop, std::string_view message, bool trusted) {
  Submitter who;
  who.uid = trusted ? 0 : 1000;
  who.login = trusted ? "root" : "user";
  who.fullName = "User \"Name\" \x01(x)";
  who.trusted = trusted;
  who.address = trusted ? "root@host.example" : "user@host.example";
  auto p = preparePickup(drop, message, who, 1751364000, "<fuzz@host.example>");
  if (!p) {
    if (p.error().errnum != EBADMSG) std::abort();
    return;
  }
  const queue::Envelope& env = p->envelope;
  if (env.recipients.size() != drop.header.recipients.size()) std::abort();
  if (!trusted && env.sender != who.address) std::abort();
  if (env.nullSender != env.sender.empty()) std::abort();
  if (queue::validateEnvelope(env)) {
    auto back = queue::parseEnvelope(queue::encodeEnvelope(env));
    if (!back || !(*back == env)) std::abort();
  }
  // The -F name goes into From: without a control character.
  if (drop.header.fullName)
    for (unsigned char c : quoteDisplayName(*drop.header.fullName))
      if (c < 0x20 || c == 0x7f) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view file(reinterpret_cast<const char*>(data), size);
  auto parsed = parseDrop(file);
  if (!parsed) {
    if (parsed.error().errnum != EBADMSG || parsed.error().message.empty()) std::abort();
    return 0;
  }
  const DropHeader& h = parsed->header;
  if (parsed->messageOffset > file.size()) std::abort();
  std::string_view message = file.substr(parsed->messageOffset);
  if (message.size() != h.size) std::abort();
  if (h.recipients.empty() || h.recipients.size() > kMaxDropRecipients) std::abort();

  auto enc = encodeDropHeader(h);
  if (!enc) std::abort();  // everything the parser accepts can be written
  std::string again = *enc;
  again.append(message);
  auto reparsed = parseDrop(again);
  if (!reparsed) std::abort();
  const DropHeader& h2 = reparsed->header;
  if (h2.sender != h.sender || h2.fullName != h.fullName || h2.recipients != h.recipients ||
      h2.size != h.size || reparsed->messageOffset != enc->size())
    std::abort();

  runPickup(*parsed, message, false);
  runPickup(*parsed, message, true);
  return 0;
}
