// The SMTP / LMTP protocol engine. See session.hpp for the contract.
// Trust: untrusted network input. Every limit is enforced here, before any
// input is buffered: command lines by maxCommandLine, content by streaming.
#include "smtp/session.hpp"

#include <algorithm>

#include "base/log.hpp"
#include "base/strings.hpp"

namespace yubin::smtp {

namespace {

// Content is handed to Io::messageData in pieces of about this size.
constexpr size_t kDataPiece = size_t{64} * 1024;

constexpr uint8_t kSmtp = 1, kSubmission = 2, kLmtp = 4;
constexpr uint8_t kSmtpModes = kSmtp | kSubmission;
constexpr uint8_t kAllModes = kSmtp | kSubmission | kLmtp;

uint8_t modeBit(Mode m) {
  switch (m) {
    case Mode::Smtp:
      return kSmtp;
    case Mode::Submission:
      return kSubmission;
    case Mode::Lmtp:
      return kLmtp;
  }
  return 0;
}

// Resource limits are not held against the client: everything else is.
bool countsAsError(const Reply& r) { return r.code != 452 && r.code != 552; }

Reply addressRefusal(mail::AddressError e, bool sender) {
  switch (mail::classify(e)) {
    case mail::AddressErrorClass::CommandSyntax:
      return reply(sender ? ReplyId::SyntaxMail : ReplyId::SyntaxRcpt);
    case mail::AddressErrorClass::Utf8:
      return reply(ReplyId::NonAsciiAddress);
    case mail::AddressErrorClass::UnknownParameter:
      return reply(ReplyId::UnknownParameter);
    case mail::AddressErrorClass::BadParameter:
      return reply(ReplyId::BadParameter, mail::describe(e));
    case mail::AddressErrorClass::Address:
      break;
  }
  return reply(sender ? ReplyId::BadSender : ReplyId::BadRecipient, mail::describe(e));
}

std::string toUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

void checkPolicyReply(const Reply& r) {
  if (r.code < 400 || r.code > 599) fatal("smtp policy: refusal with code %d", r.code);
}

}  // namespace

std::optional<Reply> Policy::checkHelo(const Envelope&) { return std::nullopt; }

std::vector<std::string> Io::authMechanisms(const Envelope&) { return {}; }
void Io::authStart(std::string_view, std::optional<std::string>) {
  fatal("smtp: AUTH started on a connection that offers none");
}
void Io::authResponse(std::string) { fatal("smtp: AUTH response without an exchange"); }
void Io::authAbort() {}

// One command line being processed, with what its check step parsed.
struct Session::Line {
  std::string verb;  // as received
  std::string args;  // after the verb and its spaces, trailing spaces removed
  std::optional<mail::ReversePath> mail;
  std::optional<mail::ForwardPath> rcpt;
  bool chunkSizeKnown = false;
  uint64_t chunkSize = 0;
  bool chunkLast = false;
  std::string authMechanism;  // upper case
  std::optional<std::string> authInitial;
};

// The command table. Each row: the verb; the modes that know it and the
// reply when another mode sees it; whether it needs HELO/EHLO/LHLO first;
// whether it is allowed before TLS when TLS is required; whether it ends a
// pipelined group (RFC 2920 §3.1: the replies are flushed after it); the
// check step (syntax and state, no side effects) and the proceed step.
// The needs-auth column gates the transaction in submission mode until AUTH
// (RFC 4954) has succeeded; other modes ignore it.
struct Session::Spec {
  std::string_view verb;
  uint8_t modes;
  ReplyId wrongMode;
  bool needsHelo;
  bool beforeTls;
  bool lastInGroup;
  bool chunk;  // BDAT: its octets follow the line and are drained even if refused
  std::optional<Reply> (Session::*check)(Line&);
  void (Session::*proceed)(Line&);
  bool needsAuth = false;
};

const Session::Spec* Session::findCommand(std::string_view verb) {
  static const Spec kCommands[] = {
      {"EHLO", kSmtpModes, ReplyId::UseLhlo, false, true, true, false, &Session::checkHelo,
       &Session::doEhlo},
      {"HELO", kSmtpModes, ReplyId::UseLhlo, false, true, true, false, &Session::checkHelo,
       &Session::doHelo},
      {"LHLO", kLmtp, ReplyId::NotLmtp, false, true, true, false, &Session::checkHelo,
       &Session::doEhlo},
      {"MAIL", kAllModes, ReplyId::UnknownCommand, true, false, false, false, &Session::checkMail,
       &Session::doMail, true},
      {"RCPT", kAllModes, ReplyId::UnknownCommand, true, false, false, false, &Session::checkRcpt,
       &Session::doRcpt, true},
      {"DATA", kAllModes, ReplyId::UnknownCommand, true, false, true, false, &Session::checkData,
       &Session::doData, true},
      {"BDAT", kAllModes, ReplyId::UnknownCommand, true, false, false, true, &Session::checkBdat,
       &Session::doBdat, true},
      // Allowed before TLS as far as requireTls goes: checkAuth answers
      // 538 5.7.11 itself (RFC 4954 §4).
      {"AUTH", kSubmission, ReplyId::UnknownCommand, true, true, true, false, &Session::checkAuth,
       &Session::doAuth},
      {"RSET", kAllModes, ReplyId::UnknownCommand, false, true, false, false,
       &Session::checkNoArguments, &Session::doRset},
      {"NOOP", kAllModes, ReplyId::UnknownCommand, false, true, true, false, &Session::checkNothing,
       &Session::doNoop},
      {"QUIT", kAllModes, ReplyId::UnknownCommand, false, true, true, false, &Session::checkNothing,
       &Session::doQuit},
      {"VRFY", kAllModes, ReplyId::UnknownCommand, false, false, true, false, &Session::checkVrfy,
       &Session::doVrfy},
      {"HELP", kAllModes, ReplyId::UnknownCommand, false, true, false, false,
       &Session::checkNothing, &Session::doHelp},
      {"STARTTLS", kSmtpModes, ReplyId::TlsNotAvailable, false, true, true, false,
       &Session::checkStartTls, &Session::doStartTls},
      // Known but not offered.
      {"EXPN", kAllModes, ReplyId::UnknownCommand, false, true, true, false,
       &Session::checkNotImplemented, nullptr},
      {"TURN", kAllModes, ReplyId::UnknownCommand, false, true, true, false,
       &Session::checkNotImplemented, nullptr},
      {"ETRN", kAllModes, ReplyId::UnknownCommand, false, true, true, false,
       &Session::checkNotImplemented, nullptr},
      {"ATRN", kAllModes, ReplyId::UnknownCommand, false, true, true, false,
       &Session::checkNotImplemented, nullptr},
      {"SEND", kAllModes, ReplyId::UnknownCommand, false, true, false, false,
       &Session::checkNotImplemented, nullptr},
      {"SOML", kAllModes, ReplyId::UnknownCommand, false, true, false, false,
       &Session::checkNotImplemented, nullptr},
      {"SAML", kAllModes, ReplyId::UnknownCommand, false, true, false, false,
       &Session::checkNotImplemented, nullptr},
      // HTTP sent to the mail port (cross-protocol attacks): hang up at once.
      {"GET", kAllModes, ReplyId::UnknownCommand, false, true, true, false, &Session::checkNothing,
       &Session::doNonSmtp},
      {"POST", kAllModes, ReplyId::UnknownCommand, false, true, true, false, &Session::checkNothing,
       &Session::doNonSmtp},
      {"HEAD", kAllModes, ReplyId::UnknownCommand, false, true, true, false, &Session::checkNothing,
       &Session::doNonSmtp},
      {"PUT", kAllModes, ReplyId::UnknownCommand, false, true, true, false, &Session::checkNothing,
       &Session::doNonSmtp},
      {"CONNECT", kAllModes, ReplyId::UnknownCommand, false, true, true, false,
       &Session::checkNothing, &Session::doNonSmtp},
  };
  for (const Spec& s : kCommands)
    if (iequals(s.verb, verb)) return &s;
  return nullptr;
}

Session::Session(Settings settings, Policy& policy, Io& io)
    : settings_(std::move(settings)), policy_(policy), io_(io) {
  env_.tls = settings_.tlsActive;
  env_.clientAddress = settings_.clientAddress;
}

std::string_view Session::stateName(State s) {
  switch (s) {
    case State::Connected:
      return "connected";
    case State::NeedHelo:
      return "need-helo";
    case State::Idle:
      return "idle";
    case State::Mail:
      return "mail";
    case State::Data:
      return "data";
    case State::Chunk:
      return "chunk";
    case State::Chunked:
      return "chunked";
    case State::Committing:
      return "committing";
    case State::StartingTls:
      return "starting-tls";
    case State::Authenticating:
      return "authenticating";
    case State::AuthResponse:
      return "auth-response";
    case State::Closed:
      return "closed";
  }
  return "?";
}

void Session::setState(State s) {
  if (s == state_) return;
  YLOG_DEBUG("smtp state id=%s %.*s -> %.*s", settings_.logId.c_str(),
             static_cast<int>(stateName(state_).size()), stateName(state_).data(),
             static_cast<int>(stateName(s).size()), stateName(s).data());
  state_ = s;
}

// ---- Public entry points ----

void Session::greet() {
  if (state_ != State::Connected) fatal("smtp: greet() twice");
  send(reply(settings_.mode == Mode::Lmtp ? ReplyId::GreetingLmtp : ReplyId::GreetingSmtp,
             settings_.hostname));
  setState(State::NeedHelo);
  process();
}

void Session::refuse(const Reply& r) {
  if (state_ == State::Closed) return;
  send(r);
  closeNow();
}

void Session::shutdown() { refuse(reply(ReplyId::ShuttingDown, settings_.hostname)); }

void Session::timeout() { refuse(reply(ReplyId::Timeout, settings_.hostname)); }

void Session::feed(std::string_view bytes) {
  take(bytes);
  run();
}

void Session::take(std::string_view bytes) {
  // Between STARTTLS and the end of the handshake nothing may be taken from
  // the plaintext stream (CVE-2011-0411).
  if (state_ == State::Closed || state_ == State::StartingTls) return;
  in_.append(bytes);
}

void Session::run() {
  if (state_ == State::Closed || state_ == State::StartingTls) return;
  process();
}

void Session::messageDone(const Reply& r) {
  if (state_ == State::Closed) return;
  if (state_ != State::Committing) fatal("smtp: messageDone() without a message");
  sendPerRecipient(r);
  resetTransaction();
  setState(State::Idle);
  process();
}

void Session::messageDone(const std::vector<Reply>& replies) {
  if (state_ == State::Closed) return;
  if (state_ != State::Committing) fatal("smtp: messageDone() without a message");
  const size_t want = settings_.mode == Mode::Lmtp ? env_.recipients.size() : 1;
  if (replies.size() != want)
    fatal("smtp: messageDone() with %zu replies for %zu", replies.size(), want);
  for (const Reply& r : replies) send(r);
  resetTransaction();
  setState(State::Idle);
  process();
}

void Session::tlsStarted() {
  if (state_ == State::Closed) return;
  if (state_ != State::StartingTls) fatal("smtp: tlsStarted() without STARTTLS");
  // RFC 3207 §4.2: forget everything learnt before TLS.
  Envelope fresh;
  fresh.tls = true;
  fresh.clientAddress = settings_.clientAddress;
  env_ = std::move(fresh);
  in_.clear();
  pos_ = scanned_ = 0;
  discardingLine_ = false;
  setState(State::NeedHelo);
  process();
}

void Session::authChallenge(std::string_view raw) {
  if (state_ == State::Closed) return;
  if (state_ != State::Authenticating) fatal("smtp: authChallenge() without an AUTH exchange");
  send(reply(ReplyId::AuthChallenge, base64Encode(raw)));
  setState(State::AuthResponse);
  process();
}

void Session::authSucceeded(std::string user) {
  if (state_ == State::Closed) return;
  if (state_ != State::Authenticating) fatal("smtp: authSucceeded() without an AUTH exchange");
  env_.authUser = std::move(user);
  send(reply(ReplyId::AuthOk));
  setState(State::Idle);
  process();
}

void Session::authFailed(const Reply& r) {
  if (state_ == State::Closed) return;
  if (state_ != State::Authenticating) fatal("smtp: authFailed() without an AUTH exchange");
  checkPolicyReply(r);
  setState(State::Idle);
  if (r.code == 421) {
    send(r);
    closeNow();
    return;
  }
  fail(r);
  process();
}

// The engine gives up the exchange ('*', a bad or overlong line): the glue
// forgets it.
void Session::endAuth() {
  setState(State::Idle);
  io_.authAbort();
}

void Session::peerClosed() {
  if (state_ == State::Closed) return;
  if (state_ == State::Authenticating || state_ == State::AuthResponse) io_.authAbort();
  abortMessage();
  out_.clear();
  in_.clear();
  pos_ = scanned_ = 0;
  setState(State::Closed);
}

std::chrono::seconds Session::timeoutNow() const {
  return state_ == State::Data || state_ == State::Chunk ? settings_.dataTimeout
                                                         : settings_.commandTimeout;
}

// ---- Input ----

void Session::process() {
  if (processing_) return;  // a callback called back in; the outer loop goes on
  processing_ = true;
  while (true) {
    const std::string_view in = std::string_view(in_).substr(pos_);
    bool more = false;
    switch (state_) {
      case State::NeedHelo:
      case State::Idle:
      case State::Mail:
      case State::Chunked:
      case State::AuthResponse:
        more = readCommand(in);
        break;
      case State::Data:
        more = readData(in);
        break;
      case State::Chunk:
        more = readChunk(in);
        break;
      case State::Connected:
      case State::Committing:
      case State::StartingTls:
      case State::Authenticating:
      case State::Closed:
        break;
    }
    if (!more) break;
  }
  if (state_ != State::Closed) {
    flushData();
    flush();
  }
  if (pos_ > 0) {
    in_.erase(0, pos_);
    pos_ = 0;
  }
  processing_ = false;
}

bool Session::readCommand(std::string_view in) {
  // Submission reads up to RFC 4954's AUTH line length; other commands are
  // held to maxCommandLine once complete.
  const size_t limit = settings_.mode == Mode::Submission
                           ? std::max(settings_.maxCommandLine, kMaxAuthLine)
                           : settings_.maxCommandLine;
  const bool authLineExpected = state_ == State::AuthResponse;
  // A line past the limit; in an AUTH exchange it also ends the exchange.
  auto refuseLongLine = [&] {
    if (authLineExpected) {
      endAuth();
      fail(reply(ReplyId::AuthLineTooLong));
    } else {
      fail(reply(ReplyId::LineTooLong));
    }
    return true;
  };
  if (discardingLine_) {
    size_t lf = in.find('\n');
    if (lf == std::string_view::npos) {
      pos_ += in.size();
      return false;
    }
    pos_ += lf + 1;
    discardingLine_ = false;
    return refuseLongLine();
  }
  size_t lf = in.find('\n', scanned_);
  if (lf == std::string_view::npos) {
    if (in.size() >= limit) {
      // Too long already: do not keep it, skip to its end.
      discardingLine_ = true;
      pos_ += in.size();
      scanned_ = 0;
    } else {
      scanned_ = in.size();
    }
    return false;
  }
  scanned_ = 0;
  pos_ += lf + 1;
  if (lf + 1 > limit) return refuseLongLine();
  std::string_view line = in.substr(0, lf);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (authLineExpected) {
    authLine(line);
    return true;
  }
  if (lf + 1 > settings_.maxCommandLine &&
      !(line.size() >= 5 && iequals(line.substr(0, 5), "AUTH "))) {
    fail(reply(ReplyId::LineTooLong));
    return true;
  }
  command(std::string(line));
  return true;
}

// One line of an AUTH exchange (RFC 4954 §4): "*" cancels, anything else
// is base64 (an empty line is an empty response).
void Session::authLine(std::string_view line) {
  if (line == "*") {
    endAuth();
    fail(reply(ReplyId::AuthCancelled));
    return;
  }
  auto decoded = base64Decode(line);
  if (!decoded) {
    endAuth();
    fail(reply(ReplyId::AuthBadBase64));
    return;
  }
  setState(State::Authenticating);
  io_.authResponse(std::move(*decoded));  // may answer at once
}

void Session::command(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      fail(reply(ReplyId::BadCharacter));
      return;
    }
  }
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  Line line;
  size_t sp = text.find(' ');
  line.verb = std::string(text.substr(0, sp));
  if (sp != std::string_view::npos) {
    std::string_view args = text.substr(sp);
    while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
    line.args = std::string(args);
  }
  const Spec* spec = findCommand(line.verb);
  if (spec == nullptr) {
    fail(reply(ReplyId::UnknownCommand));
    return;
  }
  if ((spec->modes & modeBit(settings_.mode)) == 0) {
    fail(reply(spec->wrongMode));
    return;
  }
  // A BDAT's octets follow its line whatever we think of it: learn their
  // count first, so that a refused chunk is drained rather than executed.
  if (spec->chunk) {
    auto words = splitAny(line.args, " ");
    std::optional<uint64_t> size = words.empty() ? std::nullopt : parseU64(words[0]);
    if (!size || words.size() > 2 || (words.size() == 2 && !iequals(words[1], "LAST"))) {
      fail(reply(ReplyId::SyntaxBdat));
      return;
    }
    line.chunkSizeKnown = true;
    line.chunkSize = *size;
    line.chunkLast = words.size() == 2;
  }
  std::optional<Reply> refusal;
  if (settings_.requireTls && !env_.tls && !spec->beforeTls) {
    refusal = reply(ReplyId::TlsRequired);
  } else if (spec->needsHelo && state_ == State::NeedHelo) {
    refusal = reply(settings_.mode == Mode::Lmtp ? ReplyId::NeedLhlo : ReplyId::NeedHelo);
  } else if (spec->needsAuth && settings_.mode == Mode::Submission && settings_.requireAuth &&
             env_.authUser.empty()) {
    refusal = reply(ReplyId::AuthRequired);
  } else {
    refusal = (this->*spec->check)(line);
  }
  if (refusal) {
    if (line.chunkSizeKnown) {
      startChunk(line.chunkSize, line.chunkLast, std::move(refusal));
    } else {
      fail(*refusal);
    }
    return;
  }
  (this->*spec->proceed)(line);
  if (spec->lastInGroup) flush();
}

