// yubinctl: the admin's command line. A grammar of commands (the table in
// main()) that either talk to yubin-master over its control socket (stop,
// reload, status), start it (start), or work on files (check, user ...).
// Trust: runs as the invoking admin. It decides nothing about who may
// control the suite: the master checks the credentials of the socket peer.
// Exit status: 0 ok, 1 failure, 2 usage error.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "auth/directory.hpp"
#include "base/fs.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "config/config.hpp"
#include "ipc/ipc.hpp"
#include "ctl/convert_cmd.hpp"
#include "ctl/queue_cmd.hpp"
#include "ctl/user_cmd.hpp"
#include "yubin_build_config.h"

namespace yubin::ctl {
namespace {

using namespace std::chrono_literals;

constexpr int kOk = 0, kFail = 1, kUsage = 2;

struct Context {
  std::string configPath = YUBIN_SYSCONFDIR "/yubin.conf";
  std::vector<std::string> args;  // after the command word
};

struct Command {
  const char* name;
  const char* synopsis;  // as in yubinctl(8)
  const char* summary;
  int (*run)(Context&);
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "yubinctl: %s\n", msg.c_str());
  return kFail;
}

int usageError(const std::string& msg) {
  std::fprintf(stderr, "yubinctl: %s (see yubinctl --help)\n", msg.c_str());
  return kUsage;
}

Result<config::Config> loadConfig(const Context& ctx) { return config::Config::load(ctx.configPath); }

// ------------------------------------------------------ control socket --

Result<UniqueFd> connectControl(const config::Config& cfg) {
  const std::string& path = cfg.str("master", "control_socket");
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) return Error{"control socket path too long: " + path};
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errnoError("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED)
      return Error{"yubin-master is not running (nothing listens on " + path + ")", err};
    if (err == EACCES || err == EPERM)
      return Error{"permission denied on " + path +
                       " (root or the admin group may control yubin-master)",
                   err};
    return errnoError("connect " + path, err);
  }
  return fd;
}

// One request, one reply. An ErrorReply becomes an Error.
Result<ipc::Message> ask(const config::Config& cfg, const ipc::Message& req,
                         std::chrono::milliseconds timeout = 10s) {
  auto fd = connectControl(cfg);
  if (!fd) return fd.error();
  if (auto s = ipc::sendMessage(fd->get(), req); !s) {
    // A refused peer may be cut off before it could send: the reason is in
    // the reply, if any.
    ipc::FrameReader r;
    auto m = ipc::receiveMessage(fd->get(), r, 1s);
    if (m && std::holds_alternative<ipc::ErrorReply>(*m))
      return Error{std::get<ipc::ErrorReply>(*m).text};
    return s.error();
  }
  ipc::FrameReader reader;
  auto m = ipc::receiveMessage(fd->get(), reader, timeout);
  if (!m) return m.error();
  if (auto* e = std::get_if<ipc::ErrorReply>(&*m)) return Error{e->text};
  return m;
}

Result<ipc::StatusReply> askStatus(const config::Config& cfg,
                                   std::chrono::milliseconds timeout = 10s) {
  auto m = ask(cfg, ipc::StatusCommand{}, timeout);
  if (!m) return m.error();
  if (auto* s = std::get_if<ipc::StatusReply>(&*m)) return std::move(*s);
  return Error{std::string("unexpected reply ") +
               ipc::typeName(static_cast<uint16_t>(ipc::typeOf(*m)))};
}

// Alive and not a zombie. Works for a process of another user, and for a
// grandchild whose zombie nobody reaps yet.
bool processAlive(pid_t pid) {
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!stat) return false;
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] != 'Z';
}

// Waits for fd to become readable, or for `wait` to pass; the pacing of
// every polling loop here.
void waitReadable(int fd, std::chrono::milliseconds wait) {
  pollfd p{fd, POLLIN, 0};
  ::poll(&p, fd >= 0 ? 1 : 0, static_cast<int>(wait.count()));
}

// ------------------------------------------------------------- output --

std::string formatDuration(uint64_t s) {
  char buf[64];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(s));
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  else if (s < 86400)
    std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60));
  else
    std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                  static_cast<unsigned long long>(s / 3600 % 24));
  return buf;
}

std::string jsonQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out + "\"";
}

