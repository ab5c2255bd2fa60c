// Envelope address and ESMTP parameter parsing. See address.hpp.
// Trust: untrusted network input; every byte is checked against the grammar
// of RFC 5321 §4.1.2 (with the RFC 6531 UTF-8 extension when allowed).
#include "mail/address.hpp"

#include <arpa/inet.h>

#include <array>

#include "base/strings.hpp"

namespace yubin::mail {

namespace {

bool isControl(unsigned char c) { return c < 0x20 || c == 0x7f; }
bool isAlpha(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool isDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool isAlnum(unsigned char c) { return isAlpha(c) || isDigit(c); }

// RFC 5322 atext, extended by RFC 6531 with UTF-8 non-ASCII octets (the
// caller has already checked that the whole input is well-formed UTF-8).
bool isAtext(unsigned char c, bool utf8) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~";
  if (isAlnum(c) || kSpecials.find(static_cast<char>(c)) != std::string_view::npos) return true;
  return utf8 && c >= 0x80;
}

// qtextSMTP: %d32-33 / %d35-91 / %d93-126, plus UTF-8 under RFC 6531.
bool isQtext(unsigned char c, bool utf8) {
  if (c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126)) return true;
  return utf8 && c >= 0x80;
}

bool hasNonAscii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

bool isDotString(std::string_view s, bool utf8) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!isAtext(c, utf8)) {
      return false;
    }
    prev = ch;
  }
  return true;
}

// Dotted-quad IPv4 as RFC 5321 writes it: four Snum of 1-3 digits, 0-255.
bool isIpv4Literal(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    unsigned v = 0;
    while (i < s.size() && isDigit(static_cast<unsigned char>(s[i])) && i - start < 3)
      v = v * 10 + static_cast<unsigned>(s[i++] - '0');
    if (i == start || v > 255) return false;
    ++parts;
    if (i == s.size()) return parts == 4;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
}

bool isIpv6(std::string_view s) {
  if (s.empty() || s.size() > 45) return false;
  std::string z(s);
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET6, z.c_str(), buf.data()) == 1;
}

// The domain part: a Domain or an address-literal. Returns it in the form
// Address::domain holds (literal tag spelled "IPv6:").
Parsed<std::string> parseDomain(std::string_view d, bool utf8) {
  if (d.empty()) return AddressError::BadDomain;
  if (d.size() > kMaxDomain) return AddressError::DomainTooLong;
  if (d.front() == '[') {
    if (d.back() != ']' || d.size() < 3) return AddressError::BadAddressLiteral;
    std::string_view inner = d.substr(1, d.size() - 2);
    if (istartsWith(inner, "IPv6:")) {
      if (!isIpv6(inner.substr(5))) return AddressError::BadAddressLiteral;
      return "[IPv6:" + std::string(inner.substr(5)) + "]";
    }
    if (!isIpv4Literal(inner)) return AddressError::BadAddressLiteral;
    return std::string(d);
  }
  size_t i = 0;
  while (true) {
    size_t dot = d.find('.', i);
    std::string_view label = d.substr(i, dot == std::string_view::npos ? d.npos : dot - i);
    if (label.empty() || label.size() > 63) return AddressError::BadDomain;
    if (label.front() == '-' || label.back() == '-') return AddressError::BadDomain;
    for (char ch : label) {
      auto c = static_cast<unsigned char>(ch);
      if (!(isAlnum(c) || c == '-' || (utf8 && c >= 0x80))) return AddressError::BadDomain;
    }
    if (dot == std::string_view::npos) break;
    i = dot + 1;
  }
  return std::string(d);
}