bool Session::readData(std::string_view in) {
  if (in.empty()) return false;
  // A bounded piece at a time, so that a large feed() is passed on in
  // pieces rather than copied whole.
  const std::string_view part = in.substr(0, kDataPiece);
  const size_t before = data_.size();
  pos_ += dot_.decode(part, data_);
  absorb(before, dot_.sawBareLineEnding());
  if (state_ == State::Closed) return false;
  if (dot_.done()) {
    finishMessage();
    return true;
  }
  return part.size() < in.size();
}

bool Session::readChunk(std::string_view in) {
  if (chunkLeft_ > 0) {
    if (in.empty()) return false;
    const size_t take =
        static_cast<size_t>(std::min<uint64_t>(chunkLeft_, std::min(in.size(), kDataPiece)));
    pos_ += take;
    chunkLeft_ -= take;
    if (!chunkFailure_) {
      const size_t before = data_.size();
      chunk_.decode(in.substr(0, take), data_);
      absorb(before, chunk_.sawBareLineEnding());
    }
    if (state_ == State::Closed) return false;
    if (chunkLeft_ > 0) return take < in.size();
  }
  finishChunk();
  return true;
}

// Accounts for the content appended to data_ since `before`: the size limit
// and the bare line ending rule. A message found bad is aborted at once and
// the rest of it drained; the reply waits for its end.
void Session::absorb(size_t before, bool bare) {
  if (messageOpen_) {
    messageSize_ += data_.size() - before;
    if (settings_.maxMessageSize != 0 && messageSize_ > settings_.maxMessageSize) {
      tooBig_ = true;
      abortMessage();
    } else if (bare && !settings_.normalizeBareLf) {
      abortMessage();
    }
  }
  if (!messageOpen_) {
    data_.clear();
  } else if (data_.size() >= kDataPiece) {
    flushData();
  }
}

