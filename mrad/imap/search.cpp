// mrad/imap/search: see search.hpp. Trust: evaluates untrusted keys against
// untrusted message bytes; every scan is bounded (kMaxScanBytes, the MIME
// parser's limits).
#include "mrad/imap/search.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include "base/strings.hpp"
#include "imap/date.hpp"
#include "mime/address_list.hpp"
#include "mime/header.hpp"
#include "mime/structure.hpp"
#include "mime/text.hpp"

namespace yubin::mrad::imap {
namespace {

using yubin::imap::SearchKey;
using Kind = SearchKey::Kind;

// Raw bytes handed to the text decoder at a time: bounds the decoded chunk.
constexpr size_t kDecodeChunk = 64 * 1024;

// ---- Case folding ----

// The simple case folding of code point cp in U+0080..U+07FF (the ranges
// named in search.hpp; every result is in U+0000..U+07FF).
uint32_t foldTwoByte(uint32_t cp) {
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 0x20;
  if (cp >= 0x100 && cp <= 0x137) return cp | 1;
  if (cp >= 0x139 && cp <= 0x148) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x14A && cp <= 0x177) return cp | 1;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x179 && cp <= 0x17E) return (cp & 1) ? cp + 1 : cp;
  if (cp == 0x17F) return 's';  // long s folds to s (an ASCII byte: see caller)
  if (cp == 0x386) return 0x3AC;
  if (cp >= 0x388 && cp <= 0x38A) return cp + 0x25;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 0x3F;
  if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 0x20;
  if (cp == 0x3C2) return 0x3C3;  // final sigma
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
  if (cp >= 0x460 && cp <= 0x481) return cp | 1;
  if (cp >= 0x48A && cp <= 0x4BF) return cp | 1;
  if (cp == 0x4C0) return 0x4CF;
  if (cp >= 0x4C1 && cp <= 0x4CE) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x4D0 && cp <= 0x52F) return cp | 1;
  return cp;
}

void appendFolded(std::string_view in, std::string& out) {
  // Folding never lengthens a character: the output fits in in.size().
  const size_t base = out.size();
  out.resize(base + in.size());
  char* w = out.data() + base;
  const size_t n = in.size();
  size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      *w++ = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : static_cast<char>(c);
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF && i + 1 < n &&
        (static_cast<unsigned char>(in[i + 1]) & 0xC0) == 0x80) {
      const uint32_t cp = (uint32_t{c} & 0x1F) << 6 | (static_cast<unsigned char>(in[i + 1]) & 0x3F);
      const uint32_t f = foldTwoByte(cp);
      if (f < 0x80) {
        *w++ = static_cast<char>(f);
      } else {
        *w++ = static_cast<char>(0xC0 | (f >> 6));
        *w++ = static_cast<char>(0x80 | (f & 0x3F));
      }
      i += 2;
      continue;
    }
    *w++ = static_cast<char>(c);  // longer sequences and stray bytes as they are
    ++i;
  }
  out.resize(static_cast<size_t>(w - out.data()));
}

// ---- Streaming substring search over folded text ----

// Finds a folded needle in text fed in pieces; a match may span pieces but
// not a reset() (the boundary between two parts).
class TextMatcher {
 public:
  explicit TextMatcher(std::string_view needle) : needle_(needle) {}
  // Folds and scans text; true once the needle was seen.
  bool feed(std::string_view text) {
    if (found_ || text.empty()) return found_;
    if (scanned_ >= kMaxScanBytes) {
      exhausted_ = true;
      return false;
    }
    text = text.substr(0, static_cast<size_t>(std::min<uint64_t>(text.size(),
                                                                 kMaxScanBytes - scanned_)));
    scanned_ += text.size();
    // Only the last needle-1 bytes of earlier text can start a match.
    const size_t keep = needle_.size() > 0 ? needle_.size() - 1 : 0;
    if (carry_.size() > keep) carry_.erase(0, carry_.size() - keep);
    appendFolded(text, carry_);
    if (carry_.find(needle_) != std::string::npos) found_ = true;
    return found_;
  }
  void reset() { carry_.clear(); }
  bool found() const { return found_; }
  bool exhausted() const { return exhausted_; }

 private:
  std::string_view needle_;
  std::string carry_;
  uint64_t scanned_ = 0;
  bool found_ = false;
  bool exhausted_ = false;  // text was offered past the limit
};

