// The reply catalogue and its renderer. See reply.hpp.
#include "smtp/reply.hpp"

#include <array>

#include "base/log.hpp"

namespace yubin::smtp {

namespace {

struct Entry {
  ReplyId id;
  int code;
  const char* enhanced;
  const char* text;
};

// Every reply text in one place. Texts never echo client input.
constexpr Entry kCatalogue[] = {
    {ReplyId::GreetingSmtp, 220, "", "{} ESMTP Yubin"},
    {ReplyId::GreetingLmtp, 220, "", "{} LMTP Yubin"},
    {ReplyId::Closing, 221, "2.0.0", "Bye"},
    {ReplyId::Timeout, 421, "4.4.2", "{} Error: timeout exceeded"},
    {ReplyId::TooManyErrors, 421, "4.7.0", "{} Error: too many errors"},
    {ReplyId::ShuttingDown, 421, "4.3.2", "{} Service shutting down"},
    {ReplyId::NonSmtpCommand, 421, "4.7.0", "{} Error: this is an SMTP server"},

    {ReplyId::HeloOk, 250, "", "{}"},
    {ReplyId::Ok, 250, "2.0.0", "Ok"},
    {ReplyId::SenderOk, 250, "2.1.0", "Ok"},
    {ReplyId::RecipientOk, 250, "2.1.5", "Ok"},
    {ReplyId::StartData, 354, "", "End data with <CR><LF>.<CR><LF>"},
    {ReplyId::ChunkOk, 250, "2.0.0", "{} octets received"},
    {ReplyId::CannotVrfy, 252, "2.5.0",
     "Cannot VRFY user, but will accept message and attempt delivery"},
    {ReplyId::Help, 214, "2.0.0",
     "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS"},
    {ReplyId::ReadyToStartTls, 220, "2.0.0", "Ready to start TLS"},

    {ReplyId::UnknownCommand, 500, "5.5.2", "Error: command not recognized"},
    {ReplyId::LineTooLong, 500, "5.5.2", "Error: line too long"},
    {ReplyId::BadCharacter, 500, "5.5.2", "Error: invalid character in command"},
    {ReplyId::UseLhlo, 500, "5.5.1", "Error: this is an LMTP server, use LHLO"},
    {ReplyId::NotLmtp, 500, "5.5.1", "Error: this is an SMTP server, use EHLO"},
    {ReplyId::NotImplemented, 502, "5.5.1", "Error: command not implemented"},
    {ReplyId::TlsNotAvailable, 502, "5.5.1", "Error: STARTTLS not available"},
    {ReplyId::NeedHelo, 503, "5.5.1", "Error: send HELO/EHLO first"},
    {ReplyId::NeedLhlo, 503, "5.5.1", "Error: send LHLO first"},
    {ReplyId::NeedEhlo, 503, "5.5.1", "Error: send EHLO first"},
    {ReplyId::NestedMail, 503, "5.5.1", "Error: nested MAIL command"},
    {ReplyId::NeedMail, 503, "5.5.1", "Error: need MAIL command"},
    {ReplyId::NeedRcpt, 503, "5.5.1", "Error: need RCPT command"},
    {ReplyId::BdatInProgress, 503, "5.5.1", "Error: BDAT transfer in progress"},
    {ReplyId::BinaryNeedsBdat, 503, "5.5.1", "Error: BODY=BINARYMIME requires BDAT"},
    {ReplyId::TlsAlreadyActive, 503, "5.5.1", "Error: TLS already active"},
    {ReplyId::TransactionInProgress, 503, "5.5.1", "Error: MAIL transaction in progress"},
    {ReplyId::SyntaxHelo, 501, "5.5.4", "Syntax: EHLO hostname"},
    {ReplyId::SyntaxMail, 501, "5.5.4", "Syntax: MAIL FROM:<address>"},
    {ReplyId::SyntaxRcpt, 501, "5.5.4", "Syntax: RCPT TO:<address>"},
    {ReplyId::SyntaxBdat, 501, "5.5.4", "Syntax: BDAT size [LAST]"},
    {ReplyId::SyntaxVrfy, 501, "5.5.4", "Syntax: VRFY address"},
    {ReplyId::NoArguments, 501, "5.5.4", "Syntax: {} takes no arguments"},
    {ReplyId::BadParameter, 501, "5.5.4", "Error: {}"},
    {ReplyId::UnknownParameter, 555, "5.5.4", "Error: MAIL/RCPT parameter not supported"},
    {ReplyId::BadSender, 501, "5.1.7", "Error: bad sender address: {}"},
    {ReplyId::BadRecipient, 501, "5.1.3", "Error: bad recipient address: {}"},
    {ReplyId::NonAsciiAddress, 553, "5.6.7", "Error: non-ASCII address requires SMTPUTF8"},
    {ReplyId::TlsRequired, 530, "5.7.0", "Must issue a STARTTLS command first"},

    {ReplyId::NoValidRecipients, 554, "5.5.1", "Error: no valid recipients"},
    {ReplyId::TooManyRecipients, 452, "4.5.3", "Error: too many recipients"},
    {ReplyId::MessageTooBig, 552, "5.3.4", "Error: message exceeds fixed maximum message size"},
    {ReplyId::BareLineEnding, 550, "5.6.0",
     "Error: bare <CR> or <LF> in message data, lines must end with <CR><LF>"},

    {ReplyId::Queued, 250, "2.0.0", "Ok: queued as {}"},
    {ReplyId::Delivered, 250, "2.0.0", "Ok: delivered"},
    {ReplyId::LocalError, 451, "4.3.0", "Error: local error in processing, try again later"},
    {ReplyId::InsufficientStorage, 452, "4.3.1", "Error: insufficient system storage"},
    {ReplyId::MailboxFull, 552, "5.2.2", "Error: mailbox full"},
    {ReplyId::MailboxFullTemporary, 452, "4.2.2", "Error: mailbox full, try again later"},
    {ReplyId::UserUnknown, 550, "5.1.1", "Error: user unknown"},
    {ReplyId::RelayDenied, 554, "5.7.1", "Error: relay access denied"},
    {ReplyId::SenderRejected, 550, "5.7.1", "Error: sender rejected"},
    {ReplyId::RecipientRejected, 550, "5.7.1", "Error: recipient rejected"},
    {ReplyId::RoutingRejected, 550, "5.7.1", "Error: source routing in local part not accepted"},
    {ReplyId::TooManyConnections, 421, "4.7.0", "{} Error: too many connections, try again later"},
    {ReplyId::TooManyFromAddress, 421, "4.7.0",
     "{} Error: too many connections from your address, try again later"},
    {ReplyId::AuthChallenge, 334, "", "{}"},
    {ReplyId::AuthOk, 235, "2.7.0", "Authentication successful"},
    {ReplyId::AuthFailed, 535, "5.7.8", "Error: authentication failed"},
    {ReplyId::AuthNeedsTls, 538, "5.7.11",
     "Error: encryption required for requested authentication mechanism"},
    {ReplyId::AuthRequired, 530, "5.7.0", "Error: authentication required"},
    {ReplyId::AuthNotAvailable, 503, "5.5.1", "Error: authentication not enabled"},
    {ReplyId::AlreadyAuthenticated, 503, "5.5.1", "Error: already authenticated"},
    {ReplyId::AuthCancelled, 501, "5.0.0", "Authentication cancelled"},
    {ReplyId::AuthBadBase64, 501, "5.5.2", "Error: cannot decode response"},
    {ReplyId::AuthUnknownMechanism, 504, "5.5.4", "Error: unrecognized authentication type"},
    {ReplyId::SyntaxAuth, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"},
    {ReplyId::AuthLineTooLong, 500, "5.5.6", "Error: authentication exchange line is too long"},
    {ReplyId::AuthTemporary, 454, "4.7.0", "Error: temporary authentication failure"},
    {ReplyId::AuthTooManyFailures, 421, "4.7.0",
     "{} Error: too many failed authentications, try again later"},
    {ReplyId::SenderNotOwned, 553, "5.7.1",
     "Error: sender address not owned by the authenticated user"},
    {ReplyId::RateLimited, 450, "4.7.1", "Error: sending rate limit exceeded, try again later"},
    {ReplyId::TemporaryFailure, 451, "4.7.1", "Error: try again later"},
};

const Entry& entry(ReplyId id) {
  for (const Entry& e : kCatalogue)
    if (e.id == id) return e;
  fatal("smtp reply catalogue: no entry %d", static_cast<int>(id));
}

void appendLine(std::string& out, const Reply& r, std::string_view line, bool last) {
  out += std::to_string(r.code);
  out.push_back(last ? ' ' : '-');
  if (!r.enhanced.empty()) {
    out += r.enhanced;
    if (!line.empty()) out.push_back(' ');
  }
  for (char c : line) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
  }
  out += "\r\n";
}

}  // namespace

Reply reply(ReplyId id, std::string_view arg) {
  const Entry& e = entry(id);
  Reply r{e.code, e.enhanced, e.text};
  const size_t at = r.text.find("{}");
  if (at == std::string::npos) return r;
  if (!arg.empty()) {
    r.text.replace(at, 2, arg);
  } else if (at >= 2 && r.text.compare(at - 2, 2, ": ") == 0) {
    r.text.erase(at - 2, 4);
  } else if (at + 2 < r.text.size() && r.text[at + 2] == ' ') {
    r.text.erase(at, 3);
  } else {
    r.text.erase(at, 2);
  }
  return r;
}

Reply capabilityReply(std::string_view host, const std::vector<std::string>& capabilities) {
  Reply r{250, "", std::string(host)};
  for (const std::string& c : capabilities) {
    r.text.push_back('\n');
    r.text += c;
  }
  return r;
}

std::string render(const Reply& r) {
  if (r.code < 200 || r.code > 599) fatal("smtp reply: bad code %d", r.code);
  if (!r.enhanced.empty() &&
      (r.enhanced.size() < 5 || r.enhanced[0] != static_cast<char>('0' + r.code / 100) ||
       r.enhanced[1] != '.'))
    fatal("smtp reply: enhanced code %s does not match %d", r.enhanced.c_str(), r.code);
  std::string out;
  std::string_view text = r.text;
  while (true) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      appendLine(out, r, text, true);
      break;
    }
    appendLine(out, r, text.substr(0, nl), false);
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace yubin::smtp
