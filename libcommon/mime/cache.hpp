// mime/cache: a compact, versioned binary form of a parsed Structure, for
// the IMAP layer to store per message so BODYSTRUCTURE, ENVELOPE and
// section ranges of a large folder are not recomputed on every FETCH.
//
// API:
//   std::string encodeStructure(structure)
//   Result<Structure> decodeStructure(bytes)   strict: wrong magic or
//       version, truncated data, leftover bytes, or a tree that is not one
//       (a child before its parent, a bad depth, offsets past the message)
//       are errors — the caller then re-parses the message.
//
// Format (all integers LEB128 varints, strings = varint length + bytes,
// optional = 0 | 1 + value): "YMS" 0x01, size, truncated, part count, then
// per part: header offset/size/bareLf, body offset/size/bareLf/lines,
// parent, depth, flags (bit0 headerTruncated, bit1 has envelope), type,
// subtype, params (count, name/value...), id, description, md5, location,
// encoding, disposition (optional: type, params), languages (count,
// strings), envelope (date, subject, in-reply-to, message-id, then six
// address lists: count, each 4 optional strings). Children are rebuilt
// from the parents. Bump the version byte on any change.
//
// Trust: decodes bytes the IMAP layer wrote itself, but from a file a user
// could have edited: decoding is bounds-checked and never trusts counts.
#pragma once

#include <string>
#include <string_view>

#include "base/result.hpp"
#include "mime/structure.hpp"

namespace yubin::mime {

std::string encodeStructure(const Structure& s);
Result<Structure> decodeStructure(std::string_view bytes);

}  // namespace yubin::mime