std::string statusJson(const ipc::StatusReply& r) {
  std::string out = "{\"master\":{\"pid\":" + std::to_string(r.masterPid) +
                    ",\"uptime\":" + std::to_string(r.masterUptimeSeconds) +
                    ",\"version\":" + jsonQuote(r.version) + "},\"daemons\":[";
  bool first = true;
  for (const auto& d : r.daemons) {
    if (!first) out += ",";
    first = false;
    out += "{\"name\":" + jsonQuote(d.name) + ",\"state\":" + jsonQuote(ipc::stateName(d.state)) +
           ",\"pid\":" + (d.pid ? std::to_string(d.pid) : "null") +
           ",\"uptime\":" + std::to_string(d.uptimeSeconds) +
           ",\"restarts\":" + std::to_string(d.restarts) +
           ",\"responding\":" + (d.responding ? "true" : "false") +
           ",\"sessions\":" + (d.responding ? std::to_string(d.sessions) : "null") + "}";
  }
  return out + "]}\n";
}

std::string statusText(const ipc::StatusReply& r) {
  char line[256];
  std::string out;
  std::snprintf(line, sizeof line, "yubin-master %s pid %u up %s\n", r.version.c_str(),
                r.masterPid, formatDuration(r.masterUptimeSeconds).c_str());
  out += line;
  if (r.daemons.empty()) return out + "no daemons configured\n";
  std::snprintf(line, sizeof line, "%-8s %-9s %-8s %-8s %-9s %s\n", "NAME", "STATE", "PID",
                "UPTIME", "RESTARTS", "SESSIONS");
  out += line;
  for (const auto& d : r.daemons) {
    std::string pid = d.pid ? std::to_string(d.pid) : "-";
    std::string up = d.pid ? formatDuration(d.uptimeSeconds) : "-";
    std::string sessions = d.responding ? std::to_string(d.sessions) : "-";
    std::snprintf(line, sizeof line, "%-8s %-9s %-8s %-8s %-9u %s\n", d.name.c_str(),
                  ipc::stateName(d.state), pid.c_str(), up.c_str(), d.restarts, sessions.c_str());
    out += line;
  }
  return out;
}

const char* typeWord(config::Type t) {
  switch (t) {
    case config::Type::String: return "string";
    case config::Type::Path: return "path";
    case config::Type::Bool: return "bool";
    case config::Type::Int: return "int";
    case config::Type::Size: return "size";
    case config::Type::Duration: return "duration";
    case config::Type::List: return "list";
    case config::Type::Listen: return "listen";
    case config::Type::UnixListen: return "unixlisten";
    case config::Type::Mode: return "mode";
    case config::Type::Choice: return "choice";
  }
  return "?";
}

// ------------------------------------------------------------ commands --

// Where yubin-master is: $YUBIN_MASTER (tests, uninstalled builds), next to
// this binary, then the configured sbin folder.
std::string findMaster() {
  if (const char* env = std::getenv("YUBIN_MASTER"); env && *env) return env;
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string next = dirName(self) + "/yubin-master";
    if (::access(next.c_str(), X_OK) == 0) return next;
  }
  return YUBIN_SBINDIR "/yubin-master";
}

