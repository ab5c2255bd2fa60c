// The delivery command; see lda.hpp.
#include "mdad/lda.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "auth/directory.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "config/config.hpp"
#include "mail/address.hpp"
#include "mdad/delivery.hpp"
#include "mdad/spool.hpp"
#include "service/privdrop.hpp"
#include "store/mbox.hpp"
#include "yubin_build_config.h"

namespace yubin::mdad {
namespace {

// A line of the leading run longer than this ends the filtering: the
// filter's memory stays bounded whatever the input.
constexpr size_t kMaxLeadingLine = 64 * 1024;
constexpr size_t kReadChunk = 64 * 1024;

std::string_view fieldName(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return {};
  std::string_view name = line.substr(0, colon);
  for (unsigned char c : name)
    if (c <= 0x20 || c >= 0x7f) return {};  // not an RFC 5322 field name
  return name;
}

bool isBlankLine(std::string_view l) { return l == "\n" || l == "\r\n"; }

}  // namespace

// ---- options -----------------------------------------------------------

bool isLdaInvocation(const std::vector<std::string>& args) {
  for (const std::string& a : args)
    if (a == "-d") return true;
  return false;
}

Result<LdaOptions> parseLdaOptions(const std::vector<std::string>& args) {
  LdaOptions o;
  bool haveRecipient = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a != "-d" && a != "-f" && a != "-a" && a != "-c") {
      if (!a.empty() && a[0] == '-') return Error{"unknown option '" + a + "'"};
      return Error{"unexpected argument '" + a + "'"};
    }
    if (i + 1 >= args.size()) return Error{"option " + a + " needs a value"};
    const std::string& v = args[++i];
    if (a == "-d") {
      if (haveRecipient) return Error{"option -d given twice"};
      if (v.empty()) return Error{"option -d needs an address"};
      o.recipient = v;
      haveRecipient = true;
    } else if (a == "-f") {
      if (o.sender) return Error{"option -f given twice"};
      o.sender = v;  // "" is the null sender
    } else if (a == "-a") {
      o.originalRecipient = v;
    } else {
      if (v.empty()) return Error{"option -c needs a file"};
      o.configPath = v;
    }
  }
  if (!haveRecipient) return Error{"option -d is required"};
  return o;
}

std::string ldaUsage() {
  return "usage: mdad -d address [-f sender] [-a original-recipient] [-c file] < message\n"
         "  -d address  deliver the message on standard input to address, then exit\n"
         "  -f sender   with -d: the envelope sender (empty for a bounce)\n"
         "  -a address  with -d: the original recipient, for the log\n"
         "Exit status with -d (sysexits.h): 0 delivered, 65 bad message or mail loop,\n"
         "67 unknown user, 73 over quota, 75 try again later, 77/78 config problem.\n";
}

std::string senderFromText(std::string_view text) {
  std::string_view s = trim(text);
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = trim(s.substr(1, s.size() - 2));
  if (s.empty() || iequals(s, "MAILER-DAEMON")) return "";
  return std::string(s);
}

// ---- input filter --------------------------------------------------------

void LdaInputFilter::feed(std::string_view in, std::string& out) {
  while (!in.empty()) {
    if (state_ == State::Pass) {
      out.append(in);
      return;
    }
    size_t nl = in.find('\n');
    size_t n = nl == std::string_view::npos ? in.size() : nl + 1;
    partial_.append(in.substr(0, n));
    in.remove_prefix(n);
    if (nl != std::string_view::npos) {
      std::string l;
      l.swap(partial_);
      line(l, out);
    } else if (partial_.size() > kMaxLeadingLine) {
      giveUp(partial_, out);
      partial_.clear();
    }
  }
}

void LdaInputFilter::finish(std::string& out) {
  if (state_ != State::Pass && !partial_.empty()) {
    std::string l;
    l.swap(partial_);
    line(l, out);
  }
  endField(out);
  state_ = State::Pass;
}

