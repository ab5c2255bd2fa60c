// Delivery status notifications (bounces) that mtad sends to the envelope
// sender when recipients fail for good: the pure generator of the DSN's
// bytes, and the small helpers around it (who wants a DSN, the status code
// of a reply, cutting the header section out of the original message).
// The generator produces the DSN in two pieces, head and tail, so the
// original message (or its header section) is streamed from the queue file
// between them and never held in memory.
//
// Trust: the texts put into the DSN (addresses, reply texts, ENVID, ORCPT)
// come from SMTP clients and from the LMTP server; they are confined to
// their fields (no CR/LF or control characters survive). Runs in mtad as
// yubin-mta.
//
// Standards: RFC 3464 (message/delivery-status), RFC 6522
// (multipart/report), RFC 3461 (NOTIFY, RET, ENVID, ORCPT), RFC 3463
// (status codes), RFC 3834 (Auto-Submitted), RFC 5322 (dates, headers),
// RFC 2046 (multipart boundaries).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/client_reply.hpp"

namespace yubin::mtad {

// One failed recipient of the report.
struct DsnRecipient {
  std::string finalRecipient;     // the address delivery failed for
  std::string originalType;       // ORCPT address type ("rfc822"); empty when no ORCPT
  std::string originalRecipient;  // ORCPT address, xtext-decoded
  std::string status;             // RFC 3463 "5.2.2"
  std::string diagnostic;         // the server's reply on one line; empty when none
  int64_t lastAttempt = 0;        // seconds since the epoch; 0 = not tried
  // RFC 3464 §2.3.3 Action: "failed", "delayed", "delivered" or "relayed";
  // empty = from the request's kind.
  std::string action;
  int64_t willRetryUntil = 0;  // for "delayed": when the queue gives up
};

// What the report is about (RFC 3464 §2.3.3): failures (a bounce), a delay
// warning (the message is still queued), or success (NOTIFY=SUCCESS).
enum class DsnKind : uint8_t { Failure, Delay, Success };

struct DsnRequest {
  std::string reportingMta;  // our host name
  std::string queueId;       // the original message's queue ID
  std::string sender;        // the original envelope sender: the DSN goes there
  std::string envid;         // RFC 3461 ENVID, xtext-decoded; empty when none
  int64_t arrivalTime = 0;
  int64_t now = 0;
  bool headersOnly = false;              // RET=HDRS: text/rfc822-headers instead of message/rfc822
  bool eightBit = false;                 // the original is 8BITMIME: the DSN is too
  std::string boundary;                  // MIME boundary; the caller makes it unique (random)
  std::vector<DsnRecipient> recipients;  // at least one
  DsnKind kind = DsnKind::Failure;
};

struct DsnParts {
  std::string head;  // headers, human-readable part, delivery-status, the third part's headers
  std::string tail;  // the closing boundary
};

// The DSN is head + original message (or its header section, see
// HeaderSection) + tail, with CRLF line endings.
DsnParts makeDsn(const DsnRequest& request);

// RFC 3461 §4.1: a failure DSN goes out unless the client gave NOTIFY
// without FAILURE (NEVER, or only SUCCESS/DELAY). kNotify* bits from
// queue/format.hpp.
bool wantsFailureDsn(uint8_t notify);

// RFC 3461 §4.1: a delay warning goes out when NOTIFY has DELAY, or when
// no NOTIFY was given (the MTA's choice; ours is yes).
bool wantsDelayDsn(uint8_t notify);
// Only on NOTIFY=SUCCESS.
bool wantsSuccessDsn(uint8_t notify);

// The RFC 3463 status of a reply: its enhanced code when it has one, else
// "<class>.0.0" from the reply code.
std::string dsnStatus(const smtp::ClientReply& reply);

// A MIME boundary: the queue ID and 20 random characters, so the original
// message (written before the boundary was chosen) cannot contain it.
std::string makeBoundary(std::string_view queueId);

// Streams the header section out of a message given in chunks: the header
// lines up to (and without) the empty line that ends them; all of the
// message when it has no empty line.
class HeaderSection {
 public:
  // Appends to out the part of `in` that belongs to the header section.
  void feed(std::string_view in, std::string& out);
  bool done() const { return done_; }

 private:
  bool lineStart_ = true;
  bool pendingCr_ = false;  // a CR at the start of a line, not yet emitted
  bool done_ = false;
};

}  // namespace yubin::mtad