void Session::startChunk(uint64_t size, bool last, std::optional<Reply> failure) {
  chunkLeft_ = chunkSize_ = size;
  chunkLast_ = last;
  chunkFailure_ = std::move(failure);
  if (chunkFailure_) chunkReturn_ = state_;
  setState(State::Chunk);
}

void Session::finishChunk() {
  if (chunkFailure_) {
    Reply r = std::move(*chunkFailure_);
    chunkFailure_.reset();
    setState(chunkReturn_);
    fail(r);
    return;
  }
  if (chunkLast_) {
    const size_t before = data_.size();
    chunk_.finish(data_);
    absorb(before, chunk_.sawBareLineEnding());
    if (state_ == State::Closed) return;
    finishMessage();
    return;
  }
  if (tooBig_) {
    // RFC 3030 §2: a failed chunk ends the transaction.
    send(reply(ReplyId::MessageTooBig));
    resetTransaction();
    setState(State::Idle);
    return;
  }
  send(reply(ReplyId::ChunkOk, std::to_string(chunkSize_)));
  setState(State::Chunked);
}

void Session::finishMessage() {
  const bool bare = state_ == State::Data ? dot_.sawBareLineEnding() : chunk_.sawBareLineEnding();
  if (tooBig_) {
    rejectMessage(reply(ReplyId::MessageTooBig));
  } else if (bare && !settings_.normalizeBareLf) {
    rejectMessage(reply(ReplyId::BareLineEnding));
  } else {
    flushData();
    messageOpen_ = false;
    setState(State::Committing);
    io_.messageEnd();  // may call messageDone() at once: nothing after this
  }
}