// A mailbox, the input already known to be free of control characters and,
// when it holds non-ASCII, allowed and well-formed UTF-8.
Parsed<Address> parseMailboxChecked(std::string_view s, bool utf8) {
  Address a;
  size_t at = 0;
  if (!s.empty() && s.front() == '"') {
    size_t i = 1;
    bool closed = false;
    while (i < s.size()) {
      auto c = static_cast<unsigned char>(s[i]);
      if (c == '\\') {
        if (i + 1 >= s.size()) return AddressError::Unterminated;
        auto q = static_cast<unsigned char>(s[i + 1]);
        if (q < 32 || q > 126) return AddressError::BadLocalPart;
        a.local.push_back(static_cast<char>(q));
        i += 2;
        continue;
      }
      if (c == '"') {
        closed = true;
        ++i;
        break;
      }
      if (!isQtext(c, utf8)) return AddressError::BadLocalPart;
      a.local.push_back(static_cast<char>(c));
      ++i;
    }
    if (!closed) return AddressError::Unterminated;
    if (i > kMaxLocalPart) return AddressError::LocalPartTooLong;
    if (a.local.empty()) return AddressError::BadLocalPart;
    if (i == s.size()) return AddressError::MissingDomain;
    if (s[i] != '@') return AddressError::BadLocalPart;
    at = i;
  } else {
    at = s.find('@');
    if (at == std::string_view::npos) {
      return isDotString(s, utf8) ? AddressError::MissingDomain : AddressError::BadLocalPart;
    }
    std::string_view local = s.substr(0, at);
    if (!isDotString(local, utf8)) return AddressError::BadLocalPart;
    if (local.size() > kMaxLocalPart) return AddressError::LocalPartTooLong;
    a.local = std::string(local);
  }
  auto domain = parseDomain(s.substr(at + 1), utf8);
  if (!domain) return domain.error();
  a.domain = std::move(domain).value();
  return a;
}

// Checks the non-ASCII rule of RFC 6531 on `s`.
std::optional<AddressError> checkUtf8(std::string_view s, bool utf8) {
  if (!hasNonAscii(s)) return std::nullopt;
  if (!utf8) return AddressError::Utf8NotAllowed;
  if (!isValidUtf8(s)) return AddressError::BadUtf8;
  return std::nullopt;
}

// The pieces of a MAIL/RCPT argument: "<path>" then SP-separated parameters.
struct Split {
  std::string_view path;   // with its brackets
  std::string_view inner;  // without
  std::string_view params;
};

Parsed<Split> splitPath(std::string_view args, std::string_view prefix) {
  for (unsigned char c : args)
    if (isControl(c)) return AddressError::ControlCharacter;
  if (!istartsWith(args, prefix)) return AddressError::BadCommandSyntax;
  std::string_view s = args.substr(prefix.size());
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  if (s.empty() || s.front() != '<') return AddressError::MissingBrackets;
  bool quoted = false, literal = false;
  size_t end = std::string_view::npos;
  for (size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // the escaped octet, checked later
      } else if (c == '"') {
        quoted = false;
      }
    } else if (literal) {
      if (c == ']') literal = false;
      if (c == '>' || c == '[') return AddressError::Unterminated;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '[') {
      literal = true;
    } else if (c == '>') {
      end = i;
      break;
    }
  }
  if (end == std::string_view::npos) return AddressError::Unterminated;
  Split out;
  out.path = s.substr(0, end + 1);
  out.inner = s.substr(1, end - 1);
  out.params = s.substr(end + 1);
  if (!out.params.empty() && out.params.front() != ' ') return AddressError::TrailingGarbage;
  if (out.path.size() > kMaxPath) return AddressError::PathTooLong;
  return out;
}

// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
bool isKeyword(std::string_view k) {
  if (k.empty() || !isAlnum(static_cast<unsigned char>(k.front()))) return false;
  for (unsigned char c : k)
    if (!isAlnum(c) && c != '-') return false;
  return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126)
bool isValue(std::string_view v) {
  if (v.empty()) return false;
  for (unsigned char c : v)
    if (c < 33 || c > 126 || c == '=') return false;
  return true;
}

struct Param {
  std::string_view keyword;
  std::string_view value;
  bool hasValue = false;
};

