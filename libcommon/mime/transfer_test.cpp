// Tests for mime/transfer: base64 and quoted-printable, whole and one byte
// at a time, lenient on broken input.
// Trust: test code.
#include "mime/transfer.hpp"

#include <catch2/catch.hpp>

using namespace yubin::mime;

namespace {

std::string bytewise(TransferEncoding enc, std::string_view in, bool* errors = nullptr) {
  TransferDecoder d(enc);
  std::string out;
  for (char c : in) d.decode(std::string_view(&c, 1), out);
  d.finish(out);
  if (errors) *errors = d.sawErrors();
  return out;
}

}  // namespace

TEST_CASE("encoding names") {
  CHECK(transferEncodingFromName("BASE64") == TransferEncoding::Base64);
  CHECK(transferEncodingFromName(" Quoted-Printable ") == TransferEncoding::QuotedPrintable);
  CHECK(transferEncodingFromName("") == TransferEncoding::SevenBit);
  CHECK(transferEncodingFromName("8bit") == TransferEncoding::EightBit);
  CHECK(transferEncodingFromName("binary") == TransferEncoding::Binary);
  CHECK(transferEncodingFromName("x-uuencode") == TransferEncoding::Unknown);
}

TEST_CASE("base64") {
  auto [in, out, bad] = GENERATE(table<std::string, std::string, bool>({
      {"aGVsbG8=", "hello", false},
      {"aGVs\r\nbG8=\r\n", "hello", false},
      {"aGVsbG8", "hello", false},  // missing pad: accepted
      {"aGVsbA==", "hell", false},
      {"aGVs bG8h", "hello!", false},
      {"aGV*sbG8h", "hello!", true},   // junk skipped, flagged
      {"aGVsbA==aGVs", "hell", true},  // data after the pad
      {"a", "", true},
      {"", "", false},
  }));
  CHECK(decodeTransfer(TransferEncoding::Base64, in) == out);
  bool errors = false;
  CHECK(bytewise(TransferEncoding::Base64, in, &errors) == out);
  CHECK(errors == bad);
}

TEST_CASE("quoted-printable") {
  auto [in, out, bad] = GENERATE(table<std::string, std::string, bool>({
      {"caf=C3=A9", "caf\xC3\xA9", false},
      {"soft=\r\nbreak", "softbreak", false},
      {"soft=\nbreak", "softbreak", false},
      {"soft= \t\r\nbreak", "softbreak", false},  // blanks after "=" (RFC 2045 §6.7 (3))
      {"trailing   \r\nline", "trailing\r\nline", false},
      {"keep  inner blanks", "keep  inner blanks", false},
      {"lower=c3=a9", "lower\xC3\xA9", false},
      {"bad=XYend", "bad=XYend", true},
      {"bad=4", "bad=4", true},
      {"end=", "end", false},
      {"a=3D=0D=0Ab", "a=\r\nb", false},
      {"bare\rcr", "bare\rcr", false},
      {"tail  ", "tail", false},
  }));
  CHECK(decodeTransfer(TransferEncoding::QuotedPrintable, in) == out);
  bool errors = false;
  CHECK(bytewise(TransferEncoding::QuotedPrintable, in, &errors) == out);
  CHECK(errors == bad);
}

TEST_CASE("identity encodings and hostile blanks") {
  const std::string withNul("a\r\nb\0c", 6);
  CHECK(decodeTransfer(TransferEncoding::EightBit, withNul) == withNul);
  // A very long run of blanks is flushed, never held without bound.
  const std::string blanks(100000, ' ');
  const std::string out = decodeTransfer(TransferEncoding::QuotedPrintable, blanks + "x");
  CHECK(out == blanks + "x");
  // Before anything follows them, at most kMaxPendingBlanks blanks are held
  // back: plain blanks, and blanks after an "=" that might be a soft break.
  for (std::string_view prefix : {"", "="}) {
    TransferDecoder d(TransferEncoding::QuotedPrintable);
    std::string held;
    d.decode(prefix, held);
    d.decode(blanks, held);
    CHECK(held.size() + TransferDecoder::kMaxPendingBlanks >= prefix.size() + blanks.size());
    CHECK(held.find_first_not_of(' ', prefix.size()) == std::string::npos);
    d.decode("x", held);
    d.finish(held);
    CHECK(held == std::string(prefix) + blanks + "x");
    CHECK(d.sawErrors() == !prefix.empty());
  }
}