void Session::rejectMessage(const Reply& r) {
  abortMessage();
  sendPerRecipient(r);
  resetTransaction();
  setState(State::Idle);
}

// ---- Output and transaction helpers ----

void Session::send(const Reply& r) { out_ += render(r); }

// LMTP answers the end of a message once per accepted recipient (RFC 2033
// §4.2); SMTP once.
void Session::sendPerRecipient(const Reply& r) {
  size_t n = settings_.mode == Mode::Lmtp ? std::max<size_t>(1, env_.recipients.size()) : 1;
  for (size_t i = 0; i < n; ++i) send(r);
}

void Session::fail(const Reply& r) {
  if (countsAsError(r) && ++errors_ > settings_.maxErrors) {
    send(reply(ReplyId::TooManyErrors, settings_.hostname));
    closeNow();
    return;
  }
  send(r);
}

void Session::flush() {
  if (out_.empty()) return;
  std::string bytes;
  bytes.swap(out_);
  io_.send(bytes);
}

void Session::flushData() {
  if (data_.empty()) return;
  if (messageOpen_) io_.messageData(data_);
  data_.clear();
}

void Session::openMessage() {
  messageOpen_ = true;
  messageSize_ = 0;
  tooBig_ = false;
  data_.clear();
  io_.messageBegin(env_);
}

