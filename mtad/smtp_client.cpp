// mtad's SMTP client protocol; see smtp_client.hpp.
#include "mtad/smtp_client.hpp"

#include "base/log.hpp"
#include "base/strings.hpp"
#include "mail/address.hpp"

namespace yubin::mtad {
namespace {

using smtp::ClientReply;
using smtp::localReply;

// A server reply that must not decide the fate of a message (a refused
// greeting, EHLO, RSET or a 3xx where none belongs): kept as text inside a
// temporary failure.
ClientReply transientOf(std::string_view what, const ClientReply& r) {
  if (r.transient()) return r;
  return localReply(451, "4.4.0", std::string(what) + ": " + r.summary());
}

bool printableAscii(std::string_view v) {
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) return false;
  }
  return true;
}

// "SIZE 10240000": the digits of a SIZE keyword; nullopt when malformed.
std::optional<uint64_t> parseSize(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

const char* SmtpClient::stateName(State s) {
  switch (s) {
    case State::Greeting:
      return "greeting";
    case State::Ehlo:
      return "EHLO";
    case State::Helo:
      return "HELO";
    case State::StartTls:
      return "STARTTLS";
    case State::TlsHandshake:
      return "TLS handshake";
    case State::Auth:
      return "AUTH";
    case State::Ready:
      return "ready";
    case State::Envelope:
      return "MAIL/RCPT/DATA";
    case State::Content:
      return "message content";
    case State::Final:
      return "end of data";
    case State::Quit:
      return "QUIT";
    case State::Closed:
      return "closed";
  }
  return "?";
}

// ---------------------------------------------------------------- commands

std::string mailCommand(const SmtpMessage& m, const SmtpExtensions& ext) {
  std::string c = "MAIL FROM:<" + m.sender + ">";
  if (ext.size) c += " SIZE=" + std::to_string(m.size);
  if (ext.eightBitMime) {
    if (m.body == queue::Body::EightBitMime)
      c += " BODY=8BITMIME";
    else if (m.body == queue::Body::SevenBit)
      c += " BODY=7BIT";
  }
  if (m.smtputf8 && ext.smtputf8) c += " SMTPUTF8";
  if (ext.dsn) {
    if (m.ret == queue::Ret::Full) c += " RET=FULL";
    if (m.ret == queue::Ret::Headers) c += " RET=HDRS";
    if (!m.envid.empty()) c += " ENVID=" + mail::xtextEncode(m.envid);
  }
  return c;
}

std::string rcptCommand(const SmtpRecipient& r, const SmtpExtensions& ext) {
  std::string c = "RCPT TO:<" + r.address + ">";
  if (!ext.dsn) return c;
  if (r.notify != 0) {
    if (r.notify & queue::kNotifyNever) {
      c += " NOTIFY=NEVER";
    } else {
      std::string n;
      if (r.notify & queue::kNotifySuccess) n += ",SUCCESS";
      if (r.notify & queue::kNotifyFailure) n += ",FAILURE";
      if (r.notify & queue::kNotifyDelay) n += ",DELAY";
      if (!n.empty()) c += " NOTIFY=" + n.substr(1);
    }
  }
  // xtext carries any byte, but an address type other than rfc822 with
  // non-ASCII needs RFC 6533's own encoding: such an ORCPT is left out
  // rather than sent wrong.
  if (!r.orcpt.empty() && !r.orcptType.empty() && printableAscii(r.orcptType) &&
      (iequals(r.orcptType, "rfc822") || printableAscii(r.orcpt)))
    c += " ORCPT=" + r.orcptType + ";" + mail::xtextEncode(r.orcpt);
  return c;
}

std::optional<ClientReply> refusal(const SmtpMessage& m, const SmtpExtensions& ext) {
  if (ext.size && *ext.size > 0 && m.size > *ext.size)
    return localReply(552, "5.3.4",
                      "message size " + std::to_string(m.size) + " exceeds the server's limit " +
                          std::to_string(*ext.size));
  if (m.body == queue::Body::BinaryMime)
    return localReply(554, "5.6.3", "BINARYMIME content cannot be relayed (no BDAT support)");
  if (m.body == queue::Body::EightBitMime && !ext.eightBitMime)
    return localReply(554, "5.6.3",
                      "8-bit message, and the server does not offer 8BITMIME (conversion not "
                      "supported)");
  if (m.smtputf8 && !ext.smtputf8)
    return localReply(553, "5.6.7",
                      "the message needs SMTPUTF8, and the server does not offer it");
  return std::nullopt;
}

// ---------------------------------------------------------------- machine

SmtpClient::SmtpClient(SmtpClientSettings settings)
    : settings_(std::move(settings)), parser_(settings_.limits), tls_(settings_.implicitTls) {}

void SmtpClient::setState(State s) {
  YLOG_DEBUG("smtp client %s -> %s", stateName(state_), stateName(s));
  state_ = s;
}

std::string SmtpClient::takeOutput() {
  std::string o = std::move(out_);
  out_.clear();
  return o;
}

std::optional<TransactionResult> SmtpClient::takeResult() {
  auto r = std::move(done_);
  done_.reset();
  return r;
}

std::chrono::milliseconds SmtpClient::timeout() const {
  switch (state_) {
    case State::Greeting:
      return settings_.greetingTimeout;
    case State::Envelope:
      if (dueHead_ < due_.size() && due_[dueHead_] == Cmd::Data) return settings_.dataTimeout;
      return settings_.commandTimeout;
    case State::Content:
      return settings_.blockTimeout;
    case State::Final:
      return settings_.finalTimeout;
    case State::Quit:
      return std::min<std::chrono::milliseconds>(settings_.commandTimeout, std::chrono::seconds(10));
    case State::Ready:
    case State::Closed:
      return std::chrono::milliseconds(0);
    default:
      return settings_.commandTimeout;
  }
}

void SmtpClient::feed(std::string_view bytes) {
  size_t pos = 0;
  // One line at a time: a reply completes only at a line end, so the state
  // is checked after each reply, and whatever follows the 220 to STARTTLS
  // is counted and dropped, never parsed.
  while (pos < bytes.size()) {
    if (state_ == State::TlsHandshake) {
      discarded_ += bytes.size() - pos;
      return;
    }
    if (state_ == State::Closed) return;
    size_t nl = bytes.find('\n', pos);
    size_t end = nl == std::string_view::npos ? bytes.size() : nl + 1;
    parser_.feed(bytes.substr(pos, end - pos));
    pos = end;
    while (state_ != State::Closed && state_ != State::TlsHandshake) {
      auto r = parser_.next();
      if (!r) break;
      reply(*r);
    }
    if (parser_.failed() && state_ != State::Closed) {
      protocolError(parser_.error());
      return;
    }
  }
}

void SmtpClient::protocolError(const std::string& what) {
  YLOG_WARN("smtp client protocol error state=%s error=\"%s\"", stateName(state_), what.c_str());
  connectionLost(localReply(451, "4.5.0", "protocol error from the server: " + what));
}

void SmtpClient::reply(const ClientReply& r) {
  switch (state_) {
    case State::Greeting:
      if (r.code != 220) {
        out_ += "QUIT\r\n";
        failSetup(transientOf("greeting", r), false);
        return;
      }
      banner_ = r.lines.empty() ? std::string() : r.lines.front();
      out_ += "EHLO " + settings_.helo + "\r\n";
      setState(State::Ehlo);
      return;

    case State::Ehlo:
      onEhlo(r);
      return;

    case State::Helo:
      if (r.code != 250) {
        out_ += "QUIT\r\n";
        failSetup(transientOf("HELO", r), false);
        return;
      }
      ext_ = SmtpExtensions();
      afterHello();
      return;

    case State::StartTls:
      if (r.code == 220) {
        // feed() stops here and counts the rest of its bytes as discarded;
        // the new parser starts clean for the protected session.
        parser_ = smtp::ReplyParser(settings_.limits);
        setState(State::TlsHandshake);
        return;
      }
      if (settings_.requireTls) {
        out_ += "QUIT\r\n";
        failSetup(transientOf("STARTTLS", r), true);
        return;
      }
      // Opportunistic: go on in clear (the server refused, not failed).
      ext_.startTls = false;
      afterHello();
      return;

    case State::Auth:
      onAuth(r);
      return;

    case State::Envelope:
      onEnvelope(r);
      return;

    case State::Content:
      failTransaction(localReply(451, "4.5.0",
                                 "the server replied while the message was being sent: " +
                                     r.summary()),
                      true);
      return;

    case State::Final: {
      ClientReply final = r.code / 100 == 3 ? transientOf("end of data", r) : r;
      gotReply_ = true;
      for (size_t i = 0; i < answered_.size(); ++i) {
        if (answered_[i]) continue;
        result_.replies[i] = final;
        answered_[i] = true;
      }
      dirty_ = false;
      endTransaction();
      return;
    }

    case State::Ready:
      // Unsolicited (a 421 before the server closes an idle connection).
      YLOG_DEBUG("smtp client idle connection got \"%s\"", r.summary().c_str());
      setState(State::Closed);
      return;

    case State::Quit:
      setState(State::Closed);
      return;

    case State::TlsHandshake:
    case State::Closed:
      return;
  }
}

void SmtpClient::onEhlo(const ClientReply& r) {
  if (r.code == 250) {
    ext_ = SmtpExtensions();
    ext_.esmtp = true;
    for (size_t i = 1; i < r.lines.size(); ++i) {
      auto words = splitAny(r.lines[i], " ");
      if (words.empty()) continue;
      std::string kw = toLower(words[0]);
      if (kw == "pipelining") {
        ext_.pipelining = true;
      } else if (kw == "8bitmime") {
        ext_.eightBitMime = true;
      } else if (kw == "smtputf8") {
        ext_.smtputf8 = true;
      } else if (kw == "dsn") {
        ext_.dsn = true;
      } else if (kw == "starttls") {
        ext_.startTls = true;
      } else if (kw == "chunking") {
        ext_.chunking = true;
      } else if (kw == "size") {
        // "SIZE" alone: the server announces the extension without a limit.
        ext_.size = words.size() > 1 ? parseSize(words[1]).value_or(0) : 0;
      } else if (kw == "auth" || kw.rfind("auth=", 0) == 0) {
        size_t first = kw == "auth" ? 1 : 0;
        for (size_t k = first; k < words.size(); ++k) {
          std::string mech = toLower(k == 0 ? words[k].substr(5) : words[k]);
          if (mech == "plain") ext_.authPlain = true;
          if (mech == "login") ext_.authLogin = true;
        }
      }
    }
    afterHello();
    return;
  }
  if (r.permanent() && !tls_) {
    // RFC 5321 §4.1.1.1 / §3.2: a server that does not know EHLO.
    out_ += "HELO " + settings_.helo + "\r\n";
    setState(State::Helo);
    return;
  }
  out_ += "QUIT\r\n";
  failSetup(transientOf("EHLO", r), tls_);
}

void SmtpClient::afterHello() {
  if (!tls_ && settings_.startTls && ext_.startTls) {
    out_ += "STARTTLS\r\n";
    setState(State::StartTls);
    return;
  }
  if (!tls_ && settings_.requireTls) {
    out_ += "QUIT\r\n";
    failSetup(localReply(451, "4.7.4", "TLS is required, and the server does not offer STARTTLS"),
              true);
    return;
  }
  if (settings_.auth && !authenticated_) {
    if (!tls_) {
      out_ += "QUIT\r\n";
      failSetup(localReply(451, "4.7.0",
                           "AUTH is configured, but the connection is not encrypted "
                           "(credentials are never sent in clear)"),
                true);
      return;
    }
    startAuth();
    return;
  }
  setState(State::Ready);
}

void SmtpClient::tlsStarted() {
  if (state_ != State::TlsHandshake) return;
  tls_ = true;
  ext_ = SmtpExtensions();
  out_ += "EHLO " + settings_.helo + "\r\n";
  setState(State::Ehlo);
}

void SmtpClient::startAuth() {
  const SmtpCredentials& c = *settings_.auth;
  authStep_ = 0;
  if (ext_.authPlain) {
    authLogin_ = false;
    std::string token;
    token.push_back('\0');
    token += c.user;
    token.push_back('\0');
    token += c.password;
    out_ += "AUTH PLAIN " + base64Encode(token) + "\r\n";
  } else if (ext_.authLogin) {
    authLogin_ = true;
    out_ += "AUTH LOGIN\r\n";
  } else {
    out_ += "QUIT\r\n";
    failSetup(localReply(451, "4.7.0",
                         "AUTH is configured, and the server offers neither PLAIN nor LOGIN"),
              false);
    return;
  }
  setState(State::Auth);
}

void SmtpClient::onAuth(const ClientReply& r) {
  if (r.code == 235) {
    authenticated_ = true;
    setState(State::Ready);
    return;
  }
  if (r.code == 334 && authLogin_ && authStep_ < 2) {
    // The challenges are fixed ("Username:", "Password:"): answer in order.
    out_ += base64Encode(authStep_ == 0 ? settings_.auth->user : settings_.auth->password) + "\r\n";
    ++authStep_;
    return;
  }
  if (r.code == 334) {
    out_ += "*\r\n";  // cancel (RFC 4954 §4): the server asks for more than we have
    out_ += "QUIT\r\n";
    failSetup(localReply(451, "4.7.0", "unexpected AUTH challenge: " + r.summary()), false);
    return;
  }
  out_ += "QUIT\r\n";
  failSetup(transientOf("AUTH", r), false);
}

void SmtpClient::failSetup(const ClientReply& why, bool tls) {
  setupFailure_ = SetupFailure{transientOf("connection", why), tls};
  setState(State::Closed);
}

// ---------------------------------------------------------------- transaction

void SmtpClient::send(const SmtpMessage& message) {
  if (state_ != State::Ready) fatal("SmtpClient::send in state %s", stateName(state_));
  msg_ = message;
  const size_t n = msg_.recipients.size();
  result_ = TransactionResult();
  result_.replies.assign(n, ClientReply());
  result_.dsnPassed = ext_.dsn;
  answered_.assign(n, false);
  accepted_ = 0;
  rcptSent_ = 0;
  rcptReply_ = 0;
  dataSent_ = false;
  mailOk_ = false;
  gotReply_ = false;
  discardData_ = false;
  mailFailure_.reset();
  due_.clear();
  dueHead_ = 0;
  if (n == 0) {
    done_ = std::move(result_);
    return;
  }
  if (auto no = refusal(msg_, ext_)) {
    result_.replies.assign(n, *no);
    answered_.assign(n, true);
    done_ = std::move(result_);
    return;
  }
  rcptLines_.clear();
  for (const auto& r : msg_.recipients) rcptLines_.push_back(rcptCommand(r, ext_));
  setState(State::Envelope);
  if (dirty_) {
    out_ += "RSET\r\n";
    due_.push_back(Cmd::Rset);
    if (!ext_.pipelining) return;
  }
  out_ += mailCommand(msg_, ext_) + "\r\n";
  due_.push_back(Cmd::Mail);
  if (!ext_.pipelining) return;
  // RFC 2920: the whole envelope and DATA in one group; DATA is last.
  for (const auto& l : rcptLines_) {
    out_ += l + "\r\n";
    due_.push_back(Cmd::Rcpt);
  }
  rcptSent_ = n;
  out_ += "DATA\r\n";
  due_.push_back(Cmd::Data);
  dataSent_ = true;
}

void SmtpClient::onEnvelope(const ClientReply& r) {
  if (dueHead_ >= due_.size()) {
    protocolError("a reply no command asked for");
    return;
  }
  gotReply_ = true;
  Cmd cmd = due_[dueHead_++];
  switch (cmd) {
    case Cmd::Rset:
      if (r.code / 100 != 2) {
        failTransaction(transientOf("RSET", r), true);
        return;
      }
      dirty_ = false;
      break;
    case Cmd::Mail:
      if (r.code / 100 == 2)
        mailOk_ = true;
      else
        mailFailure_ = r.code / 100 == 3 ? transientOf("MAIL", r) : r;
      break;
    case Cmd::Rcpt: {
      size_t i = rcptReply_++;
      if (i >= answered_.size()) {
        protocolError("more RCPT replies than recipients");
        return;
      }
      if (mailFailure_) {
        result_.replies[i] = *mailFailure_;
        answered_[i] = true;
      } else if (r.code / 100 == 2) {
        ++accepted_;
      } else {
        result_.replies[i] = r.code / 100 == 3 ? transientOf("RCPT", r) : r;
        answered_[i] = true;
      }
      break;
    }
    case Cmd::Data:
      if (r.code == 354) {
        if (accepted_ == 0) {
          // RFC 2920 §3.1: DATA went with the group and the server took
          // it although no recipient was accepted; end it with a dot.
          discardData_ = true;
          out_ += ".\r\n";
          setState(State::Final);
          return;
        }
        setState(State::Content);
        return;
      }
      for (size_t i = 0; i < answered_.size(); ++i) {
        if (answered_[i]) continue;
        result_.replies[i] = r.code / 100 == 5 ? r : transientOf("DATA", r);
        answered_[i] = true;
      }
      dirty_ = true;
      endTransaction();
      return;
  }
  if (dueHead_ < due_.size()) return;  // more replies of the group to come
  if (!ext_.pipelining) sendNextStep();
}

// Without PIPELINING: the next command once the last one is answered.
void SmtpClient::sendNextStep() {
  const size_t n = msg_.recipients.size();
  if (!mailOk_ && !mailFailure_) {
    // Only the RSET has been answered.
    out_ += mailCommand(msg_, ext_) + "\r\n";
    due_.push_back(Cmd::Mail);
    return;
  }
  if (mailFailure_) {
    for (size_t i = 0; i < n; ++i) {
      if (answered_[i]) continue;
      result_.replies[i] = *mailFailure_;
      answered_[i] = true;
    }
    dirty_ = true;
    endTransaction();
    return;
  }
  if (rcptSent_ < n) {
    out_ += rcptLines_[rcptSent_++] + "\r\n";
    due_.push_back(Cmd::Rcpt);
    return;
  }
  if (accepted_ == 0) {
    dirty_ = true;
    endTransaction();
    return;
  }
  out_ += "DATA\r\n";
  due_.push_back(Cmd::Data);
  dataSent_ = true;
}

void SmtpClient::contentSent() {
  if (state_ != State::Content) return;
  setState(State::Final);
}

void SmtpClient::endTransaction() {
  ++transactions_;
  due_.clear();
  dueHead_ = 0;
  done_ = std::move(result_);
  result_ = TransactionResult();
  if (state_ != State::Closed) setState(State::Ready);
}

void SmtpClient::failTransaction(const ClientReply& why, bool close) {
  for (size_t i = 0; i < answered_.size(); ++i) {
    if (answered_[i]) continue;
    result_.replies[i] = why;
    answered_[i] = true;
  }
  result_.retryable = close && transactions_ > 0 && !gotReply_;
  due_.clear();
  dueHead_ = 0;
  done_ = std::move(result_);
  result_ = TransactionResult();
  dirty_ = true;
  if (close) {
    setState(State::Closed);
  } else {
    setState(State::Ready);
  }
}

void SmtpClient::connectionLost(const ClientReply& why, bool tls) {
  switch (state_) {
    case State::Envelope:
    case State::Content:
    case State::Final:
      failTransaction(why, true);
      return;
    case State::Greeting:
    case State::Ehlo:
    case State::Helo:
    case State::StartTls:
    case State::TlsHandshake:
    case State::Auth:
      failSetup(why, tls || state_ == State::TlsHandshake);
      return;
    case State::Ready:
    case State::Quit:
      setState(State::Closed);
      return;
    case State::Closed:
      return;
  }
}

void SmtpClient::quit() {
  if (state_ != State::Ready) return;
  out_ += "QUIT\r\n";
  setState(State::Quit);
}

}  // namespace yubin::mtad
