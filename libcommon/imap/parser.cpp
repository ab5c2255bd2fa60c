// The incremental IMAP command parser (see parser.hpp): the line / literal
// state machine, then a recursive-descent parser over one buffered command.
// Trust: parses untrusted network input; runs inside mrad.
// Standards: RFC 3501 §9, RFC 9051 §9, RFC 7888, RFC 3516 and the
// extensions listed in command.hpp.
#include "imap/parser.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "base/strings.hpp"
#include "imap/response.hpp"
#include "mail/address.hpp"

namespace yubin::imap {

namespace {

constexpr uint64_t kLiteralMinusMax = 4096;
constexpr uint64_t kMaxModSeq = 0x7fffffffffffffffULL;

bool isDigit(char c) { return c >= '0' && c <= '9'; }

bool isTagChar(unsigned char c) { return c != '+' && isAstringChar(c); }

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

// The tag at the start of a command, when it is followed by SP within the
// first `limit` octets.
std::string extractTag(std::string_view text, size_t limit = 256) {
  text = text.substr(0, limit);
  size_t i = 0;
  while (i < text.size() && isTagChar(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i >= text.size() || text[i] != ' ') return {};
  return std::string(text.substr(0, i));
}

// Recursive descent over one buffered command. Every method returns false
// on a syntax error after recording the first reason.
class Cursor {
 public:
  Cursor(std::string_view s, const std::vector<size_t>& streamed, const ParserSettings& st)
      : s_(s), streamed_(streamed), st_(st) {}

  const std::string& error() const { return err_; }
  bool fail(const char* why) {
    if (err_.empty()) err_ = why;
    return false;
  }
  bool atEnd() const { return pos_ >= s_.size(); }
  char peek() const { return atEnd() ? '\0' : s_[pos_]; }
  size_t pos() const { return pos_; }
  void setPos(size_t p) { pos_ = p; }
  // The next octet of lookahead without consuming.
  bool lookingAt(char c) const { return !atEnd() && s_[pos_] == c; }

  bool item() {
    if (++items_ > st_.maxItems) return fail("too many arguments");
    return true;
  }
  bool enter() {
    if (++depth_ > st_.maxDepth) return fail("nesting too deep");
    return true;
  }
  void leave() { --depth_; }

  bool sp() {
    if (lookingAt(' ')) {
      ++pos_;
      return true;
    }
    return fail(atEnd() ? "missing argument" : "expected a space");
  }
  bool ch(char c, const char* why) {
    if (lookingAt(c)) {
      ++pos_;
      return true;
    }
    return fail(why);
  }
  bool end() {
    if (atEnd()) return true;
    return fail("unexpected characters after the command");
  }

  // 1*ATOM-CHAR (or with `astring`, ASTRING-CHAR).
  bool atom(std::string& out, bool astring = false) {
    const size_t start = pos_;
    while (!atEnd()) {
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (!(astring ? isAstringChar(c) : isAtomChar(c))) break;
      ++pos_;
    }
    if (pos_ == start) {
      if (!atEnd() && s_[pos_] == '\0') return fail("NUL character");
      return fail("expected an atom");
    }
    out.assign(s_.substr(start, pos_ - start));
    return true;
  }
  // A keyword made of letters, digits, '.', '-' (command names, search
  // keys, options, section texts), uppercased. Stops before '[', '<', SP, ')'.
  bool keyword(std::string& out) {
    const size_t start = pos_;
    while (!atEnd()) {
      const char c = s_[pos_];
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) break;
      ++pos_;
    }
    if (pos_ == start) return fail("expected a keyword");
    out = upper(s_.substr(start, pos_ - start));
    return true;
  }
  // keyword() that records no error when there is none (for lookahead).
  bool tryKeyword(std::string& out) {
    const size_t start = pos_;
    while (!atEnd() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
                        s_[pos_] == '-'))
      ++pos_;
    out = upper(s_.substr(start, pos_ - start));
    return pos_ > start;
  }

  bool quoted(std::string& out) {
    if (!ch('"', "expected a quoted string")) return false;
    out.clear();
    bool eight = false;
    while (true) {
      if (atEnd()) return fail("unterminated quoted string");
      const auto c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') break;
      if (c == '\\') {
        if (atEnd()) return fail("unterminated quoted string");
        const char e = s_[pos_++];
        if (e != '"' && e != '\\') return fail("bad escape in quoted string");
        out += e;
        continue;
      }
      if (c == 0) return fail("NUL character");
      if (c == '\r' || c == '\n') return fail("line break in quoted string");
      if (c >= 0x80) {
        if (!st_.utf8) return fail("8-bit character in quoted string");
        eight = true;
      }
      out += static_cast<char>(c);
    }
    if (eight && !mail::isValidUtf8(out)) return fail("invalid UTF-8 in quoted string");
    return true;
  }

  // literal / literal8 header and content. `streamed` reports a literal
  // whose content went to the sink (out stays empty).
  bool literal(std::string& out, bool allowBinary, bool* binary = nullptr,
               uint64_t* size = nullptr, bool* streamed = nullptr) {
    bool bin = false;
    if (lookingAt('~')) {
      if (!allowBinary) return fail("literal8 not allowed here");
      bin = true;
      ++pos_;
    }
    if (!ch('{', "expected a literal")) return false;
    uint64_t n = 0;
    size_t digits = 0;
    while (!atEnd() && isDigit(s_[pos_])) {
      if (++digits > 19) return fail("literal too large");
      n = n * 10 + static_cast<uint64_t>(s_[pos_++] - '0');
    }
    if (digits == 0) return fail("bad literal");
    if (lookingAt('+')) ++pos_;
    if (!ch('}', "bad literal")) return false;
    if (s_.substr(pos_, 2) != "\r\n") return fail("a literal must end the line");
    pos_ += 2;
    if (binary) *binary = bin;
    if (size) *size = n;
    const bool isStreamed = std::binary_search(streamed_.begin(), streamed_.end(), pos_);
    if (streamed) *streamed = isStreamed;
    if (isStreamed) {
      out.clear();
      return true;
    }
    if (n > s_.size() - pos_) return fail("truncated literal");
    std::string_view content = s_.substr(pos_, n);
    if (!bin && content.find('\0') != std::string_view::npos) return fail("NUL in literal");
    out.assign(content);
    pos_ += n;
    return true;
  }