void Session::abortMessage() {
  data_.clear();
  if (!messageOpen_) return;
  messageOpen_ = false;
  io_.messageAbort();
}

void Session::resetTransaction() {
  abortMessage();
  Envelope fresh;
  fresh.helo = std::move(env_.helo);
  fresh.esmtp = env_.esmtp;
  fresh.tls = env_.tls;
  fresh.clientAddress = std::move(env_.clientAddress);
  fresh.authUser = std::move(env_.authUser);  // RFC 4954: until the session ends
  env_ = std::move(fresh);
  tooBig_ = false;
  messageSize_ = 0;
}

void Session::closeNow() {
  if (state_ == State::Authenticating || state_ == State::AuthResponse) io_.authAbort();
  abortMessage();
  flush();
  if (state_ == State::Closed) return;  // send() reported the peer gone
  setState(State::Closed);
  in_.clear();
  pos_ = scanned_ = 0;
  io_.close();
}

std::vector<std::string> Session::capabilities() const {
  std::vector<std::string> caps = {"PIPELINING"};
  caps.push_back(settings_.maxMessageSize != 0 ? "SIZE " + std::to_string(settings_.maxMessageSize)
                                               : "SIZE");
  caps.push_back("8BITMIME");
  if (settings_.binaryMime) caps.push_back("BINARYMIME");
  caps.push_back("ENHANCEDSTATUSCODES");
  caps.push_back("SMTPUTF8");
  caps.push_back("CHUNKING");
  caps.push_back("DSN");
  if (settings_.mode != Mode::Lmtp && settings_.tlsAvailable && !env_.tls)
    caps.push_back("STARTTLS");
  if (settings_.mode == Mode::Submission && (env_.tls || settings_.authWithoutTls)) {
    std::vector<std::string> mechs = io_.authMechanisms(env_);
    if (!mechs.empty()) {
      std::string auth = "AUTH";
      for (const auto& m : mechs) auth += " " + m;
      caps.push_back(std::move(auth));
    }
  }
  return caps;
}

