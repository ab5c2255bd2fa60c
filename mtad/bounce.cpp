// Delivery status notifications; see bounce.hpp.
#include "mtad/bounce.hpp"

#include <ctime>
#include <random>

#include "mail/address.hpp"
#include "mail/header_fixer.hpp"
#include "queue/format.hpp"

namespace yubin::mtad {
namespace {

constexpr size_t kMaxDiagnostic = 900;  // RFC 5322 lines stay under 998 octets

// A value confined to its header field: no control characters, and, where
// the field is 7-bit text (reply texts), no 8-bit bytes either.
std::string confine(std::string_view v, bool asciiOnly, size_t max = 4096) {
  std::string out;
  out.reserve(std::min(v.size(), max));
  for (char c : v) {
    if (out.size() >= max) break;
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      out.push_back(' ');
    else if (u >= 0x80 && asciiOnly)
      out.push_back('?');
    else
      out.push_back(c);
  }
  return out;
}

bool printableAscii(std::string_view v) {
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return !v.empty();
}

}  // namespace

std::string makeBoundary(std::string_view queueId) {
  std::random_device rd;
  std::string b = "=_yubin_" + std::string(queueId) + "_";
  static const char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (int i = 0; i < 20; ++i) b.push_back(kAlphabet[rd() % 36]);
  return b;
}

bool wantsFailureDsn(uint8_t notify) {
  if (notify == 0) return true;  // no NOTIFY: failures are reported
  return (notify & queue::kNotifyFailure) != 0;
}

bool wantsDelayDsn(uint8_t notify) {
  if (notify == 0) return true;
  return (notify & queue::kNotifyDelay) != 0;
}

bool wantsSuccessDsn(uint8_t notify) { return (notify & queue::kNotifySuccess) != 0; }

std::string dsnStatus(const smtp::ClientReply& reply) {
  if (!reply.enhanced.empty()) return reply.enhanced;
  int cls = reply.code / 100;
  if (cls != 2 && cls != 4 && cls != 5) cls = 5;
  return std::to_string(cls) + ".0.0";
}

DsnParts makeDsn(const DsnRequest& r) {
  const std::string host = confine(r.reportingMta, true, 255);
  const std::string& b = r.boundary;
  std::string h;
  h += "From: Mail Delivery System <MAILER-DAEMON@" + host + ">\r\n";
  h += "To: <" + confine(r.sender, false, 512) + ">\r\n";
  static const char* const kSubjects[] = {"Undelivered Mail Returned to Sender",
                                         "Delayed Mail (still being retried)",
                                         "Successful Mail Delivery Report"};
  h += std::string("Subject: ") + kSubjects[static_cast<int>(r.kind)] + "\r\n";
  h += "Date: " + mail::rfc5322Date(r.now) + "\r\n";
  h += "Message-ID: <dsn." + confine(r.queueId, true, 64) + "." + std::to_string(r.now) + "@" +
       host + ">\r\n";
  h += "Auto-Submitted: auto-replied\r\n";
  h += "MIME-Version: 1.0\r\n";
  h += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + b +
       "\"\r\n";
  h += std::string("Content-Transfer-Encoding: ") + (r.eightBit ? "8bit" : "7bit") + "\r\n";
  h += "\r\n";
  h += "This is a MIME-encapsulated message.\r\n\r\n";

  // 1. For people.
  h += "--" + b + "\r\n";
  h += "Content-Description: Notification\r\n";
  h += "Content-Type: text/plain; charset=utf-8\r\n\r\n";
  h += "This is the mail system at host " + host + ".\r\n\r\n";
  switch (r.kind) {
    case DsnKind::Failure:
      h += "Your message could not be delivered to one or more recipients.\r\n";
      h += "The report below says why; the message, or its header, is attached.\r\n\r\n";
      break;
    case DsnKind::Delay:
      h += "Your message could not be delivered yet to one or more recipients.\r\n";
      h += "It is still queued and will be tried again; you need not send it again.\r\n";
      h += "The report below says what happened so far; the message header is attached.\r\n\r\n";
      break;
    case DsnKind::Success:
      h += "Your message was delivered, as you asked to be told, to the recipients\r\n";
      h += "below (\"relayed\": handed on to a system that sends no further reports).\r\n\r\n";
      break;
  }
  for (const auto& rc : r.recipients) {
    h += "<" + confine(rc.finalRecipient, false, 512) + ">: ";
    if (!rc.diagnostic.empty())
      h += confine(rc.diagnostic, true, kMaxDiagnostic);
    else if (r.kind == DsnKind::Failure)
      h += "delivery failed, status " + confine(rc.status, true, 16);
    else
      h += "status " + confine(rc.status, true, 16);
    h += "\r\n";
  }
  h += "\r\n";

  // 2. For programs (RFC 3464 §2.2, §2.3).
  h += "--" + b + "\r\n";
  h += "Content-Description: Delivery report\r\n";
  h += "Content-Type: message/delivery-status\r\n\r\n";
  h += "Reporting-MTA: dns; " + host + "\r\n";
  h += "X-Yubin-Queue-ID: " + confine(r.queueId, true, 64) + "\r\n";
  if (!r.envid.empty()) h += "Original-Envelope-Id: " + mail::xtextEncode(r.envid) + "\r\n";
  h += "Arrival-Date: " + mail::rfc5322Date(r.arrivalTime) + "\r\n";
  for (const auto& rc : r.recipients) {
    h += "\r\n";
    h += "Final-Recipient: rfc822; " + confine(rc.finalRecipient, false, 512) + "\r\n";
    if (!rc.originalType.empty()) {
      std::string type = confine(rc.originalType, true, 32);
      std::string addr = printableAscii(rc.originalRecipient)
                             ? rc.originalRecipient
                             : mail::xtextEncode(rc.originalRecipient);
      h += "Original-Recipient: " + type + "; " + confine(addr, true, 512) + "\r\n";
    }
    static const char* const kActions[] = {"failed", "delayed", "delivered"};
    std::string action = rc.action.empty() ? kActions[static_cast<int>(r.kind)] : rc.action;
    h += "Action: " + confine(action, true, 16) + "\r\n";
    h += "Status: " + confine(rc.status, true, 16) + "\r\n";
    if (!rc.diagnostic.empty())
      h += "Diagnostic-Code: smtp; " + confine(rc.diagnostic, true, kMaxDiagnostic) + "\r\n";
    if (rc.lastAttempt > 0) h += "Last-Attempt-Date: " + mail::rfc5322Date(rc.lastAttempt) + "\r\n";
    if (rc.willRetryUntil > 0)
      h += "Will-Retry-Until: " + mail::rfc5322Date(rc.willRetryUntil) + "\r\n";
  }
  h += "\r\n";

  // 3. The original.
  h += "--" + b + "\r\n";
  if (r.headersOnly && r.kind != DsnKind::Failure) {
    h += "Content-Description: Message Headers\r\n";
    h += "Content-Type: text/rfc822-headers\r\n";
  } else if (r.headersOnly) {
    h += "Content-Description: Undelivered Message Headers\r\n";
    h += "Content-Type: text/rfc822-headers\r\n";
  } else {
    h += "Content-Description: Undelivered Message\r\n";
    h += "Content-Type: message/rfc822\r\n";
  }
  if (r.eightBit) h += "Content-Transfer-Encoding: 8bit\r\n";
  h += "\r\n";

  DsnParts parts;
  parts.head = std::move(h);
  // The CRLF before "--" belongs to the delimiter (RFC 2046 §5.1.1).
  parts.tail = "\r\n--" + b + "--\r\n";
  return parts;
}

void HeaderSection::feed(std::string_view in, std::string& out) {
  size_t from = 0;
  for (size_t i = 0; i < in.size() && !done_; ++i) {
    char c = in[i];
    if (pendingCr_) {
      pendingCr_ = false;
      if (c == '\n') {
        done_ = true;  // the empty line: not part of the section
        return;
      }
      out.push_back('\r');
      from = i;
    }
    if (lineStart_ && c == '\r') {
      out.append(in.substr(from, i - from));
      pendingCr_ = true;
      from = i + 1;
      lineStart_ = false;
      continue;
    }
    if (lineStart_ && c == '\n') {  // a bare empty line ends it too
      out.append(in.substr(from, i - from));
      done_ = true;
      return;
    }
    lineStart_ = c == '\n';
  }
  if (!done_) out.append(in.substr(from));
}

}  // namespace yubin::mtad
