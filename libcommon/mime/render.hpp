// mime/render: the IMAP forms of a parsed message: ENVELOPE, BODY and
// BODYSTRUCTURE strings, exactly per the RFC 3501 §9 / RFC 9051 §9 grammar
// (envelope, body, body-type-1part, body-type-mpart, body-ext-*).
//
// API:
//   appendIString(out, s, opts)   an IMAP string written by
//                                 imap::appendString (quoted when short and
//                                 quotable, else a literal {n}\r\n...) after
//                                 dropping NUL (never valid in a string).
//                                 With opts.utf8Quoted (IMAP4rev2 /
//                                 UTF8=ACCEPT) valid UTF-8 may be quoted too.
//   appendNString(out, optional)  NIL or the string.
//   renderEnvelope(env, opts)     "(date subject from sender reply-to to cc
//                                 bcc in-reply-to message-id)"; sender and
//                                 reply-to default to from (RFC 3501
//                                 §7.4.2); empty address lists are NIL.
//   renderBody(structure, extensible, opts)   BODY (false) or
//                                 BODYSTRUCTURE (true) of the message;
//   renderPart(structure, index, extensible, opts)   of one part.
//
// Choices, written down: type, subtype, parameter names and values and the
// encoding appear as written in the message; the defaults are upper case
// ("TEXT" "PLAIN" ("CHARSET" "US-ASCII"), "7BIT"). A text part without a
// charset parameter shows ("CHARSET" "US-ASCII") first (RFC 2045 default,
// as Dovecot does). BODYSTRUCTURE always carries all four extension items
// (md5/params, disposition, language, location); languages always as a
// list, even of one. A multipart without any parsed child shows one empty
// text/plain part (the grammar wants 1*body);
// a message/rfc822 whose content was not parsed shows an all-NIL envelope
// and that empty part. Sizes: opts.crlfSizes (default) reports sizes as if
// every bare LF were CRLF — what a server that sends CRLF must report.
//
// Trust: renders data parsed from untrusted messages; every string goes
// through appendIString, so no input can break the response syntax.
// Standards: RFC 3501 §4.3 (strings), §7.4.2 (ENVELOPE, BODY,
// BODYSTRUCTURE), §9 (grammar); RFC 9051 §7.5.2, RFC 6855 (UTF8=ACCEPT).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mime/structure.hpp"

namespace yubin::mime {

struct RenderOptions {
  bool utf8Quoted = false;
  bool crlfSizes = true;
};

void appendIString(std::string& out, std::string_view s, const RenderOptions& opts = {});
void appendNString(std::string& out, const std::optional<std::string>& s,
                   const RenderOptions& opts = {});
std::string renderEnvelope(const Envelope& env, const RenderOptions& opts = {});
std::string renderBody(const Structure& s, bool extensible, const RenderOptions& opts = {});
std::string renderPart(const Structure& s, uint32_t index, bool extensible,
                       const RenderOptions& opts = {});

}  // namespace yubin::mime
