// mime/header: see header.hpp. Trust: parses untrusted message bytes.
#include "mime/header.hpp"

#include <algorithm>
#include <map>

#include "base/strings.hpp"
#include "mime/charset.hpp"
#include "mime/transfer.hpp"

namespace yubin::mime {
namespace {

bool isBlank(char c) { return c == ' ' || c == '\t'; }
bool isWs(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// RFC 2045 §5.1 tspecials, plus SP and controls.
bool isTokenChar(char c) {
  const auto b = static_cast<uint8_t>(c);
  if (b <= 0x20 || b == 0x7F) return false;
  return std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

// Skips blanks, line ends and (nested) comments.
void skipCfws(std::string_view s, size_t& pos) {
  while (pos < s.size()) {
    if (isWs(s[pos])) {
      ++pos;
    } else if (s[pos] == '(') {
      int depth = 0;
      while (pos < s.size()) {
        const char c = s[pos++];
        if (c == '\\') {
          if (pos < s.size()) ++pos;
        } else if (c == '(') {
          ++depth;
        } else if (c == ')') {
          if (--depth == 0) break;
        }
      }
    } else {
      break;
    }
  }
}

std::string_view readToken(std::string_view s, size_t& pos) {
  const size_t start = pos;
  while (pos < s.size() && isTokenChar(s[pos])) ++pos;
  return s.substr(start, pos - start);
}

// A quoted-string starting at s[pos] == '"': its content with quoted-pairs
// resolved and folding removed. An unterminated one runs to the end.
std::string readQuoted(std::string_view s, size_t& pos) {
  std::string out;
  ++pos;
  while (pos < s.size()) {
    const char c = s[pos++];
    if (c == '"') break;
    if (c == '\\' && pos < s.size()) {
      out.push_back(s[pos++]);
    } else if (c != '\r' && c != '\n') {
      out.push_back(c);
    }
  }
  return out;
}

// An unquoted parameter value, read leniently: up to ";", a blank or a
// comment (boundaries like "----=_Part_1" carry tspecials unquoted).
std::string readLenientValue(std::string_view s, size_t& pos) {
  const size_t start = pos;
  while (pos < s.size() && s[pos] != ';' && !isWs(s[pos]) && s[pos] != '(') ++pos;
  return std::string(s.substr(start, pos - start));
}

void skipPast(std::string_view s, size_t& pos, char c) {
  while (pos < s.size() && s[pos] != c) {
    if (s[pos] == '"') {
      readQuoted(s, pos);
    } else {
      ++pos;
    }
  }
  if (pos < s.size()) ++pos;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string percentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// RFC 2231 attribute-char: what may stand unencoded in an extended value.
std::string percentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto b = static_cast<uint8_t>(c);
    if (isTokenChar(c) && c != '*' && c != '\'' && c != '%' && b < 0x80) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
    }
  }
  return out;
}

// One RFC 2047 encoded word at s[pos] ("=?cs?e?text?="). On success sets
// charset (language suffix removed), the decoded bytes and pos past it.
bool parseEncodedWord(std::string_view s, size_t& pos, std::string& charset, std::string& bytes) {
  size_t p = pos + 2;
  const size_t q1 = s.find('?', p);
  if (q1 == std::string_view::npos || q1 == p) return false;
  std::string_view cs = s.substr(p, q1 - p);
  for (char c : cs)
    if (!isTokenChar(c) && c != '=' && c != '/') return false;
  if (q1 + 2 >= s.size() || s[q1 + 2] != '?') return false;
  const char enc = s[q1 + 1];
  p = q1 + 3;
  const size_t end = s.find("?=", p);
  if (end == std::string_view::npos) return false;
  const std::string_view text = s.substr(p, end - p);
  for (char c : text)
    if (isWs(c)) return false;
  if (auto star = cs.find('*'); star != std::string_view::npos) cs = cs.substr(0, star);
  bytes.clear();
  if (enc == 'B' || enc == 'b') {
    bytes = decodeTransfer(TransferEncoding::Base64, text);
  } else if (enc == 'Q' || enc == 'q') {
    for (size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '_') {
        bytes.push_back(' ');
      } else if (c == '=' && i + 2 < text.size() && hexValue(text[i + 1]) >= 0 &&
                 hexValue(text[i + 2]) >= 0) {
        bytes.push_back(static_cast<char>(hexValue(text[i + 1]) * 16 + hexValue(text[i + 2])));
        i += 2;
      } else {
        bytes.push_back(c);
      }
    }
  } else {
    return false;
  }
  charset = std::string(cs);
  pos = end + 2;
  return true;
}

}  // namespace

