// mime/address_list: see address_list.hpp. Trust: parses untrusted header
// values.
#include "mime/address_list.hpp"

#include <cstdint>

namespace yubin::mime {
namespace {

constexpr const char* kMissingDomain = "MISSING_DOMAIN";
constexpr const char* kMissingMailbox = "MISSING_MAILBOX";

enum class Kind { Atom, Quoted, Literal, Special, End };

struct Token {
  Kind kind = Kind::End;
  std::string text;  // atom, quoted content, domain literal with brackets
  char special = 0;
  bool spaceBefore = false;  // blanks or a comment came before it
};

bool isAtomChar(char c) {
  const auto b = static_cast<uint8_t>(c);
  if (b >= 0x80) return true;  // 8-bit in headers: tolerated as atom text
  if (b <= 0x20 || b == 0x7F) return false;
  return std::string_view("()<>[]:;@\\,.\"").find(c) == std::string_view::npos;
}

class Tokenizer {
 public:
  explicit Tokenizer(std::string_view s) : s_(s) {}

  const Token& peek() {
    if (!peeked_) {
      tok_ = read();
      peeked_ = true;
    }
    return tok_;
  }
  Token next() {
    peek();
    peeked_ = false;
    return std::move(tok_);
  }
  bool peekSpecial(char c) {
    const Token& t = peek();
    return t.kind == Kind::Special && t.special == c;
  }
  // The content of the last comment read (RFC 5322 §3.4: servers show a
  // trailing comment as the name when there is no display phrase).
  std::optional<std::string>& lastComment() { return lastComment_; }

 private:
  Token read() {
    Token t;
    for (;;) {
      while (pos_ < s_.size() &&
             (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r' || s_[pos_] == '\n')) {
        ++pos_;
        t.spaceBefore = true;
      }
      if (pos_ < s_.size() && s_[pos_] == '(') {
        readComment();
        t.spaceBefore = true;
        continue;
      }
      break;
    }
    if (pos_ >= s_.size()) return t;
    const char c = s_[pos_];
    if (c == '"') {
      t.kind = Kind::Quoted;
      ++pos_;
      while (pos_ < s_.size() && s_[pos_] != '"') {
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
        if (s_[pos_] != '\r' && s_[pos_] != '\n') t.text.push_back(s_[pos_]);
        ++pos_;
      }
      if (pos_ < s_.size()) ++pos_;
    } else if (c == '[') {
      t.kind = Kind::Literal;
      while (pos_ < s_.size() && s_[pos_] != ']') {
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
        if (s_[pos_] != '\r' && s_[pos_] != '\n') t.text.push_back(s_[pos_]);
        ++pos_;
      }
      t.text.push_back(']');
      if (pos_ < s_.size()) ++pos_;
    } else if (isAtomChar(c)) {
      t.kind = Kind::Atom;
      const size_t start = pos_;
      while (pos_ < s_.size() && isAtomChar(s_[pos_])) ++pos_;
      t.text = std::string(s_.substr(start, pos_ - start));
    } else {
      t.kind = Kind::Special;
      t.special = c;
      ++pos_;
    }
    return t;
  }

  void readComment() {
    std::string text;
    int depth = 0;
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '\\' && pos_ < s_.size()) {
        text.push_back(s_[pos_++]);
        continue;
      }
      if (c == '(') {
        if (depth++ > 0) text.push_back(c);
      } else if (c == ')') {
        if (--depth == 0) break;
        text.push_back(c);
      } else if (c != '\r' && c != '\n') {
        text.push_back(c);
      }
    }
    lastComment_ = std::move(text);
  }

  std::string_view s_;
  size_t pos_ = 0;
  Token tok_;
  bool peeked_ = false;
  std::optional<std::string> lastComment_;
};

class Parser {
 public:
  explicit Parser(std::string_view s) : tok_(s) {}

  std::vector<EnvelopeAddress> run() {
    while (tok_.peek().kind != Kind::End && out_.size() < kMaxAddresses) {
      if (tok_.peekSpecial(',') || tok_.peekSpecial(';')) {
        tok_.next();
        continue;
      }
      address(false);
    }
    return std::move(out_);
  }

 private:
  // Display phrase: words joined by one space where the input had space.
  static std::string phraseText(const std::vector<Token>& words) {
    std::string s;
    for (const auto& w : words) {
      if (!s.empty() && w.spaceBefore) s.push_back(' ');
      s += w.kind == Kind::Special ? std::string(1, w.special) : w.text;
    }
    return s;
  }
  // Local part or domain: words joined without the (obsolete) CFWS.
  static std::string tightText(const std::vector<Token>& words) {
    std::string s;
    for (const auto& w : words) s += w.kind == Kind::Special ? std::string(1, w.special) : w.text;
    return s;
  }