bool containsFolded(std::string_view haystack, std::string_view foldedNeedle) {
  if (foldedNeedle.empty()) return true;
  // One buffer for the process's loop (a header search calls this for
  // every message): no allocation per call.
  static thread_local std::string h;
  h.clear();
  appendFolded(haystack, h);
  return h.find(foldedNeedle) != std::string::npos;
}

// ---- RFC 5322 Date: (the calendar day as written) ----

int monthFromName(std::string_view t) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  static constexpr std::array<std::string_view, 12> kLong = {
      "january", "february", "march", "april", "may", "june", "july", "august",
      "september", "october", "november", "december"};
  for (size_t i = 0; i < 12; ++i)
    if (iequals(t, kMonths[i]) || iequals(t, kLong[i])) return static_cast<int>(i) + 1;
  return 0;
}

bool allDigits(std::string_view t) {
  return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int daysInMonth(int year, int month) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[static_cast<size_t>(month - 1)];
}

// RFC 5322 §3.3 date-time, with the obsolete forms of §4.3 (two- and
// three-digit years, comments anywhere) and the asctime() order some old
// software writes ("Tue Jan  2 10:00:00 2024"). Only the date matters.
std::optional<yubin::imap::Date> parseSentDate(std::string_view v) {
  // Tokens: runs of letters, digits, ':', '+', '-', '.' separated by
  // blanks and commas; comments (nested) removed.
  std::vector<std::string_view> tokens;
  int depth = 0;
  size_t start = std::string_view::npos;
  auto flush = [&](size_t end) {
    if (start != std::string_view::npos) tokens.push_back(v.substr(start, end - start));
    start = std::string_view::npos;
  };
  for (size_t i = 0; i < v.size() && tokens.size() < 16; ++i) {
    const char c = v[i];
    if (depth > 0) {
      if (c == '\\') ++i;
      else if (c == '(') ++depth;
      else if (c == ')') --depth;
      continue;
    }
    if (c == '(') {
      flush(i);
      depth = 1;
    } else if (c == ' ' || c == '\t' || c == ',' || c == '\r' || c == '\n') {
      flush(i);
    } else if (start == std::string_view::npos) {
      start = i;
    }
  }
  flush(v.size());

  auto yearOf = [](std::string_view t) -> int {
    if (!allDigits(t) || t.size() < 2 || t.size() > 4) return -1;
    int y = 0;
    for (char c : t) y = y * 10 + (c - '0');
    if (t.size() == 2) return y < 50 ? 2000 + y : 1900 + y;
    if (t.size() == 3) return 1900 + y;
    return y;
  };
  auto dayOf = [](std::string_view t) -> int {
    if (!allDigits(t) || t.size() > 2) return -1;
    int d = 0;
    for (char c : t) d = d * 10 + (c - '0');
    return d;
  };

  for (size_t i = 0; i < tokens.size(); ++i) {
    const int month = monthFromName(tokens[i]);
    if (month == 0) continue;
    int day = -1, year = -1;
    if (i > 0 && i + 1 < tokens.size() && dayOf(tokens[i - 1]) > 0) {
      day = dayOf(tokens[i - 1]);  // "2 Jan 2024"
      year = yearOf(tokens[i + 1]);
    } else if (i + 1 < tokens.size() && dayOf(tokens[i + 1]) > 0) {
      day = dayOf(tokens[i + 1]);  // "Jan 2 10:00:00 2024"
      for (size_t k = i + 2; k < tokens.size() && year < 0; ++k)
        if (tokens[k].size() == 4) year = yearOf(tokens[k]);
    }
    if (day < 1 || year < 1 || day > daysInMonth(year, month)) return std::nullopt;
    return yubin::imap::Date{year, month, day};
  }
  return std::nullopt;
}

int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// ---- Evaluation ----

SearchNeeds needsOf(const SearchKey& key) {
  switch (key.kind) {
    case Kind::And:
    case Kind::Or:
    case Kind::Not: {
      SearchNeeds n = SearchNeeds::Info;
      for (const auto& c : key.children) n = std::max(n, needsOf(c));
      return n;
    }
    case Kind::Bcc: case Kind::Cc: case Kind::From: case Kind::Subject: case Kind::To:
    case Kind::Header: case Kind::SentBefore: case Kind::SentOn: case Kind::SentSince:
      return SearchNeeds::Header;
    case Kind::Body:
    case Kind::Text:
      return key.text.empty() ? SearchNeeds::Info : SearchNeeds::Whole;
    default:
      return SearchNeeds::Info;
  }
}

