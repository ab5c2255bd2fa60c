// mime/transfer: see transfer.hpp. Trust: decodes untrusted bytes.
#include "mime/transfer.hpp"

#include <array>

#include "base/strings.hpp"

namespace yubin::mime {
namespace {

// Sextet value of each byte, -1 outside the alphabet.
constexpr std::array<int8_t, 256> kBase64 = [] {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
  return t;
}();

int base64Value(char c) { return kBase64[static_cast<uint8_t>(c)]; }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;  // lenient: RFC 2045 wants upper case
  return -1;
}

bool isBlank(char c) { return c == ' ' || c == '\t'; }

}  // namespace

TransferEncoding transferEncodingFromName(std::string_view name) {
  const std::string n = toLower(trim(name));
  if (n.empty() || n == "7bit") return TransferEncoding::SevenBit;
  if (n == "8bit") return TransferEncoding::EightBit;
  if (n == "binary") return TransferEncoding::Binary;
  if (n == "quoted-printable") return TransferEncoding::QuotedPrintable;
  if (n == "base64") return TransferEncoding::Base64;
  return TransferEncoding::Unknown;
}

void TransferDecoder::decodeBase64(std::string_view in, std::string& out) {
  for (char c : in) {
    if (padded_) {
      if (c != '=' && base64Value(c) >= 0) errors_ = true;  // data after the end
      continue;
    }
    if (c == '=') {
      // A pad after 2 or 3 sextets ends the data; anywhere else it is an error.
      if (nbits_ != 12 && nbits_ != 18) errors_ = true;
      padded_ = true;
      continue;
    }
    const int v = base64Value(c);
    if (v < 0) {
      if (c != '\r' && c != '\n' && !isBlank(c)) errors_ = true;
      continue;
    }
    bits_ = (bits_ << 6) | static_cast<uint32_t>(v);
    nbits_ += 6;
    if (nbits_ == 24) {
      out.push_back(static_cast<char>((bits_ >> 16) & 0xFF));
      out.push_back(static_cast<char>((bits_ >> 8) & 0xFF));
      out.push_back(static_cast<char>(bits_ & 0xFF));
      bits_ = 0;
      nbits_ = 0;
    }
  }
}

void TransferDecoder::decodeQp(std::string_view in, std::string& out) {
  const size_t n = in.size();
  size_t i = 0;
  while (i < n) {
    if (!cr_ && escape_.empty()) {
      // Most of a QP body is plain bytes: a run of them goes out at once
      // (SEARCH BODY decodes whole folders).
      size_t j = i;
      while (j < n && in[j] != '=' && in[j] != '\r' && in[j] != '\n' && !isBlank(in[j])) ++j;
      if (j > i) {
        out.append(blanks_);
        blanks_.clear();
        out.append(in.data() + i, j - i);
        i = j;
        if (i == n) break;
      }
    }
    const char c = in[i++];
    if (cr_) {
      cr_ = false;
      if (c == '\n') {
        // CRLF: blanks before it were added in transport (RFC 2045 §6.7 (3)).
        blanks_.clear();
        if (escape_ == "=") {  // soft line break
          escape_.clear();
          continue;
        }
        out.append(escape_);
        escape_.clear();
        out.append("\r\n");
        continue;
      }
      // A bare CR: keep it as data.
      out.append(escape_);
      escape_.clear();
      out.append(blanks_);
      blanks_.clear();
      out.push_back('\r');
    }
    if (!escape_.empty()) {
      if (escape_.size() == 1 && isBlank(c)) {
        // "=" followed by blanks then the line end is still a soft break.
        blanks_.push_back(c);
        if (blanks_.size() > kMaxPendingBlanks) {
          errors_ = true;
          out.append(escape_);
          escape_.clear();
          out.append(blanks_);
          blanks_.clear();
        }
        continue;
      }
      if (escape_.size() == 1 && blanks_.empty() && hexValue(c) >= 0) {
        escape_.push_back(c);
        continue;
      }
      if (escape_.size() == 2 && hexValue(c) >= 0) {
        out.push_back(static_cast<char>(hexValue(escape_[1]) * 16 + hexValue(c)));
        escape_.clear();
        continue;
      }
      if (c == '\r' || c == '\n') {
        if (c == '\r') {
          cr_ = true;
          continue;
        }
        // Bare LF line end (accepted like CRLF).
        blanks_.clear();
        if (escape_ == "=") {
          escape_.clear();
          continue;
        }
        errors_ = true;
        out.append(escape_);
        escape_.clear();
        out.push_back('\n');
        continue;
      }
      // Not an escape: keep the bytes as they were.
      errors_ = true;
      out.append(escape_);
      escape_.clear();
      out.append(blanks_);
      blanks_.clear();
      // fall through to treat c afresh
    }
    if (c == '=') {
      out.append(blanks_);
      blanks_.clear();
      escape_.assign(1, '=');
    } else if (isBlank(c)) {
      blanks_.push_back(c);
      if (blanks_.size() > kMaxPendingBlanks) {
        out.append(blanks_);
        blanks_.clear();
      }
    } else if (c == '\r') {
      cr_ = true;
    } else if (c == '\n') {
      blanks_.clear();
      out.push_back('\n');
    } else {
      out.append(blanks_);
      blanks_.clear();
      out.push_back(c);
    }
  }
}

void TransferDecoder::decode(std::string_view in, std::string& out) {
  switch (enc_) {
    case TransferEncoding::Base64:
      decodeBase64(in, out);
      return;
    case TransferEncoding::QuotedPrintable:
      decodeQp(in, out);
      return;
    default:
      out.append(in);
      return;
  }
}

void TransferDecoder::finish(std::string& out) {
  if (enc_ == TransferEncoding::Base64) {
    if (nbits_ == 12) {
      out.push_back(static_cast<char>((bits_ >> 4) & 0xFF));
    } else if (nbits_ == 18) {
      out.push_back(static_cast<char>((bits_ >> 10) & 0xFF));
      out.push_back(static_cast<char>((bits_ >> 2) & 0xFF));
    } else if (nbits_ != 0) {
      errors_ = true;
    }
    bits_ = 0;
    nbits_ = 0;
  } else if (enc_ == TransferEncoding::QuotedPrintable) {
    if (escape_ == "=") {
      // "=" (and blanks) at the very end: a soft break without its line end.
      escape_.clear();
    } else if (!escape_.empty()) {
      errors_ = true;
      out.append(escape_);
      escape_.clear();
    }
    if (cr_) out.push_back('\r');
    cr_ = false;
    blanks_.clear();  // trailing blanks of the last line
  }
}

std::string decodeTransfer(TransferEncoding enc, std::string_view in) {
  std::string out;
  TransferDecoder d(enc);
  d.decode(in, out);
  d.finish(out);
  return out;
}

}  // namespace yubin::mime