// ---- Commands: check (syntax and state) ----

std::optional<Reply> Session::checkHelo(Line& line) {
  if (line.args.empty() || line.args.size() > mail::kMaxDomain) return reply(ReplyId::SyntaxHelo);
  for (unsigned char c : line.args)
    if (c < 0x20 || c > 0x7e) return reply(ReplyId::SyntaxHelo);
  return std::nullopt;
}

std::optional<Reply> Session::checkMail(Line& line) {
  if (state_ == State::Mail || state_ == State::Chunked) return reply(ReplyId::NestedMail);
  auto parsed = mail::parseMailArguments(line.args, env_.esmtp);
  if (!parsed) return addressRefusal(parsed.error(), true);
  const mail::MailParameters& p = parsed->params;
  if (p.body == mail::Body::BinaryMime && !settings_.binaryMime)
    return reply(ReplyId::UnknownParameter);
  if (p.size && settings_.maxMessageSize != 0 && *p.size > settings_.maxMessageSize)
    return reply(ReplyId::MessageTooBig);
  line.mail = std::move(parsed).value();
  return std::nullopt;
}

std::optional<Reply> Session::checkRcpt(Line& line) {
  if (state_ == State::Chunked) return reply(ReplyId::BdatInProgress);
  if (state_ != State::Mail) return reply(ReplyId::NeedMail);
  auto parsed = mail::parseRcptArguments(line.args, env_.esmtp, env_.smtputf8);
  if (!parsed) return addressRefusal(parsed.error(), false);
  if (env_.recipients.size() >= settings_.maxRecipients) return reply(ReplyId::TooManyRecipients);
  line.rcpt = std::move(parsed).value();
  return std::nullopt;
}