  bool string(std::string& out) {
    if (lookingAt('"')) return quoted(out);
    if (lookingAt('{')) return literal(out, false);
    return fail("expected a string");
  }
  bool astring(std::string& out) {
    if (lookingAt('"') || lookingAt('{')) return string(out);
    return atom(out, true);
  }
  // nstring: NIL -> nullopt
  bool nstring(std::optional<std::string>& out) {
    if (lookingAt('"') || lookingAt('{')) {
      std::string s;
      if (!string(s)) return false;
      out = std::move(s);
      return true;
    }
    std::string a;
    if (!atom(a) || !iequals(a, "NIL")) return fail("expected a string or NIL");
    out.reset();
    return true;
  }
  bool mailbox(std::string& out) { return astring(out); }

  // list-mailbox = 1*list-char / string; list-char = ATOM-CHAR / "%" / "*" / "]"
  bool listMailbox(std::string& out) {
    if (lookingAt('"') || lookingAt('{')) return string(out);
    const size_t start = pos_;
    while (!atEnd()) {
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (!(isAstringChar(c) || c == '%' || c == '*')) break;
      ++pos_;
    }
    if (pos_ == start) return fail("expected a mailbox pattern");
    out.assign(s_.substr(start, pos_ - start));
    return true;
  }

  bool number64(uint64_t& out, bool nonZero = false) {
    const size_t start = pos_;
    uint64_t v = 0;
    while (!atEnd() && isDigit(s_[pos_])) {
      const auto d = static_cast<uint64_t>(s_[pos_] - '0');
      if (v > (kMaxModSeq - d) / 10) return fail("number too large");
      v = v * 10 + d;
      ++pos_;
    }
    if (pos_ == start) return fail("expected a number");
    if (nonZero && v == 0) return fail("number must not be zero");
    out = v;
    return true;
  }
  bool number32(uint32_t& out, bool nonZero = false) {
    uint64_t v = 0;
    if (!number64(v, nonZero)) return false;
    if (v > 0xffffffffULL) return fail("number too large");
    out = static_cast<uint32_t>(v);
    return true;
  }

  bool sequenceSet(SequenceSet& out, bool allowSaved = true) {
    const size_t start = pos_;
    while (!atEnd()) {
      const char c = s_[pos_];
      if (!(isDigit(c) || c == '*' || c == ':' || c == ',' || c == '$')) break;
      ++pos_;
    }
    auto set = SequenceSet::parse(s_.substr(start, pos_ - start), allowSaved);
    if (!set) return fail("bad sequence set");
    if (set->ranges().size() > st_.maxItems) return fail("too many arguments");
    out = std::move(set.value());
    return true;
  }

  // flag = "\" atom / atom (keywords); "\*" is not a flag in commands.
  bool flag(std::string& out) {
    if (lookingAt('\\')) {
      ++pos_;
      std::string a;
      if (!atom(a)) return fail("bad flag");
      out = "\\" + a;
      return true;
    }
    return atom(out) || fail("bad flag");
  }
  bool flagList(std::vector<std::string>& out) {
    if (!ch('(', "expected a flag list")) return false;
    if (lookingAt(')')) {
      ++pos_;
      return true;
    }
    while (true) {
      std::string f;
      if (!item() || !flag(f)) return false;
      out.push_back(std::move(f));
      if (lookingAt(')')) {
        ++pos_;
        return true;
      }
      if (!sp()) return false;
    }
  }

  // date = date-text / DQUOTE date-text DQUOTE
  bool date(Date& out) {
    const bool q = lookingAt('"');
    if (q) ++pos_;
    const size_t start = pos_;
    while (!atEnd() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '-'))
      ++pos_;
    auto d = parseDate(s_.substr(start, pos_ - start));
    if (!d) return fail("bad date");
    if (q && !ch('"', "bad date")) return false;
    out = *d;
    return true;
  }
  bool dateTime(DateTime& out) {
    if (!ch('"', "expected a date-time")) return false;
    const size_t close = s_.find('"', pos_);
    if (close == std::string_view::npos) return fail("bad date-time");
    auto dt = parseDateTime(s_.substr(pos_, close - pos_));
    if (!dt) return fail("bad date-time");
    pos_ = close + 1;
    out = *dt;
    return true;
  }