void LdaInputFilter::giveUp(std::string_view rest, std::string& out) {
  dropField_ = false;  // too odd to judge: keep what is pending
  endField(out);
  out.append(rest);
  state_ = State::Pass;
}

void LdaInputFilter::line(std::string_view l, std::string& out) {
  if (l.size() > kMaxLeadingLine) {
    giveUp(l, out);
    return;
  }
  if (state_ == State::Start) {
    state_ = State::Leading;
    if (l.substr(0, 5) == "From ") {
      fromLineSender_ = senderFromText(store::mboxParseFromLine(l).sender);
      return;
    }
  }
  if (!l.empty() && (l[0] == ' ' || l[0] == '\t') && !field_.empty()) {
    field_ += l;
    if (field_.size() > kMaxLeadingLine) giveUp({}, out);
    return;
  }
  endField(out);
  std::string_view name = fieldName(l);
  if (!isBlankLine(l) && (iequals(name, "Return-Path") || iequals(name, "Delivered-To") ||
                          iequals(name, "X-Original-To"))) {
    field_ = l;
    dropField_ = !iequals(name, "X-Original-To");
    if (iequals(name, "Return-Path") && !returnPath_)
      returnPath_ = senderFromText(l.substr(name.size() + 1));
    return;
  }
  out.append(l);
  state_ = State::Pass;
}

void LdaInputFilter::endField(std::string& out) {
  if (!field_.empty() && !dropField_) out += field_;
  field_.clear();
  dropField_ = false;
}

std::optional<std::string> LdaInputFilter::impliedSender() const {
  if (returnPath_) return returnPath_;
  return fromLineSender_;
}

// ---- the command -----------------------------------------------------------

namespace {

int failWith(int code, const std::string& message) {
  YLOG_ERROR("%s", message.c_str());
  std::fprintf(stderr, "mdad: %s\n", message.c_str());
  return code;
}

// The spool file: in [mdad] tmp_dir when this user may write there, else in
// $TMPDIR or /tmp (a caller running mdad as some other user). Both are
// nameless files.
Result<SpoolFile> openSpool(const std::string& dir) {
  auto s = SpoolFile::create(dir);
  if (s) return s;
  const char* tmp = std::getenv("TMPDIR");
  std::string fallback = tmp && *tmp ? tmp : "/tmp";
  YLOG_DEBUG("spool folder not usable, using %s: %s", fallback.c_str(), s.error().message.c_str());
  return SpoolFile::create(fallback);
}

}  // namespace