std::optional<Reply> Session::checkData(Line& line) {
  if (!line.args.empty()) return reply(ReplyId::NoArguments, "DATA");
  if (state_ == State::Chunked) return reply(ReplyId::BdatInProgress);
  if (state_ != State::Mail) return reply(ReplyId::NeedMail);
  if (env_.recipients.empty())
    return reply(settings_.mode == Mode::Lmtp ? ReplyId::NeedRcpt : ReplyId::NoValidRecipients);
  if (env_.body == mail::Body::BinaryMime) return reply(ReplyId::BinaryNeedsBdat);
  return std::nullopt;
}

std::optional<Reply> Session::checkBdat(Line&) {
  if (state_ == State::Chunked) return std::nullopt;
  if (state_ != State::Mail) return reply(ReplyId::NeedMail);
  if (env_.recipients.empty())
    return reply(settings_.mode == Mode::Lmtp ? ReplyId::NeedRcpt : ReplyId::NoValidRecipients);
  return std::nullopt;
}

std::optional<Reply> Session::checkNoArguments(Line& line) {
  if (!line.args.empty()) return reply(ReplyId::NoArguments, toUpper(line.verb));
  return std::nullopt;
}

std::optional<Reply> Session::checkNothing(Line&) { return std::nullopt; }

std::optional<Reply> Session::checkVrfy(Line& line) {
  if (line.args.empty()) return reply(ReplyId::SyntaxVrfy);
  return std::nullopt;
}

std::optional<Reply> Session::checkStartTls(Line& line) {
  if (!line.args.empty()) return reply(ReplyId::NoArguments, "STARTTLS");
  if (env_.tls) return reply(ReplyId::TlsAlreadyActive);
  if (!settings_.tlsAvailable) return reply(ReplyId::TlsNotAvailable);
  if (!env_.esmtp) return reply(ReplyId::NeedEhlo);
  if (state_ == State::Mail || state_ == State::Chunked)
    return reply(ReplyId::TransactionInProgress);
  return std::nullopt;
}

std::optional<Reply> Session::checkNotImplemented(Line&) { return reply(ReplyId::NotImplemented); }

std::optional<Reply> Session::checkAuth(Line& line) {
  if (!env_.esmtp) return reply(ReplyId::NeedEhlo);
  if (!env_.authUser.empty()) return reply(ReplyId::AlreadyAuthenticated);
  if (state_ == State::Mail || state_ == State::Chunked)
    return reply(ReplyId::TransactionInProgress);
  if (!env_.tls && !settings_.authWithoutTls) return reply(ReplyId::AuthNeedsTls);
  std::vector<std::string> mechs = io_.authMechanisms(env_);
  if (mechs.empty()) return reply(ReplyId::AuthNotAvailable);
  auto words = splitAny(line.args, " ");
  if (words.empty() || words.size() > 2) return reply(ReplyId::SyntaxAuth);
  std::string mech = toUpper(words[0]);
  if (std::find(mechs.begin(), mechs.end(), mech) == mechs.end())
    return reply(ReplyId::AuthUnknownMechanism);
  if (words.size() == 2) {
    if (words[1] == "=") {
      line.authInitial = std::string();
    } else {
      auto decoded = base64Decode(words[1]);
      if (!decoded || decoded->empty()) return reply(ReplyId::AuthBadBase64);
      line.authInitial = std::move(*decoded);
    }
  }
  line.authMechanism = std::move(mech);
  return std::nullopt;
}

