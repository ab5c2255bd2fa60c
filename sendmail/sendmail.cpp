// yubin-sendmail: the sendmail(8) command of Yubin (also installed as
// /usr/sbin/sendmail and mailq). Reads a message on stdin (or an SMTP
// session with -bs) and leaves it in the maildrop, where mtad's pickup
// queues it at once, or when mtad next starts. Root writes the maildrop
// directly; everyone else goes through the set-group-ID yubin-postdrop.
// -bp (mailq) runs yubinctl under the name mailq (the queue in Postfix's
// mailq format, through the master).
//
// Trust: runs as the invoking user with no privilege; everything it writes
// is checked again by yubin-postdrop and mtad's pickup, which takes the
// sender from the drop file's owner, not from what this program says.
// Standards: the sendmail(8) interface; RFC 5321 for -bs (through the
// shared SMTP engine); exit codes per sysexits(3).
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "mtad/maildrop.hpp"
#include "sendmail/message.hpp"
#include "sendmail/options.hpp"
#include "smtp/session.hpp"
#include "yubin_build_config.h"

namespace yubin::sendmail {
namespace {

struct Context {
  std::string maildrop;
  std::string spoolDir;
  std::string postdrop;
  std::string dropGroup;
  std::string qualify;
  std::string hostname;
  std::string configPath;
  // -bs: the SMTP server timeouts of mtad's port 25 ([mtad] command_timeout
  // and data_timeout), as Postfix applies smtpd's to `sendmail -bs`.
  std::chrono::seconds commandTimeout{300};
  std::chrono::seconds dataTimeout{180};
};

int fail(int code, const std::string& what) {
  fprintf(stderr, "yubin-sendmail: %s\n", what.c_str());
  return code;
}

// Root only: the maildrop as mtad's pickup would create it, so that mail
// can be dropped before mtad ever ran.
void ensureMaildrop(const Context& ctx) {
  struct stat st;
  if (stat(ctx.maildrop.c_str(), &st) == 0 || errno != ENOENT) return;
  struct stat spool;
  if (stat(ctx.spoolDir.c_str(), &spool) != 0) return;
  if (mkdir(ctx.maildrop.c_str(), 0700) != 0) return;
  gid_t gid = spool.st_gid;
  if (struct group* g = getgrnam(ctx.dropGroup.c_str())) gid = g->gr_gid;
  if (chown(ctx.maildrop.c_str(), spool.st_uid, gid) != 0 ||
      chmod(ctx.maildrop.c_str(), 01730) != 0)
    fprintf(stderr, "yubin-sendmail: cannot set up %s: %s\n", ctx.maildrop.c_str(),
            strerror(errno));
}

// Runs yubin-postdrop with `data` on its stdin; its exit status.
int runPostdrop(const Context& ctx, std::string_view data) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return fail(kExOsErr, std::string("pipe: ") + strerror(errno));
  pid_t pid = fork();
  if (pid < 0) return fail(kExOsErr, std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    dup2(pipefd[0], 0);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 1);  // the helper prints the file name
    const char* argv[] = {ctx.postdrop.c_str(), ctx.maildrop.c_str(), nullptr};
    // A clean environment; only a sanitizer build's options pass (the test
    // suite turns leak detection off for the set-group-ID helper, which
    // LeakSanitizer cannot inspect).
    std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
    for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"})
      if (const char* v = getenv(name)) env.push_back(std::string(name) + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    execve(ctx.postdrop.c_str(), const_cast<char* const*>(argv), envp.data());
    fprintf(stderr, "yubin-sendmail: cannot run %s: %s\n", ctx.postdrop.c_str(), strerror(errno));
    _exit(kExUnavailable);
  }
  close(pipefd[0]);
  signal(SIGPIPE, SIG_IGN);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(pipefd[1], data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the helper refused early: its status says why
    off += static_cast<size_t>(n);
  }
  close(pipefd[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return fail(kExSoftware, ctx.postdrop + " died");
}

// Drops one message; kExOk or the exit code, with the reason on stderr.
int drop(const Context& ctx, mtad::DropHeader header, std::string_view message) {
  header.size = message.size();
  auto head = mtad::encodeDropHeader(header);
  if (!head) return fail(kExDataErr, head.error().message);
  std::string data = *head;
  data.append(message);
  if (data.size() > mtad::kMaxDropFile) return fail(kExDataErr, "message too large");
  if (geteuid() == 0) {
    ensureMaildrop(ctx);
    auto name = mtad::writeDropFile(ctx.maildrop, data);
    if (!name) return fail(kExTempFail, name.error().message);
    return kExOk;
  }
  return runPostdrop(ctx, data);
}

int deliver(const Context& ctx, const Options& o) {
  mtad::DropHeader h;
  if (o.sender) {
    auto s = parseSenderArgument(*o.sender, ctx.qualify);
    if (!s) return fail(kExDataErr, "bad sender address: " + s.error().message);
    h.sender = *s;
  }
  if (o.fullName) h.fullName = *o.fullName;
  for (const auto& r : o.recipients) {
    auto list = parseRecipientArgument(r, ctx.qualify);
    if (!list) return fail(kExDataErr, list.error().message);
    for (auto& a : *list) h.recipients.push_back(std::move(a));
  }
  if (!o.extract && h.recipients.empty())
    return fail(kExUsage, "no recipient given (name them or use -t)");

  std::string message;
  InputReader reader(o.ignoreDots);
  char buf[65536];
  while (!reader.ended()) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(kExOsErr, std::string("reading the message: ") + strerror(errno));
    if (n == 0) break;
    reader.feed(std::string_view(buf, static_cast<size_t>(n)), message);
    if (message.size() > mtad::kMaxDropFile) return fail(kExDataErr, "message too large");
  }
  reader.finish(message);

  if (o.extract) {
    auto x = extractRecipients(message, ctx.qualify);
    if (!x) return fail(kExDataErr, x.error().message);
    for (auto& a : x->recipients) h.recipients.push_back(std::move(a));
    message = std::move(x->message);
    if (h.recipients.empty()) return fail(kExUsage, "no recipient addresses found in the header");
  }
  return drop(ctx, std::move(h), message);
}

// -bs: the SMTP engine on stdin/stdout; each message is dropped when its
// data ends, and the 250 comes after the maildrop has it.
class StdioSmtp : public smtp::Io, public smtp::Policy {
 public:
  explicit StdioSmtp(const Context& ctx) : ctx_(ctx), session_(settings(ctx), *this, *this) {}

