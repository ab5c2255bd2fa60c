// mime/text: see text.hpp. Trust: decodes untrusted message bytes.
#include "mime/text.hpp"

namespace yubin::mime {
namespace {

Charset partCharset(const Part& part) {
  auto name = paramValueUtf8(part.params, "charset");
  return name ? charsetFromName(*name) : Charset::Ascii;
}

}  // namespace

PartTextDecoder::PartTextDecoder(const Part& part)
    : transfer_(transferEncodingFromName(part.encoding)), charset_(partCharset(part)) {}

void PartTextDecoder::decode(std::string_view raw, std::string& out) {
  scratch_.clear();
  transfer_.decode(raw, scratch_);
  charset_.decode(scratch_, out);
}

void PartTextDecoder::finish(std::string& out) {
  scratch_.clear();
  transfer_.finish(scratch_);
  charset_.decode(scratch_, out);
  charset_.finish(out);
}

}  // namespace yubin::mime