int runLda(const std::vector<std::string>& args) {
  logInit("mdad", LogTarget::Stderr);
  auto opts = parseLdaOptions(args);
  if (!opts) {
    std::fprintf(stderr, "mdad: %s\n%s", opts.error().message.c_str(), ldaUsage().c_str());
    return kExUsage;
  }
  const std::string configPath = opts->configPath.value_or(YUBIN_SYSCONFDIR "/yubin.conf");
  auto cfg = config::Config::load(configPath);
  if (!cfg) {
    bool denied = ::access(configPath.c_str(), R_OK) != 0 && errno == EACCES;
    std::fprintf(stderr, "mdad: %s\n", cfg.error().message.c_str());
    return denied ? kExNoPerm : kExConfig;
  }
  logInit("mdad", cfg->str("global", "log") == "stderr" ? LogTarget::Stderr : LogTarget::Syslog,
          logLevelFromName(cfg->str("global", "log_level")));

  // Privileges: a caller running as root gets [mdad] user/group, as the
  // daemon does; anyone else delivers as themselves.
  const std::string spoolDir = spoolDirOf(*cfg);
  if (::geteuid() == 0) {
    auto plan = service::planDrop(*cfg, "mdad", 0);
    if (!plan) return failWith(kExConfig, plan.error().message);
    if (!plan->devMode) {
      // The spool folder belongs to the daemon's user; make it if missing.
      if (ensurePrivateDir(spoolDir))
        (void)::chown(spoolDir.c_str(), plan->target.uid, plan->target.gid);
      if (auto st = service::dropPrivileges(*plan); !st)
        return failWith(kExOsErr, "cannot drop privileges: " + st.error().message);
    }
  }

  // The recipient; a bare local part takes the first local domain.
  auto settings = auth::DirectorySettings::fromConfig(*cfg);
  std::string rcptText = opts->recipient;
  if (rcptText.find('@') == std::string::npos) {
    const auto& domains = settings.users.domains.list();
    if (!domains.empty()) rcptText += "@" + domains.front();
  }
  auto rcpt = mail::parseMailbox(rcptText, true);
  if (!rcpt) return failWith(kExDataErr, "bad recipient address '" + opts->recipient + "'");
  const std::string address = rcpt->normalized();

  std::optional<std::string> sender;
  if (opts->sender) {
    std::string s = senderFromText(*opts->sender);
    if (!s.empty()) {
      auto parsed = mail::parseMailbox(s, true);
      if (!parsed) return failWith(kExDataErr, "bad sender address '" + *opts->sender + "'");
      s = parsed->normalized();
    }
    sender = s;
  }

  char idBuf[32];
  std::snprintf(idBuf, sizeof idBuf, "lda.%d", int(::getpid()));
  const std::string logId = idBuf;
  const DeliverySettings ds = DeliverySettings::fromConfig(*cfg);
  auto report = [&](Outcome o) {
    int code = exitCodeFor(o, ds.quotaTemporary);
    if (o != Outcome::Delivered) {
      smtp::Reply r = replyFor(o, ds.quotaTemporary);
      std::fprintf(stderr, "mdad: %s: %d %s %s\n", address.c_str(), r.code, r.enhanced.c_str(),
                   r.text.c_str());
    }
    YLOG_INFO("lda done session=%s rcpt=%s orig=%s outcome=%s exit=%d", logId.c_str(),
              address.c_str(), opts->originalRecipient.c_str(), std::string(outcomeName(o)).c_str(),
              code);
    return code;
  };

  // Unknown recipients are told before the message is read.
  auth::Directory directory(settings);
  if (auto st = directory.reload(); !st) YLOG_WARN("user database: %s", st.error().message.c_str());
  if (auto o = resolutionOutcome(directory.resolve(address))) return report(*o);

  // The message, through the filter, into a nameless spool file.
  auto spool = openSpool(spoolDir);
  if (!spool) return failWith(kExTempFail, spool.error().message);
  const uint64_t maxSize = cfg->size("mdad", "max_message_size");
  LdaInputFilter filter;
  std::string buf(kReadChunk, '\0'), out;
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return failWith(kExTempFail, errnoError("read standard input").message);
    }
    if (n == 0) break;
    out.clear();
    filter.feed(std::string_view(buf.data(), static_cast<size_t>(n)), out);
    spool->append(out);
    if (maxSize != 0 && spool->size() > maxSize) return report(Outcome::TooBig);
  }
  out.clear();
  filter.finish(out);
  spool->append(out);
  if (maxSize != 0 && spool->size() > maxSize) return report(Outcome::TooBig);
  auto source = spool->finish();
  if (!source) {
    YLOG_WARN("spool write failed session=%s error=\"%s\"", logId.c_str(),
              source.error().message.c_str());
    return report(outcomeOfError(source.error()));
  }
  if (auto bad = checkMessage(*source)) return report(*bad);

  Deliverer deliverer(ds);
  Deliverer::Served served;
  std::string from;
  if (sender) {
    from = *sender;
  } else if (auto implied = filter.impliedSender(); implied && !implied->empty()) {
    // Only a well-formed address goes into our Return-Path: field.
    if (auto parsed = mail::parseMailbox(*implied, true)) from = parsed->normalized();
  }
  return report(deliverer.deliverToRecipient(directory, address, *source, from, logId, served));
}

}  // namespace yubin::mdad