int cmdStart(Context& ctx) {
  if (!ctx.args.empty()) return usageError("start takes no argument");
  auto cfg = loadConfig(ctx);
  if (!cfg) return fail(cfg.error().message);
  if (auto st = askStatus(*cfg, 5s))
    return fail("yubin-master is already running (pid " + std::to_string(st->masterPid) + ")");

  char real[PATH_MAX];
  std::string configPath = ::realpath(ctx.configPath.c_str(), real) ? real : ctx.configPath;
  std::string master = findMaster();
  if (::access(master.c_str(), X_OK) != 0)
    return fail("cannot execute " + master + ": " + std::strerror(errno));
  const std::string& pidFile = cfg->str("master", "pid_file");
  auto writePid = [&](pid_t pid) -> Status {
    if (pidFile.empty()) return {};
    if (auto s = makeDirs(dirName(pidFile), 0755); !s) return s;
    return atomicWrite(pidFile, std::to_string(pid) + "\n", 0644);
  };

  // Double fork: the master is in a session of its own and not a session
  // leader, so it can never get a controlling terminal. Its stderr is a
  // pipe to us until it is up (it then switches to /dev/null), so an error
  // while it starts is shown here.
  int errPipe[2], pidPipe[2];
  if (::pipe2(errPipe, O_CLOEXEC) != 0 || ::pipe2(pidPipe, O_CLOEXEC) != 0)
    return fail(std::string("pipe: ") + std::strerror(errno));
  UniqueFd errRead(errPipe[0]), errWrite(errPipe[1]), pidRead(pidPipe[0]), pidWrite(pidPipe[1]);
  pid_t mid = ::fork();
  if (mid < 0) return fail(std::string("fork: ") + std::strerror(errno));
  if (mid == 0) {
    ::setsid();
    pid_t pid = ::fork();
    if (pid != 0) {
      if (pid > 0) (void)writeAll(pidWrite.get(), std::to_string(pid));
      ::_exit(pid > 0 ? 0 : 1);
    }
    (void)::chdir("/");
    UniqueFd null(::open("/dev/null", O_RDWR));
    ::dup2(null.get(), STDIN_FILENO);
    ::dup2(null.get(), STDOUT_FILENO);
    ::dup2(errWrite.get(), STDERR_FILENO);
    ::close_range(3, ~0u, 0);  // what our caller left open is not the master's
    ::execl(master.c_str(), master.c_str(), "-c", configPath.c_str(), static_cast<char*>(nullptr));
    std::fprintf(stderr, "exec %s: %s\n", master.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  errWrite.reset();
  pidWrite.reset();
  int st = 0;
  ::waitpid(mid, &st, 0);
  std::string pidText;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pidRead.get(), buf, sizeof buf)) > 0) pidText.append(buf, static_cast<size_t>(n));
  auto pid = parseU64(pidText);
  if (!pid) return fail("could not start yubin-master");

  std::string errors;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto status = askStatus(*cfg, 2s); status && status->masterPid == *pid) {
      if (auto s = writePid(static_cast<pid_t>(*pid)); !s)
        return fail("yubin-master runs, but the pid file: " + s.error().message);
      std::printf("yubin-master started (pid %llu)\n", static_cast<unsigned long long>(*pid));
      return kOk;
    }
    if (errRead) {
      waitReadable(errRead.get(), 100ms);
      n = ::read(errRead.get(), buf, sizeof buf);
      if (n > 0) errors.append(buf, static_cast<size_t>(n));
      if (n == 0) errRead.reset();  // the master let go of its stderr
    } else {
      waitReadable(-1, 100ms);
    }
    if (!processAlive(static_cast<pid_t>(*pid))) {
      while (errRead && (n = ::read(errRead.get(), buf, sizeof buf)) > 0)
        errors.append(buf, static_cast<size_t>(n));
      std::fputs(errors.c_str(), stderr);
      return fail("yubin-master exited while starting");
    }
  }
  std::fputs(errors.c_str(), stderr);
  return fail("yubin-master (pid " + std::to_string(*pid) +
              ") did not answer on its control socket within 10 s");
}

int cmdStop(Context& ctx) {
  if (!ctx.args.empty()) return usageError("stop takes no argument");
  auto cfg = loadConfig(ctx);
  if (!cfg) return fail(cfg.error().message);
  auto st = askStatus(*cfg);
  if (!st) return fail(st.error().message);
  auto m = ask(*cfg, ipc::StopCommand{});
  if (!m) return fail(m.error().message);
  // Returns once the master is gone: its daemons have finished first.
  auto limit = cfg->duration("master", "stop_timeout") + 10s;
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (processAlive(static_cast<pid_t>(st->masterPid))) {
    if (std::chrono::steady_clock::now() >= deadline)
      return fail("yubin-master (pid " + std::to_string(st->masterPid) +
                  ") is still running after " + std::to_string(limit.count()) + " s");
    waitReadable(-1, 50ms);
  }
  std::printf("yubin-master stopped\n");
  return kOk;
}

int cmdReload(Context& ctx) {
  if (!ctx.args.empty()) return usageError("reload takes no argument");
  auto cfg = loadConfig(ctx);
  if (!cfg) return fail(cfg.error().message);
  auto m = ask(*cfg, ipc::ReloadCommand{});
  if (!m) return fail(m.error().message);
  auto* ok = std::get_if<ipc::OkReply>(&*m);
  if (!ok) return fail("unexpected reply to reload");
  std::printf("%s\n", ok->text.empty() ? "ok" : ok->text.c_str());
  return kOk;
}