  std::vector<Token> words(bool allowLiteral) {
    std::vector<Token> w;
    for (;;) {
      const Token& t = tok_.peek();
      if (t.kind == Kind::Atom || t.kind == Kind::Quoted ||
          (t.kind == Kind::Special && t.special == '.') ||
          (allowLiteral && t.kind == Kind::Literal)) {
        w.push_back(tok_.next());
        if (w.size() > 1000) break;
      } else {
        return w;
      }
    }
    return w;
  }

  std::string domain() { return tightText(words(true)); }

  void push(std::optional<std::string> name, std::optional<std::string> adl, std::string mailbox,
            std::string host) {
    if (name && name->empty()) name.reset();
    if (mailbox.empty()) mailbox = kMissingMailbox;
    if (host.empty()) host = kMissingDomain;
    out_.push_back(
        EnvelopeAddress{std::move(name), std::move(adl), std::move(mailbox), std::move(host)});
  }

  // Skips what cannot start or continue an address, up to "," (or ";" in
  // a group, left for the caller) or the end.
  void skipJunk(bool inGroup) {
    while (tok_.peek().kind != Kind::End && !tok_.peekSpecial(',') &&
           !(inGroup && tok_.peekSpecial(';')))
      tok_.next();
  }

  void address(bool inGroup) {
    tok_.lastComment().reset();
    std::vector<Token> phrase = words(false);
    // Junk like a stray ">" or "]" inside the phrase is skipped.
    while (tok_.peek().kind == Kind::Literal ||
           (tok_.peek().kind == Kind::Special &&
            std::string_view("<:@,;").find(tok_.peek().special) == std::string_view::npos)) {
      tok_.next();
      auto more = words(false);
      phrase.insert(phrase.end(), more.begin(), more.end());
    }
    const Token& t = tok_.peek();
    if (t.kind == Kind::Special && t.special == '<') {
      tok_.next();
      angle(phrase.empty() ? std::nullopt : std::optional<std::string>(phraseText(phrase)));
    } else if (t.kind == Kind::Special && t.special == ':' && !inGroup) {
      tok_.next();
      out_.push_back(EnvelopeAddress{std::nullopt, std::nullopt, phraseText(phrase), std::nullopt});
      while (out_.size() < kMaxAddresses) {
        if (tok_.peekSpecial(',')) {
          tok_.next();
          continue;
        }
        if (tok_.peekSpecial(';')) {
          tok_.next();
          break;
        }
        if (tok_.peek().kind == Kind::End) break;
        address(true);
      }
      out_.push_back(EnvelopeAddress{});
      return;
    } else if (t.kind == Kind::Special && t.special == '@') {
      tok_.next();
      std::string host = domain();
      tok_.peek();  // reads a trailing comment, if any
      push(tok_.lastComment(), std::nullopt, tightText(phrase), std::move(host));
    } else if (!phrase.empty()) {
      tok_.peek();
      push(tok_.lastComment(), std::nullopt, tightText(phrase), "");
    } else if (t.kind == Kind::Special && t.special == ':') {
      tok_.next();  // a group inside a group: not allowed, skipped
    }
    skipJunk(inGroup);
  }

  void angle(std::optional<std::string> name) {
    std::optional<std::string> adl;
    if (tok_.peekSpecial('@')) {  // obs-route: "@a,@b:"
      std::string route;
      while (tok_.peekSpecial('@') || tok_.peekSpecial(',')) {
        const bool at = tok_.next().special == '@';
        if (at) {
          if (!route.empty()) route.push_back(',');
          route += "@" + domain();
        }
      }
      if (tok_.peekSpecial(':')) tok_.next();
      adl = std::move(route);
    }
    std::string local = tightText(words(false));
    std::string host;
    if (tok_.peekSpecial('@')) {
      tok_.next();
      host = domain();
    }
    while (tok_.peek().kind != Kind::End && !tok_.peekSpecial('>') && !tok_.peekSpecial(','))
      tok_.next();
    if (tok_.peekSpecial('>')) tok_.next();
    push(std::move(name), std::move(adl), std::move(local), std::move(host));
  }

  Tokenizer tok_;
  std::vector<EnvelopeAddress> out_;
};

}  // namespace

std::vector<EnvelopeAddress> parseAddressList(std::string_view value) {
  return Parser(value).run();
}

}  // namespace yubin::mime
