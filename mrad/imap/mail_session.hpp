// The IMAP authenticated and selected states (RFC 3501 §6.3, §6.4; RFC 9051
// §6.3, §6.4) over one user's store::MailStore: CAPABILITY, NOOP, LOGOUT,
// ENABLE, ID, SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
// UNSUBSCRIBE, LIST (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE), LSUB,
// NAMESPACE, STATUS, APPEND (MULTIAPPEND, streamed to the store), CHECK,
// CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE, SEARCH (ESEARCH, SEARCHRES), FETCH,
// STORE, COPY, MOVE and their UID forms, IDLE; CONDSTORE (RFC 7162 §3.1):
// ENABLE CONDSTORE or any CONDSTORE-enabling command (SELECT/EXAMINE
// (CONDSTORE), FETCH MODSEQ or CHANGEDSINCE, STORE UNCHANGEDSINCE, SEARCH
// MODSEQ, STATUS HIGHESTMODSEQ) turns it on; SELECT always says
// [HIGHESTMODSEQ n] (or [NOMODSEQ] for a backend without mod-sequences,
// where the CONDSTORE items get BAD); once on, every untagged FETCH for a
// flag change carries MODSEQ. QRESYNC is not offered.
//
// A pure state machine like the POP3 MailSession: fed bytes, it queues
// output; a FETCH whose body sections are large becomes a transfer the glue
// pumps with produce() as the client drains, so a message is never held in
// memory whole and later pipelined commands wait for it; a SEARCH runs in
// steps the same way. An APPEND waits for its commit: the blocking part of
// it (fsyncs, the link, the uid log's fdatasync) goes to Offload::runner
// (mrad: the mail process's worker threads), the session stops taking
// commands (waiting()), and when the last step is done -- message, its
// directory entry and its UID on stable storage -- it answers OK
// [APPENDUID], runs what was pipelined behind and calls Offload::resumed.
// Everything else, the store included, runs on the caller's thread.
// Untagged EXISTS, EXPUNGE and FETCH FLAGS for changes made elsewhere are
// sent after each command and while idling (changed()); never an EXPUNGE
// during FETCH, STORE or SEARCH (RFC 3501 §7.4.1, RFC 9051 §7.5.1).
//
// Memory per session is bounded whatever the mailbox size: message bodies
// are read through store::MessageReader in pieces, parsed structures are
// kept in a small LRU, and the parser's limits (ParserSettings) bound each
// command.
//
// Trust: parses untrusted input from an authenticated user; runs in mrad's
// mail process as the mailboxes' owner, with that one user's store.
// Standards: RFC 3501, RFC 9051, RFC 2177 (IDLE), RFC 2342 (NAMESPACE),
// RFC 2971 (ID), RFC 3502 (MULTIAPPEND), RFC 3516 (BINARY), RFC 3691
// (UNSELECT), RFC 4315 (UIDPLUS), RFC 4731 (ESEARCH), RFC 5161 (ENABLE),
// RFC 5182 (SEARCHRES), RFC 5258 / RFC 5819 (LIST-EXTENDED, LIST-STATUS),
// RFC 6154 (SPECIAL-USE), RFC 6851 (MOVE), RFC 7162 (CONDSTORE), RFC 7888
// (LITERAL+), RFC 8438 (STATUS=SIZE).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "imap/parser.hpp"
#include "store/append_commit.hpp"
#include "store/mail_store.hpp"

namespace yubin::mrad::imap {

struct MailSettings {
  std::string user;   // for the log
  std::string logId;  // session id for log lines
  bool tls = false;   // the connection is encrypted (for the log; no STARTTLS here)
  yubin::imap::ParserSettings parser;
  unsigned maxBadCommands = 20;  // then BYE and close
  // The capabilities the login side advertised (unused by the session
  // itself; kept so the glue can log or compare).
  std::vector<std::string> loginCapabilities;
};

// Where a session's blocking work goes (see the header comment).
struct Offload {
  // nullptr: every step of a commit on the calling thread (tests, fuzz).
  store::BlockingRunner* runner = nullptr;
  // A wait ended (from the runner's continuation, never inside a call into
  // the session): output is queued and input is taken again.
  std::function<void()> resumed;
};

// What a session did, for the log line at its end.
struct MailStats {
  uint64_t commands = 0;
  uint64_t fetchedBytes = 0;   // body octets sent by FETCH
  uint64_t appended = 0;       // messages APPENDed
  uint64_t expunged = 0;       // messages this session expunged
};

class MailSession {
 public:
  MailSession(store::MailStore& store, MailSettings s, Offload offload = {});
  ~MailSession();
  MailSession(const MailSession&) = delete;
  MailSession& operator=(const MailSession&) = delete;

  // Queues "<loginTag> OK [CAPABILITY ...] Logged in", then runs the
  // commands pipelined behind the login command.
  void start(std::string_view loginTag, std::string_view pendingInput);
  void feed(std::string_view bytes);
  std::string takeOutput();
  bool hasOutput() const;

  // A FETCH is streaming message data, or a SEARCH is reading messages:
  // call produce() whenever the client's output is below the glue's
  // low-water mark (a SEARCH writes nothing until its end, so the glue
  // keeps calling).
  bool producing() const;
  // Writes about `budget` more octets of the current FETCH into the output
  // (or reads about that much for a SEARCH); at its end, the tagged reply,
  // then the next pipelined commands.
  void produce(size_t budget);

  // An APPEND waits for its commit: feed() keeps what it is given for
  // later, and the glue should read no more until Offload::resumed.
  bool waiting() const;

  // LOGOUT was answered, or the session gave up (too many bad commands, a
  // fatal storage error): flush the output, then close.
  bool closing() const;

  // The selected mailbox's change descriptor (-1 when nothing is selected
  // or the backend has none: then the glue calls changed() on a timer
  // while idling).
  int changeFd() const;
  // Counts the mailboxes opened and closed: a SELECT may close one change
  // descriptor and get a new one with the same number, which the glue's
  // registration must not be mistaken for.
  uint64_t selections() const;
  // changeFd() turned readable or the poll timer fired: while idling, the
  // changes are sent at once; otherwise they wait for the next command.
  void changed();
  // Inside IDLE (between "+ idling" and DONE): the glue runs its idle timer.
  bool idling() const;

  const MailStats& stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace yubin::mrad::imap