void collectFields(const SearchKey& key, FieldNames& out) {
  auto add = [&](std::string_view name) {
    std::string lower(name);
    for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    if (std::find(out.begin(), out.end(), lower) == out.end()) out.push_back(std::move(lower));
  };
  switch (key.kind) {
    case Kind::And: case Kind::Or: case Kind::Not:
      for (const auto& c : key.children) collectFields(c, out);
      break;
    case Kind::Bcc: add("bcc"); break;
    case Kind::Cc: add("cc"); break;
    case Kind::From: add("from"); break;
    case Kind::To: add("to"); break;
    case Kind::Subject: add("subject"); break;
    case Kind::Header: add(key.field); break;
    case Kind::SentBefore: case Kind::SentOn: case Kind::SentSince: add("date"); break;
    default: break;
  }
}

class Evaluator {
 public:
  Evaluator(SearchMessage& m, const SearchContext& ctx, const std::vector<uint32_t>* saved,
            const SearchKey& root, HeaderCache* cache)
      : m_(m), ctx_(ctx), saved_(saved), root_(root), cache_(cache) {}

  Result<bool> eval(const SearchKey& key);

 private:
  Result<bool> evalList(const SearchKey& key, bool any);
  bool inSaved(uint32_t uid) const {
    return saved_ && std::binary_search(saved_->begin(), saved_->end(), uid);
  }
  Result<const std::vector<mime::HeaderField>*> fields();
  Result<const mime::Structure*> structure();
  Result<bool> headerText(const SearchKey& key);
  Result<bool> sentDate(const SearchKey& key);
  Result<bool> bodyText(const SearchKey& key, bool withHeader);
  bool scanHeader(std::string_view raw, TextMatcher& tm);

  SearchMessage& m_;
  const SearchContext& ctx_;
  const std::vector<uint32_t>* saved_;
  const SearchKey& root_;
  HeaderCache* cache_;
  std::optional<std::vector<mime::HeaderField>> fields_;
  std::optional<std::string_view> whole_;
  std::optional<mime::Structure> structure_;
};

Result<const std::vector<mime::HeaderField>*> Evaluator::fields() {
  if (fields_) return &*fields_;
  FieldNames names;
  const uint32_t uid = m_.uid();
  if (cache_) {
    collectFields(root_, names);
    if (!cache_->cacheable(names)) {
      cache_ = nullptr;
    } else {
      std::vector<mime::HeaderField> cached;
      if (cache_->lookup(uid, names, cached)) {
        fields_ = std::move(cached);
        return &*fields_;
      }
    }
  }
  auto h = m_.header();
  if (!h) return h.error();
  fields_ = mime::parseHeader(*h).fields;
  if (cache_) cache_->fill(uid, *fields_, names);
  return &*fields_;
}

Result<const mime::Structure*> Evaluator::structure() {
  if (!structure_) {
    if (!whole_) {
      auto w = m_.whole();
      if (!w) return w.error();
      whole_ = *w;
    }
    mime::StructureLimits limits;
    limits.envelopeFields = false;  // bodyText() needs only which parts are messages
    structure_ = mime::parseStructure(*whole_, limits);
  }
  return &*structure_;
}

