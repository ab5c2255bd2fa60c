// yubin-sendmail's message handling; see message.hpp.
#include "sendmail/message.hpp"

#include <cerrno>

#include "mail/address.hpp"
#include "mime/address_list.hpp"

namespace yubin::sendmail {
namespace {

// What mime::parseAddressList puts in place of a missing part.
constexpr std::string_view kMissingDomain = "MISSING_DOMAIN";
constexpr std::string_view kMissingMailbox = "MISSING_MAILBOX";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool standsAlone(std::string_view text, std::string_view word) {
  auto boundary = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == '<' || c == '>' ||
           c == ':' || c == ';' || c == '(' || c == ')';
  };
  for (size_t at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    size_t end = at + word.size();
    if ((at == 0 || boundary(text[at - 1])) && (end == text.size() || boundary(text[end])))
      return true;
  }
  return false;
}

Result<std::vector<std::string>> addressesOf(std::string_view value, const std::string& qualify,
                                             bool allowEmpty) {
  std::vector<std::string> out;
  for (const auto& e : mime::parseAddressList(value)) {
    if (e.isGroupStart() || e.isGroupEnd()) continue;
    if (!e.mailbox || *e.mailbox == kMissingMailbox || e.mailbox->empty())
      return Error{"bad address in \"" + std::string(value) + "\"", EINVAL};
    bool bare = !e.host || *e.host == kMissingDomain;
    // The list parser repairs "a@" or "a b@" into a bare name: a bare name
    // must stand as a word of its own in what the user wrote.
    if (bare && !standsAlone(value, *e.mailbox))
      return Error{"bad address in \"" + std::string(value) + "\"", EINVAL};
    mail::Address a;
    a.local = *e.mailbox;
    a.domain = bare ? qualify : *e.host;
    if (a.domain.empty()) return Error{"no domain for " + a.local, EINVAL};
    std::string text = a.str();
    auto parsed = mail::parseMailbox(text, true);
    if (!parsed) {
      return Error{"bad address " + text + ": " + std::string(mail::describe(parsed.error())),
                   EINVAL};
    }
    out.push_back(parsed->str());
  }
  if (out.empty() && !allowEmpty)
    return Error{"no address in \"" + std::string(value) + "\"", EINVAL};
  return out;
}

// One header field of a CRLF message: its whole text (continuations
// included) and name.
struct Field {
  std::string_view name;
  std::string_view text;   // with CRLFs, as in the message
  std::string_view value;  // after the colon
};

}  // namespace

bool InputReader::feed(std::string_view in, std::string& out) {
  for (char c : in) {
    if (ended_) return false;
    if (c == '\n') {
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      line(out);
    } else {
      line_ += c;
    }
  }
  return !ended_;
}

void InputReader::line(std::string& out) {
  if (!ignoreDots_ && line_ == ".") {
    ended_ = true;
    line_.clear();
    return;
  }
  out += line_;
  out += "\r\n";
  line_.clear();
}

void InputReader::finish(std::string& out) {
  if (ended_ || line_.empty()) return;
  if (line_.back() == '\r') line_.pop_back();
  line(out);
}

Result<std::vector<std::string>> parseRecipientArgument(std::string_view text,
                                                        const std::string& qualify) {
  // A plain "user" or "local@domain" (what nearly every caller passes) is
  // checked strictly; the address-list parser would repair "a@@b".
  if (text.find_first_of("<>,()\"\\ \t:;") == std::string_view::npos) {
    std::string a(text);
    if (a.find('@') == std::string::npos) a += "@" + qualify;
    auto parsed = mail::parseMailbox(a, true);
    if (!parsed)
      return Error{"bad address " + a + ": " + std::string(mail::describe(parsed.error())), EINVAL};
    return std::vector<std::string>{parsed->str()};
  }
  return addressesOf(text, qualify, false);
}

Result<std::string> parseSenderArgument(std::string_view text, const std::string& qualify) {
  if (text.empty() || text == "<>") return std::string("<>");
  auto list = parseRecipientArgument(text, qualify);
  if (!list) return list.error();
  if (list->size() != 1) return Error{"one sender address expected", EINVAL};
  return list->front();
}

Result<Extracted> extractRecipients(std::string_view m, const std::string& qualify) {
  std::vector<Field> fields;
  size_t pos = 0;
  while (pos < m.size()) {
    size_t lf = m.find('\n', pos);
    size_t end = lf == std::string_view::npos ? m.size() : lf + 1;
    std::string_view line = m.substr(pos, end - pos);
    if (line == "\r\n" || line == "\n") break;
    if (line[0] == ' ' || line[0] == '\t') {
      if (fields.empty()) break;  // a continuation of nothing: body
      Field& f = fields.back();
      f.text = m.substr(f.text.data() - m.data(), end - (f.text.data() - m.data()));
      f.value = m.substr(f.value.data() - m.data(), end - (f.value.data() - m.data()));
      pos = end;
      continue;
    }
    size_t colon = line.find(':');
    bool ok = colon != std::string_view::npos && colon > 0;
    for (size_t i = 0; ok && i < colon; ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      if (c <= 32 || c >= 127) ok = false;
    }
    if (!ok) break;  // not a field: the body starts here
    fields.push_back(
        Field{line.substr(0, colon), line, m.substr(pos + colon + 1, end - pos - colon - 1)});
    pos = end;
  }

  bool resent = false;
  for (const auto& f : fields)
    if (iequals(f.name, "Resent-To") || iequals(f.name, "Resent-Cc") ||
        iequals(f.name, "Resent-Bcc"))
      resent = true;

  Extracted x;
  size_t copied = 0;
  for (const auto& f : fields) {
    bool to = resent ? iequals(f.name, "Resent-To") : iequals(f.name, "To");
    bool cc = resent ? iequals(f.name, "Resent-Cc") : iequals(f.name, "Cc");
    bool bcc = resent ? iequals(f.name, "Resent-Bcc") : iequals(f.name, "Bcc");
    if (to || cc || bcc) {
      // An empty Bcc: is legal (RFC 5322 §3.6.3) and names no one.
      auto list = addressesOf(f.value, qualify, true);
      if (!list) return Error{std::string(f.name) + ": " + list.error().message, EINVAL};
      for (auto& a : *list) x.recipients.push_back(std::move(a));
    }
    if (iequals(f.name, "Bcc") || iequals(f.name, "Resent-Bcc")) {
      size_t at = static_cast<size_t>(f.text.data() - m.data());
      x.message.append(m.substr(copied, at - copied));
      copied = at + f.text.size();
    }
  }
  x.message.append(m.substr(copied));
  return x;
}

}  // namespace yubin::sendmail
