// mime/render: see render.hpp. Trust: renders data from untrusted messages.
#include "mime/render.hpp"

#include "imap/response.hpp"

namespace yubin::mime {
namespace {

constexpr std::string_view kEmptyPart =
    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0";

void appendParams(std::string& out, const std::vector<Param>& params, const RenderOptions& o) {
  if (params.empty()) {
    out += "NIL";
    return;
  }
  out.push_back('(');
  bool first = true;
  for (const auto& p : params) {
    if (!first) out.push_back(' ');
    first = false;
    appendIString(out, p.name, o);
    out.push_back(' ');
    appendIString(out, p.value, o);
  }
  out.push_back(')');
}

void appendAddresses(std::string& out, const std::vector<EnvelopeAddress>& list,
                     const RenderOptions& o) {
  if (list.empty()) {
    out += "NIL";
    return;
  }
  out.push_back('(');
  for (const auto& a : list) {
    out.push_back('(');
    appendNString(out, a.name, o);
    out.push_back(' ');
    appendNString(out, a.adl, o);
    out.push_back(' ');
    appendNString(out, a.mailbox, o);
    out.push_back(' ');
    appendNString(out, a.host, o);
    out.push_back(')');
  }
  out.push_back(')');
}

void appendExtensions(std::string& out, const Part& p, const RenderOptions& o) {
  out.push_back(' ');
  if (p.disposition) {
    out.push_back('(');
    appendIString(out, p.disposition->type, o);
    out.push_back(' ');
    appendParams(out, p.disposition->params, o);
    out.push_back(')');
  } else {
    out += "NIL";
  }
  out.push_back(' ');
  // Always the list form, even for one tag (as Dovecot does; the grammar
  // allows both).
  if (p.languages.empty()) {
    out += "NIL";
  } else {
    out.push_back('(');
    for (size_t i = 0; i < p.languages.size(); ++i) {
      if (i) out.push_back(' ');
      appendIString(out, p.languages[i], o);
    }
    out.push_back(')');
  }
  out.push_back(' ');
  appendNString(out, p.location, o);
}

void appendEnvelope(std::string& out, const Envelope& e, const RenderOptions& o) {
  out.push_back('(');
  appendNString(out, e.date, o);
  out.push_back(' ');
  appendNString(out, e.subject, o);
  out.push_back(' ');
  appendAddresses(out, e.from, o);
  out.push_back(' ');
  appendAddresses(out, e.sender.empty() ? e.from : e.sender, o);
  out.push_back(' ');
  appendAddresses(out, e.replyTo.empty() ? e.from : e.replyTo, o);
  out.push_back(' ');
  appendAddresses(out, e.to, o);
  out.push_back(' ');
  appendAddresses(out, e.cc, o);
  out.push_back(' ');
  appendAddresses(out, e.bcc, o);
  out.push_back(' ');
  appendNString(out, e.inReplyTo, o);
  out.push_back(' ');
  appendNString(out, e.messageId, o);
  out.push_back(')');
}

void appendEmptyPart(std::string& out, bool ext) {
  out += kEmptyPart;
  if (ext) out += " NIL NIL NIL NIL";
  out.push_back(')');
}

void appendPart(std::string& out, const Structure& s, uint32_t index, bool ext,
                const RenderOptions& o, int depth) {
  const Part& p = s.parts[index];
  if (p.isMultipart()) {
    out.push_back('(');
    if (p.children.empty()) appendEmptyPart(out, ext);
    for (uint32_t c : p.children) appendPart(out, s, c, ext, o, depth + 1);
    out.push_back(' ');
    appendIString(out, p.subtype, o);
    if (ext) {
      out.push_back(' ');
      appendParams(out, p.params, o);
      appendExtensions(out, p, o);
    }
    out.push_back(')');
    return;
  }
  out.push_back('(');
  appendIString(out, p.type, o);
  out.push_back(' ');
  appendIString(out, p.subtype, o);
  out.push_back(' ');
  appendParams(out, p.params, o);
  out.push_back(' ');
  appendNString(out, p.id, o);
  out.push_back(' ');
  appendNString(out, p.description, o);
  out.push_back(' ');
  appendIString(out, p.encoding, o);
  out.push_back(' ');
  out += std::to_string(p.bodySize + (o.crlfSizes ? p.bodyBareLf : 0));
  if (p.isMessage()) {
    out.push_back(' ');
    if (!p.children.empty() && s.parts[p.children[0]].envelope) {
      const uint32_t c = p.children[0];
      appendEnvelope(out, *s.parts[c].envelope, o);
      out.push_back(' ');
      appendPart(out, s, c, ext, o, depth + 1);
    } else {
      appendEnvelope(out, Envelope{}, o);
      out.push_back(' ');
      appendEmptyPart(out, ext);
    }
    out.push_back(' ');
    out += std::to_string(p.bodyLines);
  } else if (p.isText()) {
    out.push_back(' ');
    out += std::to_string(p.bodyLines);
  }
  if (ext) {
    out.push_back(' ');
    appendNString(out, p.md5, o);
    appendExtensions(out, p, o);
  }
  out.push_back(')');
}

}  // namespace

void appendIString(std::string& out, std::string_view s, const RenderOptions& o) {
  // A message may carry NUL, which no IMAP string can (CHAR8 excludes it):
  // drop it here; imap::appendString then picks quoted or literal.
  if (s.find('\0') == std::string_view::npos) {
    imap::appendString(out, s, o.utf8Quoted);
    return;
  }
  std::string cleaned;
  cleaned.reserve(s.size());
  for (char c : s)
    if (c != '\0') cleaned.push_back(c);
  imap::appendString(out, cleaned, o.utf8Quoted);
}

void appendNString(std::string& out, const std::optional<std::string>& s, const RenderOptions& o) {
  if (s) {
    appendIString(out, *s, o);
  } else {
    out += "NIL";
  }
}

std::string renderEnvelope(const Envelope& env, const RenderOptions& opts) {
  std::string out;
  appendEnvelope(out, env, opts);
  return out;
}

std::string renderPart(const Structure& s, uint32_t index, bool extensible,
                       const RenderOptions& opts) {
  std::string out;
  if (index >= s.parts.size()) return out;
  appendPart(out, s, index, extensible, opts, 0);
  return out;
}

std::string renderBody(const Structure& s, bool extensible, const RenderOptions& opts) {
  return renderPart(s, 0, extensible, opts);
}

}  // namespace yubin::mime