// Calls fn(Param) for each parameter; stops at the first error.
template <class Fn>
std::optional<AddressError> forEachParam(std::string_view s, bool esmtp, Fn&& fn) {
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ') {
      ++i;
      continue;
    }
    size_t j = s.find(' ', i);
    if (j == std::string_view::npos) j = s.size();
    std::string_view tok = s.substr(i, j - i);
    i = j;
    if (!esmtp) return AddressError::ParametersNotAllowed;
    Param p;
    size_t eq = tok.find('=');
    p.keyword = tok.substr(0, eq);
    if (eq != std::string_view::npos) {
      p.value = tok.substr(eq + 1);
      p.hasValue = true;
      if (!isValue(p.value)) return AddressError::BadParameter;
    }
    if (!isKeyword(p.keyword)) return AddressError::BadParameter;
    if (auto e = fn(p)) return e;
  }
  return std::nullopt;
}

bool allPrintable(std::string_view s) {
  for (unsigned char c : s)
    if (c < 32 || c > 126) return false;
  return true;
}

std::optional<AddressError> applyMailParam(const Param& p, MailParameters& m, unsigned& seen) {
  auto once = [&](unsigned bit) {
    if (seen & bit) return false;
    seen |= bit;
    return true;
  };
  const std::string_view k = p.keyword;
  if (iequals(k, "SIZE")) {
    if (!once(1)) return AddressError::DuplicateParameter;
    if (!p.hasValue) return AddressError::BadParameter;
    m.size = parseU64(p.value);
    if (!m.size) return AddressError::BadParameter;
  } else if (iequals(k, "BODY")) {
    if (!once(2)) return AddressError::DuplicateParameter;
    if (iequals(p.value, "7BIT")) {
      m.body = Body::SevenBit;
    } else if (iequals(p.value, "8BITMIME")) {
      m.body = Body::EightBitMime;
    } else if (iequals(p.value, "BINARYMIME")) {
      m.body = Body::BinaryMime;
    } else {
      return AddressError::BadParameter;
    }
  } else if (iequals(k, "SMTPUTF8")) {
    if (!once(4)) return AddressError::DuplicateParameter;
    if (p.hasValue) return AddressError::BadParameter;
    m.smtputf8 = true;
  } else if (iequals(k, "RET")) {
    if (!once(8)) return AddressError::DuplicateParameter;
    if (iequals(p.value, "FULL")) {
      m.ret = Ret::Full;
    } else if (iequals(p.value, "HDRS")) {
      m.ret = Ret::Headers;
    } else {
      return AddressError::BadParameter;
    }
  } else if (iequals(k, "ENVID")) {
    if (!once(16)) return AddressError::DuplicateParameter;
    // RFC 3461 §4.4: at most 100 characters, printable US-ASCII once decoded.
    if (!p.hasValue || p.value.size() > 100) return AddressError::BadParameter;
    auto v = xtextDecode(p.value);
    if (!v || !allPrintable(*v)) return AddressError::BadParameter;
    m.envid = std::move(*v);
  } else if (iequals(k, "AUTH")) {
    if (!once(32)) return AddressError::DuplicateParameter;
    if (!p.hasValue || p.value.size() > 500) return AddressError::BadParameter;
    auto v = xtextDecode(p.value);
    if (!v || v->empty() || !allPrintable(*v)) return AddressError::BadParameter;
    m.auth = std::move(*v);
  } else {
    return AddressError::UnknownParameter;
  }
  return std::nullopt;
}

