// mime/charset: see charset.hpp. Trust: converts untrusted bytes.
#include "mime/charset.hpp"

#include <array>

#include "base/strings.hpp"

namespace yubin::mime {
namespace {

constexpr uint32_t kReplacement = 0xFFFD;

// Windows-1252 0x80..0x9F (WHATWG index); the undefined five are the C1
// controls themselves.
constexpr std::array<uint16_t, 32> kCp1252High = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

uint32_t latin9(uint8_t b) {
  switch (b) {
    case 0xA4:
      return 0x20AC;
    case 0xA6:
      return 0x0160;
    case 0xA8:
      return 0x0161;
    case 0xB4:
      return 0x017D;
    case 0xB8:
      return 0x017E;
    case 0xBC:
      return 0x0152;
    case 0xBD:
      return 0x0153;
    case 0xBE:
      return 0x0178;
    default:
      return b;
  }
}

// Length of the UTF-8 sequence a lead byte announces, 0 when it is no lead.
int sequenceLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether the second byte is allowed after lead (RFC 3629 table: no
// overlongs, no surrogates, nothing above U+10FFFF).
bool secondOk(uint8_t lead, uint8_t b) {
  if ((b & 0xC0) != 0x80) return false;
  if (lead == 0xE0) return b >= 0xA0;
  if (lead == 0xED) return b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90;
  if (lead == 0xF4) return b <= 0x8F;
  return true;
}

}  // namespace

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

Charset charsetFromName(std::string_view name) {
  std::string n = toLower(trim(name));
  if (n == "utf-8" || n == "utf8") return Charset::Utf8;
  if (n == "us-ascii" || n == "ascii" || n == "ansi_x3.4-1968" || n == "iso646-us" || n == "us")
    return Charset::Ascii;
  if (n == "iso-8859-1" || n == "iso8859-1" || n == "iso_8859-1" || n == "latin1" || n == "l1" ||
      n == "iso-ir-100" || n == "cp819" || n == "iso_8859-1:1987")
    return Charset::Latin1;
  if (n == "iso-8859-15" || n == "iso8859-15" || n == "iso_8859-15" || n == "latin-9" ||
      n == "latin9")
    return Charset::Latin9;
  if (n == "windows-1252" || n == "cp1252" || n == "x-cp1252") return Charset::Windows1252;
  return Charset::Unknown;
}

void CharsetDecoder::decodeUtf8(std::string_view in, std::string& out) {
  size_t i = 0;
  // Complete a sequence left over from the previous call first.
  while (pendingLen_ > 0 && i < in.size()) {
    const auto lead = static_cast<uint8_t>(pending_[0]);
    const int need = sequenceLength(lead);
    const auto b = static_cast<uint8_t>(in[i]);
    const bool ok = pendingLen_ == 1 ? secondOk(lead, b) : (b & 0xC0) == 0x80;
    if (!ok) {
      appendUtf8(out, kReplacement);
      pendingLen_ = 0;
      break;  // b is examined again below as a fresh byte
    }
    pending_[pendingLen_++] = static_cast<char>(b);
    ++i;
    if (pendingLen_ == need) {
      out.append(pending_, pendingLen_);
      pendingLen_ = 0;
    }
  }
  while (i < in.size()) {
    const auto lead = static_cast<uint8_t>(in[i]);
    if (lead < 0x80) {
      // Copy a run of ASCII at once.
      size_t j = i + 1;
      while (j < in.size() && static_cast<uint8_t>(in[j]) < 0x80) ++j;
      out.append(in.substr(i, j - i));
      i = j;
      continue;
    }
    const int need = sequenceLength(lead);
    if (need == 0) {
      appendUtf8(out, kReplacement);
      ++i;
      continue;
    }
    int have = 1;
    bool bad = false;
    while (have < need && i + have < in.size()) {
      const auto b = static_cast<uint8_t>(in[i + have]);
      if (have == 1 ? !secondOk(lead, b) : (b & 0xC0) != 0x80) {
        bad = true;
        break;
      }
      ++have;
    }
    if (bad) {
      appendUtf8(out, kReplacement);
      i += have;  // the offending byte is examined again as a fresh byte
      continue;
    }
    if (have < need) {  // ran out of input: keep for the next call
      for (int k = 0; k < have; ++k) pending_[k] = in[i + k];
      pendingLen_ = static_cast<uint8_t>(have);
      return;
    }
    out.append(in.substr(i, need));
    i += need;
  }
}

void CharsetDecoder::decode(std::string_view in, std::string& out) {
  switch (cs_) {
    case Charset::Utf8:
    case Charset::Ascii:
    case Charset::Unknown:
      decodeUtf8(in, out);
      return;
    case Charset::Latin1:
    case Charset::Latin9:
    case Charset::Windows1252:
      break;
  }
  for (char c : in) {
    const auto b = static_cast<uint8_t>(c);
    if (b < 0x80) {
      out.push_back(c);
    } else if (cs_ == Charset::Latin9) {
      appendUtf8(out, latin9(b));
    } else if (cs_ == Charset::Windows1252 && b < 0xA0) {
      appendUtf8(out, kCp1252High[b - 0x80]);
    } else {
      appendUtf8(out, b);
    }
  }
}

void CharsetDecoder::finish(std::string& out) {
  if (pendingLen_ > 0) appendUtf8(out, kReplacement);
  pendingLen_ = 0;
}

bool toUtf8(std::string_view charsetName, std::string_view bytes, std::string& out) {
  const Charset cs = charsetFromName(charsetName);
  if (cs == Charset::Unknown) return false;
  CharsetDecoder d(cs);
  d.decode(bytes, out);
  d.finish(out);
  return true;
}

}  // namespace yubin::mime
