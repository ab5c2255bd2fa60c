// The FETCH response items of one command (RFC 3501 §6.4.5 / §7.4.2, RFC
// 9051 §6.4.5 / §7.5.2, RFC 3516 BINARY): FLAGS, INTERNALDATE, RFC822.SIZE,
// UID, ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]<partial>, RFC822,
// RFC822.HEADER, RFC822.TEXT, BINARY[part]<partial>, BINARY.SIZE, MODSEQ.
//
// FetchJob renders "* n FETCH (...)" lines for a list of messages into the
// session's output in budgeted steps: a body section is read from the
// store through MessageReader in 64 KiB pieces and written as a literal as
// the client drains, so a large message never sits in memory. A section
// whose size is only known after a transformation (HEADER.FIELDS, BINARY
// decoding) is read twice: once to count, once to send. Parsed MIME
// structures (needed for ENVELOPE, BODYSTRUCTURE and part sections) are kept
// in a small LRU (StructureCache) keyed by UID; a rendered ENVELOPE is kept
// for the folder in the process's HeaderCache (header_cache.hpp) when the
// session gives one.
//
// Trust: renders untrusted message bytes; every string goes through the
// response writer (imap/response.hpp) or mime/render.hpp, and a literal
// always carries exactly the octets it announced (a message that changed
// under us is cut or padded with spaces rather than breaking the syntax).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "imap/command.hpp"
#include "mime/render.hpp"
#include "mime/structure.hpp"
#include "mrad/imap/header_cache.hpp"
#include "store/mail_store.hpp"

namespace yubin::mrad::imap {

// The parsed structures of the last few messages a session looked at.
class StructureCache {
 public:
  explicit StructureCache(size_t capacity = 16) : capacity_(capacity) {}
  // The structure of message `index` (parsed on a miss, in 64 KiB reads).
  Result<std::shared_ptr<const mime::Structure>> get(store::ImapMailbox& box, size_t index);
  // The ENVELOPE of message `index`: from a cached structure, or by
  // reading the header only (not cached).
  Result<mime::Envelope> envelope(store::ImapMailbox& box, size_t index);
  void clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  size_t capacity_;
  // Most recently used first: (uid, structure).
  std::list<std::pair<uint32_t, std::shared_ptr<const mime::Structure>>> entries_;
};

// "(\Seen \Flagged kw \Recent)" for a message; IMAP4rev2 has no \Recent
// (RFC 9051 §2.3.2): withRecent false leaves it out.
std::string flagList(const store::MessageInfo& info, bool withRecent = true);

class FetchJob {
 public:
  // indexes: 0-based view indexes, ascending; atts as parsed (UID FETCH:
  // the caller adds the UID item); addFlags[i]: append FLAGS to message i's
  // response (its \Seen was just set by a body fetch) unless FLAGS is
  // already among atts.
  FetchJob(store::ImapMailbox& box, StructureCache& cache, std::vector<size_t> indexes,
           std::vector<yubin::imap::FetchAtt> atts, std::vector<bool> addFlags, bool utf8);
  ~FetchJob();
  // CONDSTORE is enabled (RFC 7162 §3.1): a message whose \Seen this FETCH
  // set (addFlags) also gets UID and MODSEQ in its response.
  void setCondstore(bool on) { condstore_ = on; }
  // The folder's shared cache (header_cache.hpp): rendered ENVELOPEs are
  // taken from it and kept in it. Null: none.
  void setHeaderCache(HeaderCache* cache) { headerCache_ = cache; }
  FetchJob(const FetchJob&) = delete;
  FetchJob& operator=(const FetchJob&) = delete;

  // Appends about `budget` octets (at least one step) to out; true when
  // every message was written.
  bool produce(std::string& out, size_t budget);

  // Messages left out because they were expunged elsewhere or unreadable
  // (the command then ends with NO [EXPUNGEISSUED]).
  size_t missed() const { return missed_; }
  // A section that could not be decoded (BINARY of an unknown encoding):
  // the command ends with NO [UNKNOWN-CTE].
  bool unknownCte() const { return unknownCte_; }
  uint64_t bodyBytes() const { return bodyBytes_; }

  // True when an item needs the message content (so an expunged message
  // cannot be served).
  static bool needsContent(const yubin::imap::FetchAtt& att);

 private:
  struct Stream;
  bool step(std::string& out, size_t budget);
  bool startMessage(std::string& out);
  void renderItem(std::string& out, const yubin::imap::FetchAtt& att);

  void appendEnvelope(std::string& out, size_t idx, const mime::RenderOptions& ropts);

  store::ImapMailbox& box_;
  StructureCache& cache_;
  HeaderCache* headerCache_ = nullptr;
  // The last message whose ENVELOPE went through headerCache_ (view index
  // and UID): consecutive indexes sweep the expunged entries between them.
  size_t sweptIdx_ = 0;
  uint32_t sweptUid_ = 0;
  std::vector<size_t> indexes_;
  std::vector<yubin::imap::FetchAtt> atts_;
  std::vector<bool> addFlags_;
  bool utf8_;
  bool needContent_ = false;
  bool hasFlagsAtt_ = false;
  bool hasModSeqAtt_ = false;
  bool hasUidAtt_ = false;
  bool condstore_ = false;
  size_t msg_ = 0;      // position in indexes_
  size_t item_ = 0;     // next item of the current message
  bool inMessage_ = false;
  store::MessageInfo info_;                           // of the current message
  std::shared_ptr<const mime::Structure> structure_;  // of the current message
  std::unique_ptr<Stream> stream_;
  size_t missed_ = 0;
  bool unknownCte_ = false;
  uint64_t bodyBytes_ = 0;
};

}  // namespace yubin::mrad::imap