Result<bool> Evaluator::eval(const SearchKey& key) {
  // Lists and keys on the content need no MessageInfo (whose making costs
  // a flags and metadata lookup): a header search of a folder skips it.
  switch (key.kind) {
    case Kind::And: return evalList(key, false);
    case Kind::Or: return evalList(key, true);
    case Kind::Not: {
      if (key.children.empty()) return true;
      auto r = eval(key.children.front());
      if (!r) return r;
      return !*r;
    }
    case Kind::All: return true;
    case Kind::Bcc: case Kind::Cc: case Kind::From: case Kind::Subject: case Kind::To:
    case Kind::Header:
      return headerText(key);
    case Kind::SentBefore: case Kind::SentOn: case Kind::SentSince:
      return sentDate(key);
    case Kind::Body: return bodyText(key, false);
    case Kind::Text: return bodyText(key, true);
    default: break;
  }
  const store::MessageInfo& info = m_.info();
  const uint8_t sys = info.flags.system;
  switch (key.kind) {
    case Kind::Answered: return (sys & store::kFlagAnswered) != 0;
    case Kind::Deleted: return (sys & store::kFlagDeleted) != 0;
    case Kind::Draft: return (sys & store::kFlagDraft) != 0;
    case Kind::Flagged: return (sys & store::kFlagFlagged) != 0;
    case Kind::Seen: return (sys & store::kFlagSeen) != 0;
    case Kind::Unanswered: return (sys & store::kFlagAnswered) == 0;
    case Kind::Undeleted: return (sys & store::kFlagDeleted) == 0;
    case Kind::Undraft: return (sys & store::kFlagDraft) == 0;
    case Kind::Unflagged: return (sys & store::kFlagFlagged) == 0;
    case Kind::Unseen: return (sys & store::kFlagSeen) == 0;
    case Kind::Recent: return info.recent;
    case Kind::New: return info.recent && (sys & store::kFlagSeen) == 0;
    case Kind::Old: return !info.recent;
    case Kind::Keyword:
    case Kind::Unkeyword: {
      const auto& kw = info.flags.keywords;
      const bool has = std::any_of(kw.begin(), kw.end(),
                                   [&](const std::string& k) { return iequals(k, key.text); });
      return key.kind == Kind::Keyword ? has : !has;
    }
    case Kind::Larger: return info.size > key.number;
    case Kind::Smaller: return info.size < key.number;
    case Kind::Before:
    case Kind::On:
    case Kind::Since: {
      const int64_t day = floorDiv(info.internalDate, 86400);
      const int64_t want = yubin::imap::daysFromCivil(key.date);
      if (key.kind == Kind::Before) return day < want;
      if (key.kind == Kind::On) return day == want;
      return day >= want;
    }
    case Kind::Older:
    case Kind::Younger: {
      // As Dovecot: an age of exactly the interval matches both.
      int64_t age = 0;
      if (__builtin_sub_overflow(ctx_.now, info.internalDate, &age))
        age = info.internalDate < 0 ? INT64_MAX : INT64_MIN;
      const auto n = static_cast<int64_t>(std::min<uint64_t>(key.number, INT64_MAX));
      return key.kind == Kind::Older ? age >= n : age <= n;
    }
    case Kind::Uid:
      if (key.set.isSaved()) return inSaved(info.uid);
      return key.set.contains(info.uid, ctx_.maxUid);
    case Kind::SequenceSet:
      if (key.set.isSaved()) return inSaved(info.uid);
      return key.set.contains(m_.seq(), ctx_.maxSeq);
    case Kind::ModSeq: return info.modSeq >= key.number;
    default: break;  // the lists and the content keys, above
  }
  return false;
}

// And (any = false) or Or (any = true): cheap children first, stopping as
// soon as the answer is known.
Result<bool> Evaluator::evalList(const SearchKey& key, bool any) {
  const size_t n = key.children.size();
  if (n == 1) return eval(key.children.front());
  std::vector<SearchNeeds> needs(n);
  for (size_t i = 0; i < n; ++i) needs[i] = needsOf(key.children[i]);
  for (auto level : {SearchNeeds::Info, SearchNeeds::Header, SearchNeeds::Whole}) {
    for (size_t i = 0; i < n; ++i) {
      if (needs[i] != level) continue;
      auto r = eval(key.children[i]);
      if (!r) return r;
      if (*r == any) return any;
    }
  }
  return !any;
}

Result<bool> Evaluator::headerText(const SearchKey& key) {
  auto f = fields();
  if (!f) return f.error();
  std::string_view name;
  bool address = false;
  switch (key.kind) {
    case Kind::Bcc: name = "Bcc"; address = true; break;
    case Kind::Cc: name = "Cc"; address = true; break;
    case Kind::From: name = "From"; address = true; break;
    case Kind::To: name = "To"; address = true; break;
    case Kind::Subject: name = "Subject"; break;
    default: name = key.field; break;
  }
  const std::string needle = foldCase(key.text);
  for (const auto& field : **f) {
    if (!iequals(field.name, name)) continue;
    if (needle.empty()) return true;
    // Most values are one line without encoded words: searched as they are.
    const std::string_view raw = field.value;
    if (raw.find_first_of("\r\n") == std::string_view::npos &&
        raw.find("=?") == std::string_view::npos) {
      if (containsFolded(trim(raw), needle)) return true;  // = unfold, no words to decode
    } else if (containsFolded(mime::decodeEncodedWords(mime::unfold(raw)), needle)) {
      return true;
    }
    if (!address) continue;
    for (const auto& a : mime::parseAddressList(field.value)) {
      const std::string display = a.name ? mime::decodeEncodedWords(*a.name) : std::string();
      if (!display.empty() && containsFolded(display, needle)) return true;
      if (!a.mailbox) continue;
      std::string addr = *a.mailbox;
      if (a.host) addr += "@" + *a.host;
      if (containsFolded(addr, needle)) return true;
      if (!display.empty() && containsFolded(display + " <" + addr + ">", needle)) return true;
    }
  }
  return false;
}