int cmdStatus(Context& ctx) {
  bool json = false;
  for (const auto& a : ctx.args) {
    if (a == "--json") json = true;
    else return usageError("status: unknown argument '" + a + "'");
  }
  auto cfg = loadConfig(ctx);
  if (!cfg) return fail(cfg.error().message);
  auto st = askStatus(*cfg);
  if (!st) return fail(st.error().message);
  std::fputs(json ? statusJson(*st).c_str() : statusText(*st).c_str(), stdout);
  return kOk;
}

int cmdCheck(Context& ctx) {
  if (ctx.args.size() == 1 && ctx.args[0] == "--keys") {
    // The schema, for the man page check (tests/integration/test_docs.py),
    // one key a line: section, key, type, default ("(required)" when there
    // is none), description, choices; separated by tabs.
    for (const auto& k : config::schema())
      std::printf("%.*s\t%.*s\t%s\t%s\t%.*s\t%.*s\n", int(k.section.size()), k.section.data(),
                  int(k.key.size()), k.key.data(), typeWord(k.type),
                  k.defaultValue ? k.defaultValue : "(required)", int(k.doc.size()),
                  k.doc.data(), int(k.choices.size()), k.choices.data());
    return kOk;
  }
  if (!ctx.args.empty()) return usageError("check: unknown argument '" + ctx.args[0] + "'");
  auto cfg = loadConfig(ctx);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().message.c_str());
    return kFail;
  }
  // The users and aliases files the config names must parse too.
  auth::Directory directory(auth::DirectorySettings::fromConfig(*cfg));
  if (auto st = directory.reload(); !st) {
    std::fprintf(stderr, "%s\n", st.error().message.c_str());
    return kFail;
  }
  // RFC 5321 §4.5.1: every local domain must accept mail for postmaster.
  // An alias or a user takes it, or else [global] postmaster.
  for (const auto& domain : directory.domainsWithoutPostmaster())
    std::fprintf(stderr,
                 "warning: postmaster@%s reaches no one; RFC 5321 requires it: add an alias "
                 "in %s or set [global] postmaster\n",
                 domain.c_str(), cfg->str("global", "aliases_file").c_str());
  std::printf("ok\n");
  return kOk;
}

int cmdVersion(Context& ctx) {
  if (!ctx.args.empty()) return usageError("version takes no argument");
  std::printf("yubinctl %s\n", YUBIN_VERSION);
  if (auto cfg = loadConfig(ctx)) {
    if (auto st = askStatus(*cfg, 3s))
      std::printf("yubin-master %s (pid %u)\n", st->version.c_str(), st->masterPid);
  }
  return kOk;
}

int cmdUser(Context& ctx) {
  auto cfg = loadConfig(ctx);
  if (!cfg) return fail(cfg.error().message);
  return runUserCommand(*cfg, ctx.args, std::cin, std::cout, std::cerr);
}

// Queue commands wait longer than the others: an action on a message being
// delivered waits for the attempt to end (the master gives up after 25 s).
constexpr auto kQueueTimeout = 30s;

int cmdQueue(Context& ctx) {
  auto cfg = loadConfig(ctx);
  if (!cfg) return fail(cfg.error().message);
  return runQueueCommand(*cfg, ctx.args, std::cout, std::cerr,
                         [&](const ipc::Message& m) { return ask(*cfg, m, kQueueTimeout); });
}

// yubinctl run as "mailq" (a link installed beside it): the queue as mtad
// sees it, in Postfix's format. Takes -c file like yubinctl.
int runAsMailq(int argc, char** argv) {
  std::string configPath = YUBIN_SYSCONFDIR "/yubin.conf";
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c" && i + 1 < argc)
      configPath = argv[++i];
    else
      rest.push_back(a);
  }
  auto cfg = config::Config::load(configPath);
  if (!cfg) {
    std::fprintf(stderr, "mailq: %s\n", cfg.error().message.c_str());
    return kFail;
  }
  return runMailq(rest, std::cout, std::cerr,
                  [&](const ipc::Message& m) { return ask(*cfg, m, kQueueTimeout); });
}