  // The session until QUIT, end of input, or an idle timeout: a client
  // silent for longer than the engine's timeout for the current state gets
  // 421 4.4.2 and the program exits kExTempFail. The deadline is the time
  // since the last input, not since the last poll wakeup.
  int run() {
    session_.greet();
    char buf[65536];
    auto lastInput = std::chrono::steady_clock::now();
    while (!done_ && !session_.closed()) {
      auto deadline = lastInput + session_.timeoutNow();
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        session_.timeout();
        return kExTempFail;
      }
      pollfd in = {0, POLLIN, 0};
      int r = poll(&in, 1, static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX)));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return fail(kExOsErr, std::string("poll: ") + strerror(errno));
      if (r == 0) continue;  // the deadline is checked at the top
      ssize_t n = read(0, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        session_.peerClosed();
        break;
      }
      lastInput = std::chrono::steady_clock::now();
      session_.feed(std::string_view(buf, static_cast<size_t>(n)));
    }
    return kExOk;
  }

  std::optional<smtp::Reply> checkSender(const smtp::Envelope&, const mail::Address&) override {
    return std::nullopt;  // the pickup decides what sender is used
  }
  std::optional<smtp::Reply> checkRecipient(const smtp::Envelope&, const mail::Address&) override {
    return std::nullopt;  // mtad checks local users when it queues
  }

  void send(std::string_view bytes) override {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = write(1, bytes.data() + off, bytes.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        done_ = true;
        return;
      }
      off += static_cast<size_t>(n);
    }
  }
  void startTls() override {}
  void close() override { done_ = true; }
  void messageBegin(const smtp::Envelope&) override { message_.clear(); }
  void messageData(std::string_view bytes) override { message_.append(bytes); }
  void messageEnd() override {
    const smtp::Envelope& env = session_.envelope();
    mtad::DropHeader h;
    h.sender = env.nullSender ? std::string("<>") : env.from.str();
    for (const auto& r : env.recipients)
      h.recipients.push_back(r.address.isPostmaster() ? "postmaster@" + ctx_.qualify
                                                      : r.address.str());
    int rc = drop(ctx_, std::move(h), message_);
    message_.clear();
    session_.messageDone(rc == kExOk ? smtp::reply(smtp::ReplyId::Queued, "maildrop")
                                     : smtp::reply(smtp::ReplyId::LocalError));
  }
  void messageAbort() override { message_.clear(); }

 private:
  static smtp::Settings settings(const Context& ctx) {
    smtp::Settings s;
    s.mode = smtp::Mode::Smtp;
    s.hostname = ctx.hostname;
    s.maxMessageSize = mtad::kMaxDropFile - (1 << 20);
    s.normalizeBareLf = true;
    s.clientAddress = "local";
    s.commandTimeout = ctx.commandTimeout;
    s.dataTimeout = ctx.dataTimeout;
    return s;
  }
  const Context& ctx_;
  smtp::Session session_;
  std::string message_;
  bool done_ = false;
};