bool isFieldName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto b = static_cast<uint8_t>(c);
    if (b < 33 || b > 126 || c == ':') return false;
  }
  return true;
}

void HeaderCollector::addLine(const Line& line) {
  const std::string_view text = line.text;
  if (!text.empty() && isBlank(text[0])) {
    if (!inField_ || skipping_) return;
    if (bytes_ + text.size() + 2 > limits_.maxBytes) {
      truncated_ = true;
      skipping_ = true;
      return;
    }
    auto& v = fields_.back().value;
    v.append("\r\n");
    v.append(text);
    bytes_ += text.size() + 2;
    if (line.truncated) truncated_ = true;
    return;
  }
  inField_ = false;
  skipping_ = true;
  if (++count_ > limits_.maxFields) {
    truncated_ = true;
    return;
  }
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return;  // not a field: ignored with its continuations
  std::string_view name = text.substr(0, colon);
  while (!name.empty() && isBlank(name.back())) name.remove_suffix(1);  // obs-optional
  if (!isFieldName(name)) return;
  if (keep_ && !keep_(name)) return;
  const std::string_view value = text.substr(colon + 1);
  if (bytes_ + name.size() + value.size() > limits_.maxBytes) {
    truncated_ = true;
    return;
  }
  fields_.push_back(HeaderField{std::string(name), std::string(value)});
  bytes_ += name.size() + value.size();
  inField_ = true;
  skipping_ = false;
  if (line.truncated) truncated_ = true;
}

const HeaderField* HeaderCollector::find(std::string_view name) const {
  for (const auto& f : fields_)
    if (iequals(f.name, name)) return &f;
  return nullptr;
}

size_t HeaderParser::feed(std::string_view in) {
  if (done_) return 0;
  return lines_.feed(in, [&](const Line& l) {
    size_ += l.length;
    if (l.contentLength() == 0) {
      done_ = true;
      return false;
    }
    collector_.addLine(l);
    return true;
  });
}

void HeaderParser::finish() {
  if (done_) return;
  lines_.finish([&](const Line& l) {
    size_ += l.length;
    if (l.contentLength() > 0) collector_.addLine(l);
  });
  done_ = true;
}

ParsedHeader parseHeader(std::string_view text, HeaderLimits limits) {
  HeaderParser p(limits);
  p.feed(text);
  p.finish();
  return ParsedHeader{std::move(p.collector().fields()), p.size(), p.collector().truncated()};
}

std::string unfold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value)
    if (c != '\r' && c != '\n') out.push_back(c);
  return std::string(trim(out));
}

std::string decodeEncodedWords(std::string_view s) {
  std::string out, blanks, charset, bytes, pendingCharset, pendingBytes;
  bool pending = false;
  auto flush = [&] {
    if (!pending) return;
    toUtf8(pendingCharset, pendingBytes, out);
    pending = false;
    pendingBytes.clear();
  };
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '=' && i + 1 < s.size() && s[i + 1] == '?') {
      size_t p = i;
      if (parseEncodedWord(s, p, charset, bytes) && charsetFromName(charset) != Charset::Unknown) {
        if (pending && iequals(pendingCharset, charset)) {
          // Adjacent words in one charset: join the bytes first, so a
          // character split between two words decodes whole.
          pendingBytes += bytes;
        } else {
          flush();
          pendingCharset = charset;
          pendingBytes = bytes;
          pending = true;
        }
        blanks.clear();  // RFC 2047 §6.2: blanks between words are dropped
        i = p;
        continue;
      }
    }
    const char c = s[i];
    if (pending && isWs(c)) {
      blanks.push_back(c);
      ++i;
      continue;
    }
    flush();
    out += blanks;
    blanks.clear();
    out.push_back(c);
    ++i;
  }
  flush();
  out += blanks;
  return out;
}