  // A parenthesised, space-separated list; `one` parses an element.
  template <class F>
  bool list(F one, bool allowEmpty) {
    if (!ch('(', "expected '('")) return false;
    if (lookingAt(')')) {
      ++pos_;
      return allowEmpty || fail("empty list");
    }
    while (true) {
      if (!item() || !one()) return false;
      if (lookingAt(')')) {
        ++pos_;
        return true;
      }
      if (!sp()) return false;
    }
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  const std::vector<size_t>& streamed_;
  const ParserSettings& st_;
  std::string err_;
  size_t items_ = 0;
  unsigned depth_ = 0;
};

// ---- Per-command grammar. ----

bool statusItem(Cursor& c, StatusItem& out) {
  std::string k;
  if (!c.keyword(k)) return false;
  static const std::pair<std::string_view, StatusItem> kItems[] = {
      {"MESSAGES", StatusItem::Messages},   {"RECENT", StatusItem::Recent},
      {"UIDNEXT", StatusItem::UidNext},     {"UIDVALIDITY", StatusItem::UidValidity},
      {"UNSEEN", StatusItem::Unseen},       {"DELETED", StatusItem::Deleted},
      {"SIZE", StatusItem::Size},           {"HIGHESTMODSEQ", StatusItem::HighestModSeq},
  };
  for (const auto& [name, v] : kItems)
    if (k == name) {
      out = v;
      return true;
    }
  return c.fail("unknown status item");
}

bool statusItems(Cursor& c, std::vector<StatusItem>& out) {
  return c.list(
      [&] {
        StatusItem i{};
        if (!statusItem(c, i)) return false;
        out.push_back(i);
        return true;
      },
      false);
}

bool searchKey(Cursor& c, SearchKey& out);

// search-key *(SP search-key) until ')' or the end.
bool searchKeyList(Cursor& c, SearchKey& out, bool parenthesised) {
  out.kind = SearchKey::Kind::And;
  while (true) {
    SearchKey k;
    if (!c.item() || !searchKey(c, k)) return false;
    out.children.push_back(std::move(k));
    if (parenthesised ? c.lookingAt(')') : c.atEnd()) return true;
    if (!c.sp()) return false;
  }
}

bool searchKey(Cursor& c, SearchKey& out) {
  using K = SearchKey::Kind;
  if (!c.enter()) return false;
  struct Leave {
    Cursor& c;
    ~Leave() { c.leave(); }
  } leave{c};
  const char first = c.peek();
  if (first == '(') {
    c.setPos(c.pos() + 1);
    if (!searchKeyList(c, out, true)) return false;
    return c.ch(')', "expected ')'");
  }
  if (isDigit(first) || first == '*' || first == '$') {
    out.kind = K::SequenceSet;
    return c.sequenceSet(out.set);
  }
  std::string k;
  if (!c.keyword(k)) return false;
  static const std::pair<std::string_view, K> kSimple[] = {
      {"ALL", K::All},          {"ANSWERED", K::Answered},   {"DELETED", K::Deleted},
      {"DRAFT", K::Draft},      {"FLAGGED", K::Flagged},     {"NEW", K::New},
      {"OLD", K::Old},          {"RECENT", K::Recent},       {"SEEN", K::Seen},
      {"UNANSWERED", K::Unanswered}, {"UNDELETED", K::Undeleted}, {"UNDRAFT", K::Undraft},
      {"UNFLAGGED", K::Unflagged}, {"UNSEEN", K::Unseen},
  };
  for (const auto& [name, v] : kSimple)
    if (k == name) {
      out.kind = v;
      return true;
    }
  static const std::pair<std::string_view, K> kString[] = {
      {"BCC", K::Bcc},         {"BODY", K::Body}, {"CC", K::Cc}, {"FROM", K::From},
      {"SUBJECT", K::Subject}, {"TEXT", K::Text}, {"TO", K::To},
  };
  for (const auto& [name, v] : kString)
    if (k == name) {
      out.kind = v;
      return c.sp() && c.astring(out.text);
    }
  static const std::pair<std::string_view, K> kDate[] = {
      {"BEFORE", K::Before},         {"ON", K::On},          {"SINCE", K::Since},
      {"SENTBEFORE", K::SentBefore}, {"SENTON", K::SentOn}, {"SENTSINCE", K::SentSince},
  };
  for (const auto& [name, v] : kDate)
    if (k == name) {
      out.kind = v;
      return c.sp() && c.date(out.date);
    }
  if (k == "KEYWORD" || k == "UNKEYWORD") {
    out.kind = k == "KEYWORD" ? K::Keyword : K::Unkeyword;
    return c.sp() && c.atom(out.text);
  }
  if (k == "HEADER") {
    out.kind = K::Header;
    return c.sp() && c.astring(out.field) && c.sp() && c.astring(out.text);
  }
  if (k == "LARGER" || k == "SMALLER") {
    out.kind = k == "LARGER" ? K::Larger : K::Smaller;
    return c.sp() && c.number64(out.number);
  }
  if (k == "OLDER" || k == "YOUNGER") {
    out.kind = k == "OLDER" ? K::Older : K::Younger;
    return c.sp() && c.number64(out.number, true);
  }
  if (k == "UID") {
    out.kind = K::Uid;
    return c.sp() && c.sequenceSet(out.set);
  }
  if (k == "NOT") {
    out.kind = K::Not;
    out.children.resize(1);
    return c.sp() && searchKey(c, out.children[0]);
  }
  if (k == "OR") {
    out.kind = K::Or;
    out.children.resize(2);
    return c.sp() && searchKey(c, out.children[0]) && c.sp() && searchKey(c, out.children[1]);
  }
  if (k == "MODSEQ") {
    out.kind = K::ModSeq;
    if (!c.sp()) return false;
    if (c.lookingAt('"')) {
      // entry-name SP entry-type-req: "/flags/<flag>" priv / shared / all
      if (!c.quoted(out.field)) return false;
      if (!istartsWith(out.field, "/flags/") || !isValidFlag(out.field.substr(7)))
        return c.fail("bad MODSEQ entry name");
      std::string type;
      if (!c.sp() || !c.keyword(type)) return false;
      if (type != "PRIV" && type != "SHARED" && type != "ALL")
        return c.fail("bad MODSEQ entry type");
      out.text = toLower(type);
      if (!c.sp()) return false;
    }
    return c.number64(out.number);
  }
  return c.fail("unknown search key");
}

// section-part *("." nz-number), then optional "." section-text.
bool section(Cursor& c, Section& out, bool binary) {
  if (!c.ch('[', "expected '['")) return false;
  if (c.lookingAt(']')) {
    c.setPos(c.pos() + 1);
    return true;
  }
  if (isDigit(c.peek())) {
    bool dot = false;  // the part ended with '.': a section-text follows
    while (true) {
      uint32_t n = 0;
      if (!c.item() || !c.number32(n, true)) return false;
      out.part.push_back(n);
      if (!c.lookingAt('.')) break;
      c.setPos(c.pos() + 1);
      if (!isDigit(c.peek())) {
        dot = true;
        break;
      }
    }
    if (!dot) {
      if (c.lookingAt(']')) {
        c.setPos(c.pos() + 1);
        return true;
      }
      return c.fail("bad section");
    }
    if (binary) return c.fail("bad BINARY section");
  } else if (binary) {
    return c.fail("bad BINARY section");
  }
  std::string t;
  if (!c.keyword(t)) return false;
  if (t == "HEADER") {
    out.text = Section::Text::Header;
  } else if (t == "TEXT") {
    out.text = Section::Text::Text;
  } else if (t == "MIME" && !out.part.empty()) {
    out.text = Section::Text::Mime;
  } else if (t == "HEADER.FIELDS" || t == "HEADER.FIELDS.NOT") {
    out.text = t == "HEADER.FIELDS" ? Section::Text::HeaderFields : Section::Text::HeaderFieldsNot;
    if (!c.sp()) return false;
    if (!c.list(
            [&] {
              std::string f;
              if (!c.astring(f)) return false;
              out.fields.push_back(std::move(f));
              return true;
            },
            false))
      return false;
  } else {
    return c.fail("bad section");
  }
  return c.ch(']', "expected ']'");
}

bool partial(Cursor& c, FetchAtt& att) {
  if (!c.lookingAt('<')) return true;
  c.setPos(c.pos() + 1);
  uint64_t offset = 0, count = 0;
  if (!c.number64(offset) || !c.ch('.', "bad partial") || !c.number64(count, true) ||
      !c.ch('>', "bad partial"))
    return false;
  att.partial = std::make_pair(offset, count);
  return true;
}

bool fetchAtt(Cursor& c, FetchAtt& out) {
  using K = FetchAtt::Kind;
  std::string k;
  if (!c.keyword(k)) return false;
  static const std::pair<std::string_view, K> kSimple[] = {
      {"ENVELOPE", K::Envelope},         {"FLAGS", K::Flags},
      {"INTERNALDATE", K::InternalDate}, {"RFC822", K::Rfc822},
      {"RFC822.HEADER", K::Rfc822Header}, {"RFC822.SIZE", K::Rfc822Size},
      {"RFC822.TEXT", K::Rfc822Text},    {"BODYSTRUCTURE", K::BodyStructure},
      {"UID", K::Uid},                   {"MODSEQ", K::ModSeq},
  };
  for (const auto& [name, v] : kSimple)
    if (k == name) {
      out.kind = v;
      return true;
    }
  if (k == "BODY" && !c.lookingAt('[')) {
    out.kind = K::Body;
    return true;
  }
  if (k == "BODY" || k == "BODY.PEEK") {
    out.kind = K::BodySection;
    out.peek = k == "BODY.PEEK";
    return section(c, out.section, false) && partial(c, out);
  }
  if (k == "BINARY" || k == "BINARY.PEEK") {
    out.kind = K::Binary;
    out.peek = k == "BINARY.PEEK";
    return section(c, out.section, true) && partial(c, out);
  }
  if (k == "BINARY.SIZE") {
    out.kind = K::BinarySize;
    return section(c, out.section, true);
  }
  return c.fail("unknown fetch attribute");
}

void expandMacro(std::string_view m, std::vector<FetchAtt>& out) {
  using K = FetchAtt::Kind;
  auto add = [&](K k) {
    FetchAtt a;
    a.kind = k;
    out.push_back(a);
  };
  add(K::Flags);
  add(K::InternalDate);
  add(K::Rfc822Size);
  if (m == "FAST") return;
  add(K::Envelope);
  if (m == "FULL") add(K::Body);
}

bool parseFetch(Cursor& c, FetchArgs& a) {
  if (!c.sp() || !c.sequenceSet(a.set) || !c.sp()) return false;
  if (c.lookingAt('(')) {
    if (!c.list(
            [&] {
              FetchAtt att;
              if (!fetchAtt(c, att)) return false;
              a.atts.push_back(std::move(att));
              return true;
            },
            false))
      return false;
  } else {
    const size_t save = c.pos();
    std::string k;
    if (!c.keyword(k)) return false;
    if (k == "ALL" || k == "FAST" || k == "FULL") {
      expandMacro(k, a.atts);
    } else {
      c.setPos(save);
      FetchAtt att;
      if (!fetchAtt(c, att)) return false;
      a.atts.push_back(std::move(att));
    }
  }
  if (c.lookingAt(' ')) {
    if (!c.sp()) return false;
    bool seenChanged = false;
    if (!c.list(
            [&] {
              std::string m;
              if (!c.keyword(m)) return false;
              if (m == "CHANGEDSINCE" && !seenChanged) {
                seenChanged = true;
                uint64_t v = 0;
                if (!c.sp() || !c.number64(v, true)) return false;
                a.changedSince = v;
                return true;
              }
              if (m == "VANISHED" && !a.vanished) {
                a.vanished = true;
                return true;
              }
              return c.fail("unknown fetch modifier");
            },
            false))
      return false;
  }
  return true;
}

bool parseStore(Cursor& c, StoreArgs& a) {
  if (!c.sp() || !c.sequenceSet(a.set) || !c.sp()) return false;
  if (c.lookingAt('(')) {
    if (!c.list(
            [&] {
              std::string m;
              if (!c.keyword(m)) return false;
              if (m != "UNCHANGEDSINCE" || a.unchangedSince) return c.fail("unknown store modifier");
              uint64_t v = 0;
              if (!c.sp() || !c.number64(v)) return false;
              a.unchangedSince = v;
              return true;
            },
            false))
      return false;
    if (!c.sp()) return false;
  }
  if (c.lookingAt('+')) {
    a.op = StoreArgs::Op::Add;
    c.setPos(c.pos() + 1);
  } else if (c.lookingAt('-')) {
    a.op = StoreArgs::Op::Remove;
    c.setPos(c.pos() + 1);
  }
  std::string k;
  if (!c.keyword(k)) return false;
  if (k == "FLAGS.SILENT")
    a.silent = true;
  else if (k != "FLAGS")
    return c.fail("expected FLAGS");
  if (!c.sp()) return false;
  if (c.lookingAt('(')) return c.flagList(a.flags);
  while (true) {
    std::string f;
    if (!c.item() || !c.flag(f)) return false;
    a.flags.push_back(std::move(f));
    if (c.atEnd()) return true;
    if (!c.sp()) return false;
  }
}

bool parseSearch(Cursor& c, SearchArgs& a) {
  if (!c.sp()) return false;
  size_t save = c.pos();
  std::string k;
  if (c.tryKeyword(k) && k == "RETURN") {
    a.esearch = true;
    if (!c.sp()) return false;
    if (!c.list(
            [&] {
              std::string o;
              if (!c.keyword(o)) return false;
              uint8_t bit = o == "MIN"     ? kReturnMin
                            : o == "MAX"   ? kReturnMax
                            : o == "ALL"   ? kReturnAll
                            : o == "COUNT" ? kReturnCount
                            : o == "SAVE"  ? kReturnSave
                                           : 0;
              if (bit == 0) return c.fail("unknown search return option");
              a.returnOptions |= bit;
              return true;
            },
            true))
      return false;
    if (a.returnOptions == 0) a.returnOptions = kReturnAll;
    if (!c.sp()) return false;
    save = c.pos();
    k.clear();
    (void)c.tryKeyword(k);
  }
  if (k == "CHARSET") {
    std::string cs;
    if (!c.sp() || !c.astring(cs) || !c.sp()) return false;
    a.charset = std::move(cs);
  } else {
    c.setPos(save);
  }
  return searchKeyList(c, a.key, false);
}

bool parseList(Cursor& c, ListArgs& a, bool lsub) {
  if (!c.sp()) return false;
  if (!lsub && c.lookingAt('(')) {
    a.hasSelectOptions = true;
    if (!c.list(
            [&] {
              std::string o;
              if (!c.keyword(o)) return false;
              if (o == "SUBSCRIBED")
                a.selSubscribed = true;
              else if (o == "REMOTE")
                a.selRemote = true;
              else if (o == "RECURSIVEMATCH")
                a.selRecursiveMatch = true;
              else if (o == "SPECIAL-USE")
                a.selSpecialUse = true;
              else
                return c.fail("unknown list selection option");
              return true;
            },
            true))
      return false;
    if (a.selRecursiveMatch && !a.selSubscribed && !a.selSpecialUse)
      return c.fail("RECURSIVEMATCH needs another selection option");
    if (!c.sp()) return false;
  }
  if (!c.mailbox(a.reference) || !c.sp()) return false;
  if (!lsub && c.lookingAt('(')) {
    a.patternList = true;
    if (!c.list(
            [&] {
              std::string p;
              if (!c.listMailbox(p)) return false;
              a.patterns.push_back(std::move(p));
              return true;
            },
            false))
      return false;
  } else {
    std::string p;
    if (!c.listMailbox(p)) return false;
    a.patterns.push_back(std::move(p));
  }
  if (!lsub && c.lookingAt(' ')) {
    if (!c.sp()) return false;
    std::string r;
    if (!c.keyword(r) || r != "RETURN") return c.fail("expected RETURN");
    a.hasReturnOptions = true;
    if (!c.sp()) return false;
    if (!c.list(
            [&] {
              std::string o;
              if (!c.keyword(o)) return false;
              if (o == "SUBSCRIBED") {
                a.retSubscribed = true;
              } else if (o == "CHILDREN") {
                a.retChildren = true;
              } else if (o == "SPECIAL-USE") {
                a.retSpecialUse = true;
              } else if (o == "STATUS" && !a.retStatus) {
                a.retStatus = true;
                return c.sp() && statusItems(c, a.statusItems);
              } else {
                return c.fail("unknown list return option");
              }
              return true;
            },
            true))
      return false;
  }
  return true;
}

bool parseSelect(Cursor& c, SelectArgs& a) {
  if (!c.sp() || !c.mailbox(a.mailbox)) return false;
  if (!c.lookingAt(' ')) return true;
  if (!c.sp()) return false;
  return c.list(
      [&] {
        std::string p;
        if (!c.keyword(p)) return false;
        if (p == "CONDSTORE" && !a.condstore) {
          a.condstore = true;
          return true;
        }
        if (p == "QRESYNC" && !a.qresync) {
          QresyncParams q;
          if (!c.sp() || !c.ch('(', "expected '('") || !c.number32(q.uidValidity, true) ||
              !c.sp() || !c.number64(q.modSeq, true))
            return false;
          if (c.lookingAt(' ')) {
            c.setPos(c.pos() + 1);
            if (!c.lookingAt('(')) {
              SequenceSet known;
              if (!c.sequenceSet(known, false)) return false;
              q.knownUids = std::move(known);
              if (c.lookingAt(' ')) c.setPos(c.pos() + 1);
            }
            if (c.lookingAt('(')) {
              c.setPos(c.pos() + 1);
              SequenceSet seqs, uids;
              if (!c.sequenceSet(seqs, false) || !c.sp() || !c.sequenceSet(uids, false) ||
                  !c.ch(')', "expected ')'"))
                return false;
              q.seqMatch = std::make_pair(std::move(seqs), std::move(uids));
            }
          }
          if (!c.ch(')', "expected ')'")) return false;
          a.qresync = std::move(q);
          return true;
        }
        return c.fail("unknown select parameter");
      },
      false);
}

// APPEND: mailbox 1*( [SP flag-list] [SP date-time] SP (literal / literal8) ).
// With `prefix`, `text` ends just before a literal header and the function
// answers whether that literal is a message (returned as success).
bool parseAppend(Cursor& c, AppendArgs& a, const ParserSettings& st, bool prefix) {
  if (!c.sp() || !c.mailbox(a.mailbox)) return false;
  while (true) {
    if (!a.messages.empty() && !c.lookingAt(' ')) return !prefix;
    if (!a.messages.empty() && !st.multiAppend) return c.fail("one message per APPEND");
    if (!c.sp()) return false;
    AppendMessage m;
    if (prefix && c.atEnd()) return true;
    if (c.lookingAt('(')) {
      if (!c.flagList(m.flags) || !c.sp()) return false;
      if (prefix && c.atEnd()) return true;
    }
    if (c.lookingAt('"')) {
      DateTime dt;
      if (!c.dateTime(dt) || !c.sp()) return false;
      m.date = dt;
      if (prefix && c.atEnd()) return true;
    }
    bool streamed = false;
    if (!c.item() || !c.literal(m.content, true, &m.binary, &m.size, &streamed)) return false;
    a.messages.push_back(std::move(m));
  }
}

bool isBase64(std::string_view s) {
  if (s.empty() || s.size() % 4 != 0) return false;
  size_t pad = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad > 0) return false;
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')) return false;
  }
  return pad <= 2;
}

