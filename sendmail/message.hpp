// What yubin-sendmail does to the message before it is dropped: line ends
// made CRLF, the end of input per -i (a lone "." ends it unless -i),
// recipient addresses (arguments and, with -t, the To/Cc/Bcc header
// fields) parsed and qualified, Bcc removed. Pure functions, no I/O.
// Date:, Message-ID: and From: are added by mtad's pickup (which knows
// the real sender), not here.
// Trust: handles the invoking user's own input; runs as that user.
// Standards: RFC 5322 §3.4 (address lists), §3.6.3 (To, Cc, Bcc),
// §3.6.6 (Resent- fields), §2.2.3 (folding).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace yubin::sendmail {

// Incremental input conversion: LF or CRLF line ends in, CRLF out; with
// `ignoreDots` false a line holding only "." ends the message (it is not
// copied, nor is anything after it). A last line without a line end gets
// one. Bytes may come in pieces of any size.
class InputReader {
 public:
  explicit InputReader(bool ignoreDots) : ignoreDots_(ignoreDots) {}
  // Appends the converted bytes to out; false once the "." line was seen
  // (the rest of the input is to be ignored).
  bool feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  bool ended() const { return ended_; }

 private:
  void line(std::string& out);
  bool ignoreDots_;
  bool ended_ = false;
  std::string line_;  // the current line without its end
};

// The address to queue for a user-written recipient: "Name <a@b>",
// "a@b", or a bare user name, which gets "@<qualify>". Several comma-
// separated addresses give several results. Error (EINVAL) for anything
// that is not an address.
Result<std::vector<std::string>> parseRecipientArgument(std::string_view text,
                                                        const std::string& qualify);
// The sender for -f: "<>" or "" gives "<>"; else one address, qualified.
Result<std::string> parseSenderArgument(std::string_view text, const std::string& qualify);

struct Extracted {
  std::vector<std::string> recipients;  // from To, Cc, Bcc (or the Resent- set)
  std::string message;                  // Bcc and Resent-Bcc fields removed
};
// -t: the recipients of a CRLF message's header section. When Resent-To,
// Resent-Cc or Resent-Bcc fields are present, only they count (a resent
// message, RFC 5322 §3.6.6). Groups are expanded to their members. Error
// (EINVAL) for an address that does not parse.
Result<Extracted> extractRecipients(std::string_view message, const std::string& qualify);

}  // namespace yubin::sendmail