// ---- Commands: proceed ----

void Session::greeting(const Line& line, bool esmtp) {
  resetTransaction();  // RFC 5321 §4.1.4: HELO/EHLO reset the state
  env_.helo = line.args;
  env_.esmtp = esmtp;
  if (auto refusal = policy_.checkHelo(env_)) {
    checkPolicyReply(*refusal);
    env_.helo.clear();
    env_.esmtp = false;
    setState(State::NeedHelo);
    fail(*refusal);
    return;
  }
  setState(State::Idle);
  if (esmtp) {
    send(capabilityReply(settings_.hostname, capabilities()));
  } else {
    send(reply(ReplyId::HeloOk, settings_.hostname));
  }
}

void Session::doEhlo(Line& line) { greeting(line, true); }

void Session::doHelo(Line& line) { greeting(line, false); }

void Session::doMail(Line& line) {
  mail::ReversePath& rp = *line.mail;
  env_.from = std::move(rp.address);
  env_.nullSender = rp.null;
  env_.fromRaw = std::move(rp.raw);
  env_.body = rp.params.body;
  env_.smtputf8 = rp.params.smtputf8;
  env_.declaredSize = rp.params.size;
  env_.ret = rp.params.ret;
  env_.envid = std::move(rp.params.envid);
  env_.auth = std::move(rp.params.auth);
  if (auto refusal = policy_.checkSender(env_, env_.from)) {
    checkPolicyReply(*refusal);
    resetTransaction();
    fail(*refusal);
    return;
  }
  setState(State::Mail);
  send(reply(ReplyId::SenderOk));
}

void Session::doRcpt(Line& line) {
  mail::ForwardPath& fp = *line.rcpt;
  if (auto refusal = policy_.checkRecipient(env_, fp.address)) {
    checkPolicyReply(*refusal);
    fail(*refusal);
    return;
  }
  Recipient r;
  r.address = std::move(fp.address);
  r.raw = std::move(fp.raw);
  r.notify = fp.params.notify;
  r.orcptType = std::move(fp.params.orcptType);
  r.orcpt = std::move(fp.params.orcpt);
  env_.recipients.push_back(std::move(r));
  send(reply(ReplyId::RecipientOk));
}

void Session::doData(Line&) {
  dot_.reset();
  openMessage();
  send(reply(ReplyId::StartData));
  setState(State::Data);
}

void Session::doBdat(Line& line) {
  if (state_ == State::Mail) {
    chunk_.reset(env_.body == mail::Body::BinaryMime);
    openMessage();
  }
  startChunk(line.chunkSize, line.chunkLast, std::nullopt);
}

void Session::doRset(Line&) {
  resetTransaction();
  if (state_ != State::NeedHelo) setState(State::Idle);
  send(reply(ReplyId::Ok));
}

void Session::doNoop(Line&) { send(reply(ReplyId::Ok)); }

void Session::doQuit(Line&) {
  send(reply(ReplyId::Closing));
  closeNow();
}

void Session::doVrfy(Line&) { send(reply(ReplyId::CannotVrfy)); }

void Session::doHelp(Line&) { send(reply(ReplyId::Help)); }

void Session::doStartTls(Line&) {
  send(reply(ReplyId::ReadyToStartTls));
  flush();
  if (state_ == State::Closed) return;
  // Whatever followed STARTTLS in the plaintext stream is dropped unread.
  in_.clear();
  pos_ = scanned_ = 0;
  setState(State::StartingTls);
  io_.startTls();
}

void Session::doAuth(Line& line) {
  setState(State::Authenticating);
  io_.authStart(line.authMechanism, std::move(line.authInitial));  // may answer at once
}

void Session::doNonSmtp(Line&) {
  send(reply(ReplyId::NonSmtpCommand, settings_.hostname));
  closeNow();
}

}  // namespace yubin::smtp
