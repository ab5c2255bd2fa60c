// mime/text: the text of a body part for SEARCH BODY/TEXT: its
// Content-Transfer-Encoding undone, then converted from its charset to
// UTF-8, streaming (feed the stored body bytes in pieces of any size).
//
// API:
//   PartTextDecoder d(part); d.decode(raw, out)...; d.finish(out);
//   An unknown charset is read as UTF-8 (invalid bytes become U+FFFD), so
//   ASCII words are still found; an unknown transfer encoding passes the
//   bytes through.
//
// Trust: decodes untrusted message bytes; state is a few bytes.
// Standards: RFC 2045 §6, RFC 2046 §4.1.2 (charset), RFC 3501 §6.4.4
// (SEARCH BODY/TEXT compare decoded text).
#pragma once

#include <string>
#include <string_view>

#include "mime/charset.hpp"
#include "mime/structure.hpp"
#include "mime/transfer.hpp"

namespace yubin::mime {

class PartTextDecoder {
 public:
  explicit PartTextDecoder(const Part& part);
  void decode(std::string_view raw, std::string& out);
  void finish(std::string& out);

 private:
  TransferDecoder transfer_;
  CharsetDecoder charset_;
  std::string scratch_;
};

}  // namespace yubin::mime