std::vector<Param> parseParams(std::string_view s) {
  struct Raw {
    std::string name, value;
  };
  std::vector<Raw> raw;
  size_t pos = 0;
  while (pos < s.size() && raw.size() < 1000) {
    skipCfws(s, pos);
    if (pos >= s.size()) break;
    if (s[pos] == ';') {
      ++pos;
      continue;
    }
    const std::string_view name = readToken(s, pos);
    skipCfws(s, pos);
    if (name.empty() || pos >= s.size() || s[pos] != '=') {
      skipPast(s, pos, ';');
      continue;
    }
    ++pos;
    skipCfws(s, pos);
    std::string value;
    if (pos < s.size() && s[pos] == '"') {
      value = readQuoted(s, pos);
    } else {
      value = readLenientValue(s, pos);
    }
    raw.push_back(Raw{std::string(name), std::move(value)});
    skipCfws(s, pos);
    if (pos < s.size() && s[pos] != ';') skipPast(s, pos, ';');
  }

  // RFC 2231 §3: gather name*N and name*N* pieces by name, in order.
  struct Piece {
    uint32_t section;
    bool extended;
    std::string value;
  };
  struct Group {
    std::string name;  // as first written, without the section suffix
    std::vector<Piece> pieces;
  };
  std::vector<Param> out;
  std::vector<Group> groups;
  std::vector<size_t> groupSlot;  // where in out each group's result goes
  for (auto& r : raw) {
    const size_t star = r.name.find('*');
    if (star == std::string::npos || star + 1 == r.name.size()) {
      out.push_back(Param{r.name, std::move(r.value)});
      continue;
    }
    std::string_view rest = std::string_view(r.name).substr(star + 1);
    bool extended = false;
    if (rest.back() == '*') {
      extended = true;
      rest.remove_suffix(1);
    }
    auto n = parseU64(rest);
    if (!n || *n > 999 || (rest.size() > 1 && rest[0] == '0')) {
      out.push_back(Param{r.name, std::move(r.value)});  // not a continuation: keep as is
      continue;
    }
    const std::string base = r.name.substr(0, star);
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const Group& g) { return iequals(g.name, base); });
    if (it == groups.end()) {
      groups.push_back(Group{base, {}});
      it = groups.end() - 1;
    }
    it->pieces.push_back(Piece{static_cast<uint32_t>(*n), extended, std::move(r.value)});
  }
  // Merged continuations follow the plain parameters (as Dovecot orders them).
  for (size_t g = 0; g < groups.size(); ++g) {
    groupSlot.push_back(out.size());
    out.push_back(Param{});
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& pieces = groups[g].pieces;
    std::stable_sort(pieces.begin(), pieces.end(),
                     [](const Piece& a, const Piece& b) { return a.section < b.section; });
    bool anyExtended = false;
    size_t used = 0;
    for (; used < pieces.size() && pieces[used].section == used; ++used)
      anyExtended = anyExtended || pieces[used].extended;
    std::string value;
    for (size_t i = 0; i < used; ++i) {
      if (anyExtended && !pieces[i].extended) {
        value += percentEncode(pieces[i].value);
      } else {
        value += pieces[i].value;
      }
    }
    if (anyExtended && !(used > 0 && pieces[0].extended)) value.insert(0, "''");
    if (used == 0) continue;  // no section 0: dropped (its slot stays nameless)
    out[groupSlot[g]] = Param{groups[g].name + (anyExtended ? "*" : ""), std::move(value)};
  }
  // A group whose section 0 is missing yields an empty name: drop it.
  out.erase(std::remove_if(out.begin(), out.end(), [](const Param& p) { return p.name.empty(); }),
            out.end());
  return out;
}

std::optional<std::string> paramValueUtf8(const std::vector<Param>& params, std::string_view name) {
  for (const auto& p : params) {
    if (iequals(p.name, name)) {
      if (p.value.find("=?") != std::string::npos) return decodeEncodedWords(p.value);
      return p.value;
    }
  }
  for (const auto& p : params) {
    if (p.name.size() == name.size() + 1 && p.name.back() == '*' &&
        iequals(std::string_view(p.name).substr(0, name.size()), name)) {
      const size_t q1 = p.value.find('\'');
      const size_t q2 = q1 == std::string::npos ? q1 : p.value.find('\'', q1 + 1);
      if (q2 == std::string::npos) return percentDecode(p.value);
      const std::string bytes = percentDecode(std::string_view(p.value).substr(q2 + 1));
      std::string out;
      const std::string_view cs = std::string_view(p.value).substr(0, q1);
      if (cs.empty() || !toUtf8(cs, bytes, out)) return bytes;
      return out;
    }
  }
  return std::nullopt;
}