std::optional<AddressError> applyRcptParam(const Param& p, RcptParameters& r, unsigned& seen) {
  const std::string_view k = p.keyword;
  if (iequals(k, "NOTIFY")) {
    if (seen & 1) return AddressError::DuplicateParameter;
    seen |= 1;
    if (!p.hasValue) return AddressError::BadParameter;
    if (iequals(p.value, "NEVER")) {
      r.notify = kNotifyNever;
      return std::nullopt;
    }
    std::string_view v = p.value;
    while (true) {
      size_t comma = v.find(',');
      std::string_view item = v.substr(0, comma);
      if (iequals(item, "SUCCESS")) {
        r.notify |= kNotifySuccess;
      } else if (iequals(item, "FAILURE")) {
        r.notify |= kNotifyFailure;
      } else if (iequals(item, "DELAY")) {
        r.notify |= kNotifyDelay;
      } else {
        return AddressError::BadParameter;  // includes NEVER in a list
      }
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  } else if (iequals(k, "ORCPT")) {
    if (seen & 2) return AddressError::DuplicateParameter;
    seen |= 2;
    // RFC 3461 §4.2: addr-type ";" xtext, at most 500 characters.
    if (!p.hasValue || p.value.size() > 500) return AddressError::BadParameter;
    size_t semi = p.value.find(';');
    if (semi == std::string_view::npos || semi == 0) return AddressError::BadParameter;
    std::string_view type = p.value.substr(0, semi);
    for (unsigned char c : type)
      if (!isAtext(c, false)) return AddressError::BadParameter;
    auto v = xtextDecode(p.value.substr(semi + 1));
    if (!v || v->empty() || !allPrintable(*v)) return AddressError::BadParameter;
    r.orcptType = std::string(type);
    r.orcpt = std::move(*v);
  } else {
    return AddressError::UnknownParameter;
  }
  return std::nullopt;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string Address::str() const {
  if (domain.empty()) return local;
  if (isDotString(local, true)) return local + "@" + domain;
  std::string out = "\"";
  for (char c : local) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out += "\"@";
  out += domain;
  return out;
}

std::string Address::normalized() const {
  if (domain.empty()) return local;
  std::string s = str();
  size_t at = s.size() - domain.size();
  std::string d = toLower(domain);
  if (istartsWith(d, "[ipv6:")) d.replace(1, 4, "IPv6");
  s.replace(at, std::string::npos, d);
  return s;
}

std::string_view describe(AddressError e) {
  switch (e) {
    case AddressError::BadCommandSyntax:
      return "expected FROM: or TO:";
    case AddressError::MissingBrackets:
      return "address must be in angle brackets";
    case AddressError::Unterminated:
      return "unbalanced quote or bracket";
    case AddressError::TrailingGarbage:
      return "unexpected characters after the address";
    case AddressError::ControlCharacter:
      return "control character in address";
    case AddressError::SourceRoute:
      return "source routes are not accepted";
    case AddressError::NullNotAllowed:
      return "null address not allowed here";
    case AddressError::BadLocalPart:
      return "bad local part";
    case AddressError::MissingDomain:
      return "missing domain";
    case AddressError::BadDomain:
      return "bad domain";
    case AddressError::BadAddressLiteral:
      return "bad address literal";
    case AddressError::LocalPartTooLong:
      return "local part longer than 64 octets";
    case AddressError::DomainTooLong:
      return "domain longer than 255 octets";
    case AddressError::PathTooLong:
      return "path longer than 256 octets";
    case AddressError::Utf8NotAllowed:
      return "non-ASCII address without SMTPUTF8";
    case AddressError::BadUtf8:
      return "malformed UTF-8";
    case AddressError::ParametersNotAllowed:
      return "parameters need EHLO";
    case AddressError::UnknownParameter:
      return "unknown parameter";
    case AddressError::DuplicateParameter:
      return "duplicate parameter";
    case AddressError::BadParameter:
      return "bad parameter value";
  }
  return "bad address";
}

AddressErrorClass classify(AddressError e) {
  switch (e) {
    case AddressError::BadCommandSyntax:
    case AddressError::MissingBrackets:
    case AddressError::Unterminated:
    case AddressError::TrailingGarbage:
      return AddressErrorClass::CommandSyntax;
    case AddressError::Utf8NotAllowed:
      return AddressErrorClass::Utf8;
    case AddressError::ParametersNotAllowed:
    case AddressError::UnknownParameter:
      return AddressErrorClass::UnknownParameter;
    case AddressError::DuplicateParameter:
    case AddressError::BadParameter:
      return AddressErrorClass::BadParameter;
    default:
      return AddressErrorClass::Address;
  }
}

Parsed<Address> parseMailbox(std::string_view text, bool utf8) {
  for (unsigned char c : text)
    if (isControl(c)) return AddressError::ControlCharacter;
  if (auto e = checkUtf8(text, utf8)) return *e;
  if (!text.empty() && text.front() == '@') return AddressError::SourceRoute;
  return parseMailboxChecked(text, utf8);
}

Parsed<ReversePath> parseMailArguments(std::string_view args, bool esmtp) {
  auto split = splitPath(args, "FROM:");
  if (!split) return split.error();
  ReversePath rp;
  unsigned seen = 0;
  auto err = forEachParam(split->params, esmtp,
                          [&](const Param& p) { return applyMailParam(p, rp.params, seen); });
  if (err) return *err;
  rp.raw = std::string(split->path);
  if (split->inner.empty()) {
    rp.null = true;
    return rp;
  }
  if (split->inner.front() == '@') return AddressError::SourceRoute;
  if (auto e = checkUtf8(split->inner, rp.params.smtputf8)) return *e;
  auto a = parseMailboxChecked(split->inner, rp.params.smtputf8);
  if (!a) return a.error();
  rp.address = std::move(a).value();
  return rp;
}

Parsed<ForwardPath> parseRcptArguments(std::string_view args, bool esmtp, bool smtputf8) {
  auto split = splitPath(args, "TO:");
  if (!split) return split.error();
  ForwardPath fp;
  unsigned seen = 0;
  auto err = forEachParam(split->params, esmtp,
                          [&](const Param& p) { return applyRcptParam(p, fp.params, seen); });
  if (err) return *err;
  fp.raw = std::string(split->path);
  if (split->inner.empty()) return AddressError::NullNotAllowed;
  if (split->inner.front() == '@') return AddressError::SourceRoute;
  if (iequals(split->inner, "Postmaster")) {
    fp.address = Address{"Postmaster", ""};
    return fp;
  }
  if (auto e = checkUtf8(split->inner, smtputf8)) return *e;
  auto a = parseMailboxChecked(split->inner, smtputf8);
  if (!a) return a.error();
  fp.address = std::move(a).value();
  return fp;
}

bool looksLikeRelayTrick(const Address& address) {
  return address.local.find_first_of("%!@") != std::string::npos;
}

std::optional<std::string> xtextDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '+') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hexValue(text[i + 1]), lo = hexValue(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c >= 33 && c <= 126 && c != '=') {
      out.push_back(static_cast<char>(c));
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::string xtextEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char c : bytes) {
    if (c >= 33 && c <= 126 && c != '+' && c != '=') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('+');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool isValidUtf8(std::string_view bytes) {
  size_t i = 0;
  const size_t n = bytes.size();
  auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  auto cont = [&](size_t k) { return k < n && (at(k) & 0xC0) == 0x80; };
  while (i < n) {
    unsigned char c = at(i);
    if (c < 0x80) {
      ++i;
    } else if (c >= 0xC2 && c <= 0xDF) {
      if (!cont(i + 1)) return false;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      if (!cont(i + 1) || !cont(i + 2)) return false;
      unsigned char c1 = at(i + 1);
      if (c == 0xE0 && c1 < 0xA0) return false;  // overlong
      if (c == 0xED && c1 > 0x9F) return false;  // surrogates
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return false;
      unsigned char c1 = at(i + 1);
      if (c == 0xF0 && c1 < 0x90) return false;  // overlong
      if (c == 0xF4 && c1 > 0x8F) return false;  // above U+10FFFF
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace yubin::mail