struct CommandInfo {
  std::string_view name;
  CommandKind kind;
  bool uidAllowed;
};

constexpr CommandInfo kCommands[] = {
    {"CAPABILITY", CommandKind::Capability, false},
    {"NOOP", CommandKind::Noop, false},
    {"LOGOUT", CommandKind::Logout, false},
    {"STARTTLS", CommandKind::StartTls, false},
    {"AUTHENTICATE", CommandKind::Authenticate, false},
    {"LOGIN", CommandKind::Login, false},
    {"ENABLE", CommandKind::Enable, false},
    {"SELECT", CommandKind::Select, false},
    {"EXAMINE", CommandKind::Examine, false},
    {"CREATE", CommandKind::Create, false},
    {"DELETE", CommandKind::Delete, false},
    {"RENAME", CommandKind::Rename, false},
    {"SUBSCRIBE", CommandKind::Subscribe, false},
    {"UNSUBSCRIBE", CommandKind::Unsubscribe, false},
    {"LIST", CommandKind::List, false},
    {"LSUB", CommandKind::Lsub, false},
    {"NAMESPACE", CommandKind::Namespace, false},
    {"STATUS", CommandKind::Status, false},
    {"APPEND", CommandKind::Append, false},
    {"CHECK", CommandKind::Check, false},
    {"CLOSE", CommandKind::Close, false},
    {"UNSELECT", CommandKind::Unselect, false},
    {"EXPUNGE", CommandKind::Expunge, true},
    {"SEARCH", CommandKind::Search, true},
    {"FETCH", CommandKind::Fetch, true},
    {"STORE", CommandKind::Store, true},
    {"COPY", CommandKind::Copy, true},
    {"MOVE", CommandKind::Move, true},
    {"IDLE", CommandKind::Idle, false},
    {"ID", CommandKind::Id, false},
};