Result<bool> Evaluator::sentDate(const SearchKey& key) {
  auto f = fields();
  if (!f) return f.error();
  for (const auto& field : **f) {
    if (!iequals(field.name, "Date")) continue;
    auto d = parseSentDate(mime::unfold(field.value));
    if (!d) return false;  // the first Date: decides, as in the ENVELOPE
    const int64_t day = yubin::imap::daysFromCivil(*d);
    const int64_t want = yubin::imap::daysFromCivil(key.date);
    if (key.kind == Kind::SentBefore) return day < want;
    if (key.kind == Kind::SentOn) return day == want;
    return day >= want;
  }
  return false;
}

// A header section as searchable text: each field "Name: value" unfolded,
// encoded words decoded, one per line.
bool Evaluator::scanHeader(std::string_view raw, TextMatcher& tm) {
  tm.reset();
  const mime::ParsedHeader h = mime::parseHeader(raw);
  std::string line;
  for (const auto& field : h.fields) {
    line.clear();
    line += field.name;
    line += ": ";
    line += mime::decodeEncodedWords(mime::unfold(field.value));
    line += '\n';
    if (tm.feed(line) || tm.exhausted()) break;
  }
  tm.reset();
  return tm.found();
}

Result<bool> Evaluator::bodyText(const SearchKey& key, bool withHeader) {
  if (key.text.empty()) return true;
  auto s = structure();
  if (!s) return s.error();
  const mime::Structure& st = **s;
  const std::string_view msg = *whole_;
  const std::string needle = foldCase(key.text);
  TextMatcher tm(needle);
  auto slice = [&](uint64_t off, uint64_t size) -> std::string_view {
    if (off >= msg.size()) return {};
    return msg.substr(static_cast<size_t>(off),
                      static_cast<size_t>(std::min<uint64_t>(size, msg.size() - off)));
  };
  std::string out;
  for (size_t i = 0; i < st.parts.size(); ++i) {
    const mime::Part& p = st.parts[i];
    if (p.envelope && (i > 0 || withHeader)) {
      if (scanHeader(slice(p.headerOffset, p.headerSize), tm)) return true;
    }
    if (!p.isText() || !p.children.empty()) continue;
    mime::PartTextDecoder dec(p);
    std::string_view body = slice(p.bodyOffset, p.bodySize);
    tm.reset();
    while (!body.empty()) {
      const size_t take = std::min(body.size(), kDecodeChunk);
      out.clear();
      dec.decode(body.substr(0, take), out);
      body.remove_prefix(take);
      if (tm.feed(out)) return true;
      if (tm.exhausted()) return false;
    }
    out.clear();
    dec.finish(out);
    if (tm.feed(out)) return true;
    if (tm.exhausted()) return false;
  }
  return false;
}

}  // namespace

Status checkCharset(const std::optional<std::string>& charset) {
  if (!charset || iequals(*charset, "UTF-8") || iequals(*charset, "US-ASCII")) return {};
  std::string shown;
  for (char c : charset->substr(0, 64))
    shown.push_back(c > 0x20 && c < 0x7F ? c : '?');
  return Error{"unsupported charset " + shown};
}

Result<bool> matches(const yubin::imap::SearchKey& key, SearchMessage& m,
                     const SearchContext& ctx, const std::vector<uint32_t>* saved) {
  HeaderCache* cache = m.headerCache();
  if (cache) {
    // Consecutive sequence numbers: no live message between their UIDs.
    const uint32_t seq = m.seq();
    const uint32_t uid = m.uid();
    if (seq == 1)
      cache->dropBetween(0, uid);
    else if (ctx.cursor.seq != 0 && ctx.cursor.seq + 1 == seq)
      cache->dropBetween(ctx.cursor.uid, uid);
    ctx.cursor = {seq, uid};
  }
  Evaluator e(m, ctx, saved, key, cache);
  return e.eval(key);
}

SearchNeeds searchNeeds(const yubin::imap::SearchKey& key) { return needsOf(key); }

FieldNames searchFields(const yubin::imap::SearchKey& key) {
  FieldNames out;
  collectFields(key, out);
  return out;
}

std::string foldCase(std::string_view text) {
  std::string out;
  appendFolded(text, out);
  return out;
}

}  // namespace yubin::mrad::imap
