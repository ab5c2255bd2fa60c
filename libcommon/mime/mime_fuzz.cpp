// libFuzzer target for the MIME structure parser and what is built on it.
// The first input byte picks a chunk size; the rest is a message. Checks:
// parsing in chunks gives the same structure as in one piece; every part's
// ranges lie inside the message and nest; rendering terminates; the cache
// form decodes back to the same structure; section ranges are inside the
// message; the decoders run over every body; the HEADER.FIELDS filter
// gives the same output fed in pieces.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mime/address_list.hpp"
#include "mime/cache.hpp"
#include "mime/header.hpp"
#include "mime/render.hpp"
#include "mime/section.hpp"
#include "mime/structure.hpp"
#include "mime/transfer.hpp"

using namespace yubin::mime;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = (data[0] % 13) + 1;
  const std::string_view msg(reinterpret_cast<const char*>(data + 1), size - 1);
  StructureLimits limits;
  limits.maxDepth = (data[0] & 0x80) ? 3 : 20;
  limits.maxParts = (data[0] & 0x40) ? 5 : 5000;
  const Structure whole = parseStructure(msg, limits);
  StructureParser p(limits);
  for (size_t i = 0; i < msg.size(); i += chunk) p.feed(msg.substr(i, chunk));
  const Structure pieces = p.finish();
  check(whole == pieces);
  check(whole.size == msg.size());
  check(!whole.parts.empty() && whole.parts.size() <= limits.maxParts);
  for (size_t i = 0; i < whole.parts.size(); ++i) {
    const Part& q = whole.parts[i];
    check(q.headerOffset + q.headerSize == q.bodyOffset);
    check(q.bodyOffset + q.bodySize <= msg.size());
    check(q.depth <= limits.maxDepth);
    if (i > 0) {
      const Part& parent = whole.parts[q.parent];
      check(q.parent < i && q.headerOffset >= parent.bodyOffset &&
            q.bodyOffset + q.bodySize <= parent.bodyOffset + parent.bodySize);
    }
    std::string decoded;
    TransferDecoder d(transferEncodingFromName(q.encoding));
    d.decode(msg.substr(q.bodyOffset, q.bodySize), decoded);
    d.finish(decoded);
    if (q.envelope) (void)renderEnvelope(*q.envelope);
  }
  (void)renderBody(whole, true);
  (void)renderBody(whole, false, RenderOptions{true, false});
  auto back = decodeStructure(encodeStructure(whole));
  check(back.ok() && back.value() == whole);
  for (uint32_t a = 0; a < 3; ++a) {
    for (uint32_t b = 0; b < 3; ++b) {
      for (auto t :
           {SectionText::None, SectionText::Header, SectionText::Text, SectionText::Mime}) {
        SectionSpec spec{{}, t};
        if (a) spec.path.push_back(a);
        if (b) spec.path.push_back(b);
        if (auto r = sectionRange(whole, spec)) check(r->offset + r->size <= msg.size());
      }
    }
  }
  (void)decodeStructure(msg);
  (void)parseAddressList(msg.substr(0, 4096));
  (void)decodeEncodedWords(msg.substr(0, 4096));
  (void)parseContentType(msg.substr(0, 4096));
  const std::string fields = filterHeaderFields(msg, {"subject", "from"}, data[0] & 1);
  HeaderFieldFilter filter({"subject", "from"}, data[0] & 1);
  std::string streamed;
  for (size_t i = 0; i < msg.size(); i += chunk) filter.feed(msg.substr(i, chunk), streamed);
  filter.finish(streamed);
  check(streamed == fields);
  return 0;
}