bool parseArgs(Cursor& c, Command& cmd, const ParserSettings& st) {
  switch (cmd.kind) {
    case CommandKind::Capability:
    case CommandKind::Noop:
    case CommandKind::Logout:
    case CommandKind::StartTls:
    case CommandKind::Namespace:
    case CommandKind::Check:
    case CommandKind::Close:
    case CommandKind::Unselect:
    case CommandKind::Idle:
      return true;
    case CommandKind::Expunge: {
      if (!cmd.uid) return true;
      ExpungeArgs a;
      if (!c.sp() || !c.sequenceSet(a.set)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Login: {
      LoginArgs a;
      if (!c.sp() || !c.astring(a.user) || !c.sp() || !c.astring(a.password)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Authenticate: {
      AuthenticateArgs a;
      std::string mech;
      if (!c.sp() || !c.atom(mech)) return false;
      a.mechanism = upper(mech);
      if (c.lookingAt(' ')) {
        std::string ir;
        if (!c.sp() || !c.atom(ir)) return false;
        if (ir == "=")
          a.initialResponse = std::string();
        else if (isBase64(ir))
          a.initialResponse = std::move(ir);
        else
          return c.fail("bad initial response");
      }
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Enable: {
      EnableArgs a;
      do {
        std::string cap;
        if (!c.sp() || !c.item() || !c.atom(cap)) return false;
        a.capabilities.push_back(upper(cap));
      } while (c.lookingAt(' '));
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Select:
    case CommandKind::Examine: {
      SelectArgs a;
      if (!parseSelect(c, a)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Create: {
      CreateArgs a;
      if (!c.sp() || !c.mailbox(a.mailbox)) return false;
      if (c.lookingAt(' ')) {
        // create-param: "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"
        std::string use;
        if (!c.sp() || !c.ch('(', "expected '('") || !c.keyword(use) || use != "USE" ||
            !c.sp() || !c.flagList(a.specialUse) || !c.ch(')', "expected ')'"))
          return c.fail("bad CREATE parameters");
        for (const std::string& f : a.specialUse)
          if (f.empty() || f[0] != '\\') return c.fail("bad special-use attribute");
      }
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Delete:
    case CommandKind::Subscribe:
    case CommandKind::Unsubscribe: {
      MailboxArgs a;
      if (!c.sp() || !c.mailbox(a.mailbox)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Rename: {
      RenameArgs a;
      if (!c.sp() || !c.mailbox(a.from) || !c.sp() || !c.mailbox(a.to)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::List:
    case CommandKind::Lsub: {
      ListArgs a;
      if (!parseList(c, a, cmd.kind == CommandKind::Lsub)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Status: {
      StatusArgs a;
      if (!c.sp() || !c.mailbox(a.mailbox) || !c.sp() || !statusItems(c, a.items)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Append: {
      AppendArgs a;
      if (!parseAppend(c, a, st, false)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Search: {
      SearchArgs a;
      if (!parseSearch(c, a)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Fetch: {
      FetchArgs a;
      if (!parseFetch(c, a)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Store: {
      StoreArgs a;
      if (!parseStore(c, a)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Copy:
    case CommandKind::Move: {
      CopyArgs a;
      if (!c.sp() || !c.sequenceSet(a.set) || !c.sp() || !c.mailbox(a.mailbox)) return false;
      cmd.args = std::move(a);
      return true;
    }
    case CommandKind::Id: {
      IdArgs a;
      if (!c.sp()) return false;
      if (c.lookingAt('(')) {
        a.params.emplace();
        if (!c.list(
                [&] {
                  std::string field;
                  std::optional<std::string> value;
                  if (!c.string(field) || !c.sp() || !c.nstring(value)) return false;
                  a.params->emplace_back(std::move(field), std::move(value));
                  return true;
                },
                true))
          return false;
      } else {
        std::string nil;
        if (!c.atom(nil) || !iequals(nil, "NIL")) return c.fail("expected a list or NIL");
      }
      cmd.args = std::move(a);
      return true;
    }
  }
  return c.fail("unknown command");
}

}  // namespace

std::string_view statusItemName(StatusItem item) {
  switch (item) {
    case StatusItem::Messages: return "MESSAGES";
    case StatusItem::Recent: return "RECENT";
    case StatusItem::UidNext: return "UIDNEXT";
    case StatusItem::UidValidity: return "UIDVALIDITY";
    case StatusItem::Unseen: return "UNSEEN";
    case StatusItem::Deleted: return "DELETED";
    case StatusItem::Size: return "SIZE";
    case StatusItem::HighestModSeq: return "HIGHESTMODSEQ";
  }
  return "MESSAGES";
}

std::string FetchAtt::responseName() const {
  using K = Kind;
  switch (kind) {
    case K::Envelope: return "ENVELOPE";
    case K::Flags: return "FLAGS";
    case K::InternalDate: return "INTERNALDATE";
    case K::Rfc822: return "RFC822";
    case K::Rfc822Header: return "RFC822.HEADER";
    case K::Rfc822Size: return "RFC822.SIZE";
    case K::Rfc822Text: return "RFC822.TEXT";
    case K::Body: return "BODY";
    case K::BodyStructure: return "BODYSTRUCTURE";
    case K::Uid: return "UID";
    case K::ModSeq: return "MODSEQ";
    case K::BodySection:
    case K::Binary:
    case K::BinarySize:
      break;
  }
  std::string out = kind == K::BodySection ? "BODY[" : kind == K::Binary ? "BINARY[" : "BINARY.SIZE[";
  for (size_t i = 0; i < section.part.size(); ++i) {
    if (i) out += '.';
    out += std::to_string(section.part[i]);
  }
  if (kind == K::BodySection && section.text != Section::Text::None) {
    if (!section.part.empty()) out += '.';
    switch (section.text) {
      case Section::Text::Header: out += "HEADER"; break;
      case Section::Text::HeaderFields: out += "HEADER.FIELDS"; break;
      case Section::Text::HeaderFieldsNot: out += "HEADER.FIELDS.NOT"; break;
      case Section::Text::Text: out += "TEXT"; break;
      case Section::Text::Mime: out += "MIME"; break;
      case Section::Text::None: break;
    }
    if (section.text == Section::Text::HeaderFields ||
        section.text == Section::Text::HeaderFieldsNot) {
      out += " (";
      for (size_t i = 0; i < section.fields.size(); ++i) {
        if (i) out += ' ';
        appendAstring(out, section.fields[i]);
      }
      out += ')';
    }
  }
  out += ']';
  if (partial && kind != K::BinarySize) {
    out += '<';
    out += std::to_string(partial->first);
    out += '>';
  }
  return out;
}

namespace {

// Parses one complete command from its buffered form (lines joined by CRLF
// after each literal header, literals inline). `streamed` lists the offsets
// of literals whose content went to the sink and is not in `text`.
Result<Command> parseCommandText(std::string_view text, const std::vector<size_t>& streamed,
                                 const ParserSettings& settings) {
  Cursor c(text, streamed, settings);
  Command cmd;
  cmd.tag = extractTag(text);
  if (cmd.tag.empty()) {
    if (text.empty()) return Error{"empty command line"};
    return Error{"missing or bad tag"};
  }
  c.setPos(cmd.tag.size() + 1);
  std::string name;
  if (!c.keyword(name)) return Error{"missing command name"};
  if (name == "UID") {
    if (!c.sp() || !c.keyword(name)) return Error{"missing UID command"};
    cmd.uid = true;
  }
  const CommandInfo* info = nullptr;
  for (const CommandInfo& ci : kCommands)
    if (ci.name == name) info = &ci;
  if (!info) return Error{"unknown command"};
  if (cmd.uid && !info->uidAllowed) return Error{"command not allowed after UID"};
  cmd.name = name;
  cmd.kind = info->kind;
  if (!parseArgs(c, cmd, settings) || !c.end()) return Error{c.error()};
  return cmd;
}

}  // namespace

bool isIdleDone(std::string_view line) { return iequals(line, "DONE"); }

namespace {

// Whether the literal announced at the end of `prefix` (which ends with the
// SP before "{" / "~{") is an APPEND message. `resumeAt` is 0 before the
// first message; after one, the offset just past it, from where only
// " [flag-list SP] [date-time SP]" can precede the next: each check then
// costs only the octets since the previous message, so a long MULTIAPPEND
// is not re-parsed from the start at every literal.
bool isAppendMessagePosition(std::string_view prefix, size_t resumeAt,
                             const std::vector<size_t>& streamed, const ParserSettings& settings) {
  Cursor c(prefix, streamed, settings);
  if (resumeAt > 0) {
    if (!settings.multiAppend) return false;
    c.setPos(resumeAt);
    if (!c.sp()) return false;
    if (c.lookingAt('(')) {
      std::vector<std::string> flags;
      if (!c.flagList(flags) || !c.sp()) return false;
    }
    if (c.lookingAt('"')) {
      DateTime dt;
      if (!c.dateTime(dt) || !c.sp()) return false;
    }
    return c.atEnd();
  }
  const std::string tag = extractTag(prefix);
  if (tag.empty() || !iequals(prefix.substr(tag.size() + 1, 7), "APPEND ")) return false;
  c.setPos(tag.size() + 1);
  std::string name;
  if (!c.keyword(name) || name != "APPEND") return false;
  AppendArgs a;
  return parseAppend(c, a, settings, true) && c.atEnd();
}

// A literal header at the end of a line: "{n}", "{n+}", "~{n}".
struct LiteralHeader {
  bool found = false;
  bool valid = false;      // the digits were a number that fits
  bool nonSync = false;
  bool binary = false;
  uint64_t size = 0;
  size_t start = 0;        // offset of '{' or '~' in the line
};

LiteralHeader findLiteralHeader(std::string_view line, bool checkQuotes) {
  LiteralHeader h;
  if (line.empty() || line.back() != '}') return h;
  if (checkQuotes) {
    bool inQuote = false;
    for (size_t i = 0; i < line.size(); ++i) {
      if (inQuote && line[i] == '\\') {
        ++i;
        continue;
      }
      if (line[i] == '"') inQuote = !inQuote;
    }
    if (inQuote) return h;
  }
  size_t i = line.size() - 1;
  if (i > 0 && line[i - 1] == '+') {
    h.nonSync = true;
    --i;
  }
  size_t digitsEnd = i;
  while (i > 0 && isDigit(line[i - 1])) --i;
  if (i == digitsEnd || i == 0 || line[i - 1] != '{') return h;
  h.found = true;
  h.start = i - 1;
  if (h.start > 0 && line[h.start - 1] == '~') {
    h.binary = true;
    --h.start;
  }
  std::string_view digits = line.substr(i, digitsEnd - i);
  if (digits.size() > 19) return h;
  auto n = parseU64(digits);
  if (!n) return h;
  h.size = *n;
  h.valid = true;
  return h;
}

}  // namespace

Parser::Parser(ParserSettings settings, MessageSink* sink)
    : settings_(std::move(settings)), sink_(sink) {}

void Parser::feed(std::string_view bytes) {
  if (pos_ > 0 && (pos_ >= in_.size() || pos_ > 4096)) {
    in_.erase(0, pos_);
    pos_ = 0;
  }
  in_.append(bytes);
}

bool Parser::atCommandStart() const {
  return state_ == State::Line && cmd_.empty() && !discarding_;
}

void Parser::resetCommand() {
  cmd_.clear();
  lineStart_ = 0;
  streamed_.clear();
  appendResume_ = 0;
  discarding_ = false;
  discardTail_.clear();
}

ParseError Parser::makeError(std::string text, bool tooBig) const {
  ParseError e;
  // Only the first octets are looked at, as many as a line cut short by a
  // limit still holds, so that the answer does not depend on how the input
  // was split.
  const std::string_view head = std::string_view(cmd_).substr(
      0, std::min({size_t{256}, settings_.maxLine, settings_.maxCommand}));
  e.tag = extractTag(head);
  if (!e.tag.empty()) {
    size_t i = e.tag.size() + 1, n = 0;
    while (i + n < head.size() && n < 16 && std::isalpha(static_cast<unsigned char>(head[i + n])))
      ++n;
    e.command = upper(head.substr(i, n));
  }
  e.text = std::move(text);
  e.tooBig = tooBig;
  return e;
}

Event Parser::lineTooLong() {
  ParseError e = makeError("line too long", true);
  resetCommand();
  discarding_ = true;
  return e;
}

Event Parser::next() {
  while (pos_ < in_.size()) {
    switch (state_) {
      case State::Literal: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(literalLeft_, in_.size() - pos_));
        cmd_.append(in_, pos_, n);
        pos_ += n;
        literalLeft_ -= n;
        if (literalLeft_ == 0) {
          state_ = State::Line;
          lineStart_ = cmd_.size();
        }
        continue;
      }
      case State::StreamLiteral: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(literalLeft_, in_.size() - pos_));
        sink_->messageData(std::string_view(in_).substr(pos_, n));
        pos_ += n;
        literalLeft_ -= n;
        if (literalLeft_ == 0) {
          sink_->messageEnd();
          state_ = State::Line;
          lineStart_ = cmd_.size();
        }
        continue;
      }
      case State::SkipLiteral: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(literalLeft_, in_.size() - pos_));
        pos_ += n;
        literalLeft_ -= n;
        if (literalLeft_ == 0) state_ = State::Line;
        continue;
      }
      case State::Line:
        break;
    }
    // Line state: look for the end of the line.
    const char* base = in_.data() + pos_;
    const size_t avail = in_.size() - pos_;
    const void* nl = std::memchr(base, '\n', avail);
    const size_t take = nl ? static_cast<size_t>(static_cast<const char*>(nl) - base) : avail;
    if (discarding_) {
      const std::string_view chunk(base, take);
      discardTail_.append(chunk.substr(chunk.size() > 32 ? chunk.size() - 32 : 0));
      if (discardTail_.size() > 32) discardTail_.erase(0, discardTail_.size() - 32);
      pos_ += take;
      if (!nl) return NeedMore{};
      ++pos_;
      Event e = finishDiscardedLine();
      if (!std::holds_alternative<NeedMore>(e)) return e;
      continue;
    }
    const size_t lineLen = cmd_.size() - lineStart_ + take;
    // A CR before the LF (or still waiting for it) is not part of the line.
    const char last = take > 0                 ? base[take - 1]
                      : cmd_.size() > lineStart_ ? cmd_.back()
                                                 : '\0';
    const size_t limitLen = last == '\r' ? lineLen - 1 : lineLen;
    if (limitLen > settings_.maxLine || cmd_.size() + take > settings_.maxCommand) {
      // The end of the line so far, to see whether it announces a literal.
      std::string tail = cmd_.substr(std::max(lineStart_, cmd_.size() > 32 ? cmd_.size() - 32 : 0));
      tail.append(std::string_view(base, take).substr(take > 32 ? take - 32 : 0));
      if (tail.size() > 32) tail.erase(0, tail.size() - 32);
      // Keep the tag for the error; drop the rest.
      if (cmd_.size() < 256) cmd_.append(base, std::min<size_t>(take, 256));
      Event e = lineTooLong();
      discardTail_ = std::move(tail);
      // The LF, if it is here, is left for the discarding branch, so that
      // the end of the line is handled the same way however the input was
      // split.
      pos_ += take;
      return e;
    }
    cmd_.append(base, take);
    pos_ += take;
    if (!nl) return NeedMore{};
    ++pos_;
    if (cmd_.size() > lineStart_ && cmd_.back() == '\r') cmd_.pop_back();
    Event e = lineComplete();
    if (!std::holds_alternative<NeedMore>(e)) return e;
  }
  return NeedMore{};
}

Event Parser::finishDiscardedLine() {
  std::string_view tail = discardTail_;
  if (!tail.empty() && tail.back() == '\r') tail.remove_suffix(1);
  const LiteralHeader h = findLiteralHeader(tail, false);
  discardTail_.clear();
  if (h.found && h.nonSync) {
    // The client sends these octets without waiting: skip them, then the
    // rest of the command.
    if (!h.valid) {
      resetCommand();
      ParseError e;
      e.text = "literal too large";
      e.tooBig = true;
      e.closeAdvised = true;
      return e;
    }
    literalLeft_ = h.size;
    state_ = h.size > 0 ? State::SkipLiteral : State::Line;
    return NeedMore{};
  }
  // End of the discarded command (a synchronising literal is never sent:
  // the client got our tagged response instead of a continuation).
  resetCommand();
  return NeedMore{};
}

Event Parser::lineComplete() {
  std::string_view line = std::string_view(cmd_).substr(lineStart_);
  if (lineMode_ && lineStart_ == 0) {
    RawLine r{std::string(line)};
    resetCommand();
    return r;
  }
  const LiteralHeader h = findLiteralHeader(line, true);
  if (!h.found) {
    auto parsed = parseCommandText(cmd_, streamed_, settings_);
    if (!parsed) {
      ParseError e = makeError(parsed.error().message);
      resetCommand();
      return e;
    }
    resetCommand();
    return std::move(parsed.value());
  }
  // A literal follows this line.
  const size_t headerAt = lineStart_ + h.start;
  const std::string_view prefix = std::string_view(cmd_).substr(0, headerAt);
  const bool isMessage = isAppendMessagePosition(prefix, appendResume_, streamed_, settings_);
  std::string refusal;
  bool tooBig = false;
  if (extractTag(cmd_).empty()) {
    refusal = "missing or bad tag";
  } else if (!h.valid) {
    refusal = "literal too large";
    tooBig = true;
  } else if (h.binary && !isMessage) {
    refusal = "literal8 not allowed here";
  } else if (h.nonSync && settings_.literalPlus == LiteralPlus::None) {
    refusal = "non-synchronizing literals are not supported";
  } else if (h.nonSync && settings_.literalPlus == LiteralPlus::Minus &&
             h.size > kLiteralMinusMax) {
    refusal = "non-synchronizing literal too large (LITERAL-)";
    tooBig = true;
  } else if (isMessage && h.size > settings_.maxMessage) {
    refusal = "message too large";
    tooBig = true;
  } else if (!isMessage && h.size > settings_.maxLiteral) {
    refusal = "literal too large";
    tooBig = true;
  } else if ((!isMessage || !sink_) && cmd_.size() + h.size > settings_.maxCommand) {
    refusal = "command too large";
    tooBig = true;
  }
  if (!refusal.empty()) {
    ParseError e = makeError(std::move(refusal), tooBig);
    const bool skip = h.nonSync && h.valid;
    e.closeAdvised = h.nonSync && (!h.valid || h.size > settings_.maxMessage);
    resetCommand();
    if (skip) {
      // The octets come anyway: skip them, then the rest of the command.
      discarding_ = true;
      literalLeft_ = h.size;
      state_ = h.size > 0 ? State::SkipLiteral : State::Line;
    }
    return e;
  }
  cmd_ += "\r\n";
  literalLeft_ = h.size;
  if (isMessage) appendResume_ = cmd_.size() + (sink_ ? 0 : h.size);
  if (isMessage && sink_) {
    streamed_.push_back(cmd_.size());
    sink_->messageBegin(streamed_.size() - 1, h.size, h.binary);
    if (h.size == 0) {
      sink_->messageEnd();
      lineStart_ = cmd_.size();
    } else {
      state_ = State::StreamLiteral;
    }
  } else if (h.size == 0) {
    lineStart_ = cmd_.size();
  } else {
    state_ = State::Literal;
  }
  if (!h.nonSync) return ContinueRequest{h.size};
  return NeedMore{};
}

}  // namespace yubin::imap