int listQueue(const Context& ctx) {
  const char* env = getenv("YUBINCTL");
  std::string ctl = env && *env ? env : YUBIN_SBINDIR "/yubinctl";
  // yubinctl called "mailq" prints the queue in Postfix's format.
  std::vector<std::string> args = {"mailq", "-c", ctx.configPath};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(ctl.c_str(), argv.data());
  return fail(kExUnavailable, "cannot run " + ctl + ": " + strerror(errno));
}

int run(int argc, char** argv) {
  std::string prog = argc > 0 ? argv[0] : "sendmail";
  if (auto slash = prog.rfind('/'); slash != std::string::npos) prog = prog.substr(slash + 1);
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  auto o = parseOptions(args, prog);
  if (!o) return fail(kExUsage, o.error().message);
  if (o->mode == Mode::Unsupported)
    return fail(kExUnavailable, "mode " + o->unsupported + " is not supported");

  Context ctx;
  ctx.configPath = o->configPath.empty() ? YUBIN_SYSCONFDIR "/yubin.conf" : o->configPath;
  auto cfg = config::Config::load(ctx.configPath);
  if (!cfg) return fail(kExConfig, cfg.error().message);
  ctx.spoolDir = cfg->str("global", "spool_dir");
  ctx.maildrop = ctx.spoolDir + "/maildrop";
  ctx.postdrop = cfg->str("sendmail", "postdrop");
  ctx.dropGroup = cfg->str("sendmail", "maildrop_group");
  ctx.hostname = cfg->hostname();
  ctx.qualify = cfg->str("sendmail", "qualify_domain");
  if (ctx.qualify.empty()) ctx.qualify = ctx.hostname;
  ctx.commandTimeout = cfg->duration("mtad", "command_timeout");
  ctx.dataTimeout = cfg->duration("mtad", "data_timeout");

  switch (o->mode) {
    case Mode::ListQueue:
      return listQueue(ctx);
    case Mode::Smtp:
      return StdioSmtp(ctx).run();
    default:
      return deliver(ctx, *o);
  }
}

}  // namespace
}  // namespace yubin::sendmail

int main(int argc, char** argv) { return yubin::sendmail::run(argc, argv); }