std::optional<ContentType> parseContentType(std::string_view s) {
  size_t pos = 0;
  skipCfws(s, pos);
  const std::string_view type = readToken(s, pos);
  skipCfws(s, pos);
  if (type.empty() || pos >= s.size() || s[pos] != '/') return std::nullopt;
  ++pos;
  skipCfws(s, pos);
  const std::string_view subtype = readToken(s, pos);
  if (subtype.empty()) return std::nullopt;
  ContentType ct{std::string(type), std::string(subtype), {}};
  ct.params = parseParams(s.substr(pos));
  return ct;
}

std::optional<Disposition> parseDisposition(std::string_view s) {
  size_t pos = 0;
  skipCfws(s, pos);
  const std::string_view type = readToken(s, pos);
  if (type.empty()) return std::nullopt;
  return Disposition{std::string(type), parseParams(s.substr(pos))};
}

std::vector<std::string> parseLanguageList(std::string_view s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size() && out.size() < 100) {
    skipCfws(s, pos);
    if (pos >= s.size()) break;
    if (s[pos] == ',') {
      ++pos;
      continue;
    }
    const std::string_view tag = readToken(s, pos);
    if (tag.empty()) {
      ++pos;  // junk
      continue;
    }
    out.emplace_back(tag);
  }
  return out;
}

HeaderFieldFilter::HeaderFieldFilter(std::vector<std::string> names, bool exclude)
    : names_(std::move(names)), exclude_(exclude) {}

void HeaderFieldFilter::decide() {
  std::string_view name(name_);
  name = name.substr(0, name.find(':'));
  while (!name.empty() && isBlank(name.back())) name.remove_suffix(1);
  include_ = false;
  if (isFieldName(name)) {
    const bool listed = std::any_of(names_.begin(), names_.end(),
                                    [&](const std::string& n) { return iequals(n, name); });
    include_ = listed != exclude_;
  }
}

void HeaderFieldFilter::feed(std::string_view in, std::string& out) {
  for (size_t i = 0; i < in.size() && !done_; ++i) {
    const char c = in[i];
    if (cr_) {
      cr_ = false;
      if (c == '\n') {
        endLine(out);
        continue;
      }
      // A CR inside a line is data.
      if (state_ == State::Name) {
        name_.push_back('\r');
      } else if (include_) {
        out.push_back('\r');
      }
    }
    if (c == '\r') {
      cr_ = true;
      continue;
    }
    if (c == '\n') {
      endLine(out);
      continue;
    }
    switch (state_) {
      case State::LineStart:
        if (isBlank(c)) {
          state_ = State::Rest;  // continuation: follows its field's fate
          if (include_) out.push_back(c);
          continue;
        }
        state_ = State::Name;
        name_.clear();
        [[fallthrough]];
      case State::Name:
        name_.push_back(c);
        if (c != ':' && name_.size() <= kMaxName) continue;
        if (c == ':') {
          decide();
        } else {
          include_ = false;  // no colon within kMaxName bytes: not a field
        }
        if (include_) out.append(name_);
        name_.clear();
        state_ = State::Rest;
        continue;
      case State::Rest: {
        // Copy the rest of the line up to its end in one go.
        size_t j = i;
        while (j < in.size() && in[j] != '\r' && in[j] != '\n') ++j;
        if (include_) out.append(in.substr(i, j - i));
        i = j - 1;
        continue;
      }
    }
  }
}

void HeaderFieldFilter::endLine(std::string& out) {
  if (state_ == State::LineStart) {  // the empty line
    done_ = true;
    return;
  }
  if (state_ == State::Name) include_ = false;  // a line without a colon
  if (include_) out.append("\r\n");
  name_.clear();
  state_ = State::LineStart;
}

void HeaderFieldFilter::finish(std::string& out) {
  if (!done_) {
    if (cr_ && state_ != State::Name && include_) out.push_back('\r');
    if (state_ == State::Rest && include_) out.append("\r\n");
  }
  cr_ = false;
  done_ = true;
  out.append("\r\n");
}

std::string filterHeaderFields(std::string_view header, const std::vector<std::string>& names,
                               bool exclude) {
  std::string out;
  HeaderFieldFilter f(names, exclude);
  f.feed(header, out);
  f.finish(out);
  return out;
}

}  // namespace yubin::mime
