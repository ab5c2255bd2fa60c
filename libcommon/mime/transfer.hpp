// mime/transfer: Content-Transfer-Encoding decoders (base64,
// quoted-printable; 7bit/8bit/binary pass through), streaming: feed the
// encoded body in pieces of any size, get the decoded bytes appended. Used
// for SEARCH BODY/TEXT and for BINARY[] (RFC 3516).
//
// API:
//   TransferEncoding transferEncodingFromName(name)   case-insensitive
//   TransferDecoder d(enc); d.decode(in, out) ...; d.finish(out);
//   d.sawErrors()   true when the input broke the encoding's rules (BINARY
//                   must then answer NO [UNKNOWN-CTE]... the caller decides;
//                   the decoder still produced its best effort)
//   std::string decodeTransfer(enc, in)   one-shot convenience
//
// Lenient like common servers: base64 skips characters outside its alphabet
// and stops at the first "=" pad; quoted-printable keeps an "=" that does not
// start a valid escape as it is, and strips the trailing blanks that RFC
// 2045 §6.7 (3) says a transport may have added. Memory: a few bytes of state,
// plus at most kMaxPendingBlanks blanks held while deciding whether they end
// a line.
//
// Trust: decodes untrusted message bytes.
// Standards: RFC 2045 §6 (Content-Transfer-Encoding, quoted-printable,
// base64), RFC 3516 (BINARY).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace yubin::mime {

enum class TransferEncoding : uint8_t {
  SevenBit,
  EightBit,
  Binary,
  QuotedPrintable,
  Base64,
  Unknown
};

TransferEncoding transferEncodingFromName(std::string_view name);

class TransferDecoder {
 public:
  static constexpr size_t kMaxPendingBlanks = 1024;
  explicit TransferDecoder(TransferEncoding enc) : enc_(enc) {}
  void decode(std::string_view in, std::string& out);
  void finish(std::string& out);
  bool sawErrors() const { return errors_; }

 private:
  void decodeBase64(std::string_view in, std::string& out);
  void decodeQp(std::string_view in, std::string& out);
  TransferEncoding enc_;
  bool errors_ = false;
  // base64: bits gathered so far and their count; done after a pad.
  uint32_t bits_ = 0;
  int nbits_ = 0;
  bool padded_ = false;
  // quoted-printable: an escape under way ("=" or "=X"), a CR that may
  // start a CRLF, and blanks that may turn out to be trailing.
  std::string escape_;
  std::string blanks_;
  bool cr_ = false;
};

std::string decodeTransfer(TransferEncoding enc, std::string_view in);

}  // namespace yubin::mime