int cmdConvert(Context& ctx) { return runConvertCommand(ctx.args, std::cout, std::cerr); }

// The grammar. yubinctl(8) lists the same command lines (checked by
// tests/integration/test_docs.py): placeholders in capitals, summaries as
// sentences.
const Command kCommands[] = {
    {"start", "start", "Start yubin-master, which starts the daemons.", cmdStart},
    {"stop", "stop", "Stop the daemons, then yubin-master.", cmdStop},
    {"reload", "reload", "Make yubin-master and the daemons read the config again.", cmdReload},
    {"status", "status [--json]", "Show each daemon: state, pid, uptime, restarts, sessions.",
     cmdStatus},
    {"check", "check", "Check the config file; errors are printed as file:line: message.",
     cmdCheck},
    {"version", "version", "Print the version, and the running master's.", cmdVersion},
    {"user",
     "user add ADDRESS [--mailbox PATH] [--format maildir|mbox] [--quota BYTES,MESSAGES]",
     "Add a user; the password is read from the standard input.", cmdUser},
    {"user", "user del ADDRESS", "Remove a user (the mailbox stays).", cmdUser},
    {"user", "user passwd ADDRESS", "Change the password of a user.", cmdUser},
    {"user", "user list [--json]", "List the users.", cmdUser},
    {"queue", "queue list [--json]",
     "List the queued messages: ID, size, sender, recipients, age and state.", cmdQueue},
    {"queue", "queue show ID [--json]",
     "Show one message: envelope, and per recipient its state, attempts and last reply.",
     cmdQueue},
    {"queue", "queue flush", "Make mtad attempt every deferred message now.", cmdQueue},
    {"queue", "queue retry ID", "Make mtad attempt one message now.", cmdQueue},
    {"queue", "queue hold ID", "Put a message on hold: no delivery until it is released.",
     cmdQueue},
    {"queue", "queue release ID", "Release a message on hold; it is attempted at once.",
     cmdQueue},
    {"queue", "queue delete ID", "Remove a message from the queue, without a report.", cmdQueue},
    {"queue", "queue bounce ID",
     "Fail every pending recipient of a message, with a report to the sender.", cmdQueue},
    {"convert", "convert mbox2maildir MBOX MAILDIR",
     "Copy the messages of an mbox file into a Maildir (flags and dates kept).", cmdConvert},
    {"convert", "convert maildir2mbox MAILDIR MBOX",
     "Copy the messages of a Maildir into an mbox file (flags and dates kept).", cmdConvert},
};

void printHelp() {
  std::printf(
      "usage: yubinctl [-c file] command [argument ...]\n"
      "   or: yubinctl --help | --version\n"
      "\n"
      "Options:\n"
      "  -c file   Config file (default %s).\n"
      "  --help    Print this text.\n"
      "  --version Print the version.\n"
      "\n"
      "Commands:\n",
      YUBIN_SYSCONFDIR "/yubin.conf");
  for (const auto& c : kCommands) std::printf("  %s\n      %s\n", c.synopsis, c.summary);
  std::printf(
      "\nExit status: 0 success, 1 failure, 2 usage error.\n"
      "The master program is looked for in $YUBIN_MASTER, next to yubinctl, then in %s.\n",
      YUBIN_SBINDIR);
}

}  // namespace

int run(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc > 0) {
    std::string_view self = argv[0];
    if (self.substr(self.rfind('/') + 1) == "mailq") return runAsMailq(argc, argv);
  }
  Context ctx;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      printHelp();
      return kOk;
    } else if (a == "--version") {
      std::printf("yubinctl (yubin) %s\n", YUBIN_VERSION);
      return kOk;
    } else if (a == "-c") {
      if (i + 1 >= argc) return usageError("-c needs a file");
      ctx.configPath = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      return usageError("unknown option '" + a + "'");
    } else {
      break;
    }
  }
  if (i >= argc) return usageError("missing command");
  std::string name = argv[i++];
  for (; i < argc; ++i) ctx.args.emplace_back(argv[i]);
  for (const auto& c : kCommands)
    if (name == c.name) return c.run(ctx);
  return usageError("unknown command '" + name + "'");
}

}  // namespace yubin::ctl

int main(int argc, char** argv) { return yubin::ctl::run(argc, argv); }
