// yubinctl user; see user_cmd.hpp.
#include "ctl/user_cmd.hpp"

#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <optional>

#include "auth/address.hpp"
#include "auth/users.hpp"
#include "auth/users_edit.hpp"
#include "auth/watched_file.hpp"
#include "base/log.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "config/config.hpp"

namespace yubin::ctl {
namespace {

constexpr const char* kUsage =
    "usage: yubinctl user add ADDRESS [--mailbox PATH] [--format maildir|mbox] "
    "[--quota BYTES[,MESSAGES]]\n"
    "       yubinctl user del ADDRESS\n"
    "       yubinctl user passwd ADDRESS\n"
    "       yubinctl user list [--json]\n";

// A password that wipes itself.
class Secret {
 public:
  Secret() = default;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret() { wipe(); }
  std::string& str() { return s_; }
  void wipe() {
    if (!s_.empty()) sodium_memzero(s_.data(), s_.size());
    s_.clear();
  }

 private:
  std::string s_;
};

bool readLine(std::istream& in, Secret& out) {
  if (!std::getline(in, out.str())) return false;
  if (!out.str().empty() && out.str().back() == '\r') out.str().pop_back();
  return true;
}

// Reads the new password into `pw`; an error message or "".
std::string readPassword(std::istream& in, std::ostream& err, Secret& pw) {
  bool terminal = &in == &std::cin && ::isatty(STDIN_FILENO) == 1;
  if (!terminal) {
    if (!readLine(in, pw)) return "no password on standard input";
    if (pw.str().empty()) return "empty password refused";
    return "";
  }
  struct termios saved;
  if (::tcgetattr(STDIN_FILENO, &saved) != 0) return "cannot read the terminal settings";
  struct termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;
  if (::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) return "cannot turn terminal echo off";
  auto restore = ScopeExit([&] { ::tcsetattr(STDIN_FILENO, TCSANOW, &saved); });
  Secret again;
  err << "New password: " << std::flush;
  if (!readLine(in, pw)) return "no password given";
  if (pw.str().empty()) return "empty password refused";
  err << "Retype new password: " << std::flush;
  if (!readLine(in, again)) return "no password given";
  if (pw.str().size() != again.str().size() ||
      sodium_memcmp(pw.str().data(), again.str().data(), pw.str().size()) != 0)
    return "the passwords do not match";
  return "";
}

// The current users file (a missing file is empty).
Result<auth::UserTable> loadUsers(const auth::UserDbSettings& s) {
  auto text = auth::readStamped(s.path);
  if (!text) return text.error();
  return auth::parseUsers(text->text, s.path, s);
}

std::string quotaText(const auth::Quota& q) {
  if (q.bytes == 0 && q.messages == 0) return "unlimited";
  return std::to_string(q.bytes) + "," + std::to_string(q.messages);
}

struct Context {
  const config::Config& cfg;
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  const UserCommandOptions& options;
  auth::UserDbSettings settings;
  std::string verb;

  int usage(const std::string& why) {
    err << "yubinctl user: " << why << "\n" << kUsage;
    return 2;
  }
  int fail(const std::string& why) {
    err << "yubinctl user " << verb << ": " << why << "\n";
    return 1;
  }

  // The address must be well-formed and in a local domain.
  std::string checkAddress(const std::string& address) {
    auto parts = auth::splitAddress(address);
    if (!parts || !auth::isValidDomain(parts->domain))
      return "bad address '" + address + "': expected local@domain";
    if (!settings.domains.contains(parts->domain))
      return "domain '" + parts->domain + "' is not a local domain ([global] domains in " +
             cfg.file() + ")";
    return "";
  }

  Result<auth::Credentials> newCredentials() {
    Secret pw;
    if (auto e = readPassword(in, err, pw); !e.empty()) return Error{e};
    return auth::makeCredentials(pw.str(), options.cost, options.scramIterations);
  }

  int add(const std::vector<std::string>& a) {
    auth::NewUser user;
    std::optional<std::string> address;
    for (size_t i = 0; i < a.size(); ++i) {
      std::string opt = a[i], value;
      bool hasValue = false;
      if (size_t eq = opt.find('='); opt.rfind("--", 0) == 0 && eq != std::string::npos) {
        value = opt.substr(eq + 1);
        opt = opt.substr(0, eq);
        hasValue = true;
      }
      if (opt == "--mailbox" || opt == "--format" || opt == "--quota") {
        if (!hasValue) {
          if (i + 1 >= a.size()) return usage(opt + " needs a value");
          value = a[++i];
        }
        if (opt == "--mailbox") {
          user.mailbox = value;
        } else if (opt == "--format") {
          auto f = auth::parseMailboxFormat(value);
          if (!f) return usage("--format must be maildir or mbox");
          user.format = *f;
        } else {
          if (auto q = auth::parseQuota(value); !q) return fail(q.error().message);
          user.quota = value;
        }
      } else if (opt.rfind("--", 0) == 0) {
        return usage("unknown option " + opt);
      } else if (address) {
        return usage("one address only");
      } else {
        address = a[i];
      }
    }
    if (!address) return usage("user add needs an address");
    if (auto e = checkAddress(*address); !e.empty()) return fail(e);
    user.address = *address;
    // Check every field before asking for the password.
    if (auto line = auth::makeUserLine(user, {"*", ""}, settings); !line)
      return fail(line.error().message);
    auto table = loadUsers(settings);
    if (!table) return fail(table.error().message);
    if (const auth::User* old = table->find(*address))
      return fail("user " + old->address + " already exists (" + settings.path + ":" +
                  std::to_string(old->line) + ")");

    auto cred = newCredentials();
    if (!cred) return fail(cred.error().message);
    if (auto s = auth::addUser(settings, user, *cred); !s) return fail(s.error().message);
    auto added = loadUsers(settings);
    const auth::User* u = added ? added->find(*address) : nullptr;
    std::string where = u ? u->mailbox : "?";
    std::string key = auth::addressKey(*address).value_or(*address);
    YLOG_NOTICE("user added address=%s", key.c_str());
    out << "added " << key << " (" << auth::formatName(user.format) << " " << where << ")\n";
    return 0;
  }

  // For del and passwd: exactly one address.
  std::optional<std::string> oneAddress(const std::vector<std::string>& a, int& rc) {
    if (a.size() != 1 || a[0].rfind("--", 0) == 0) {
      rc = usage("user " + verb + " needs exactly one address");
      return std::nullopt;
    }
    return a[0];
  }

  int del(const std::vector<std::string>& a) {
    int rc = 0;
    auto address = oneAddress(a, rc);
    if (!address) return rc;
    auto table = loadUsers(settings);
    if (!table) return fail(table.error().message);
    const auth::User* u = table->find(*address);
    if (!u) return fail("no such user: " + *address);
    std::string key = u->address, mailbox = u->mailbox;
    if (auto s = auth::deleteUser(settings, key); !s) return fail(s.error().message);
    YLOG_NOTICE("user deleted address=%s", key.c_str());
    out << "deleted " << key << "; mailbox left in place: " << mailbox << "\n";
    return 0;
  }

  int passwd(const std::vector<std::string>& a) {
    int rc = 0;
    auto address = oneAddress(a, rc);
    if (!address) return rc;
    auto table = loadUsers(settings);
    if (!table) return fail(table.error().message);
    const auth::User* u = table->find(*address);
    if (!u) return fail("no such user: " + *address);
    std::string key = u->address;
    auto cred = newCredentials();
    if (!cred) return fail(cred.error().message);
    if (auto s = auth::setCredentials(settings, key, *cred); !s) return fail(s.error().message);
    YLOG_NOTICE("user password changed address=%s", key.c_str());
    out << "password changed for " << key << "\n";
    return 0;
  }

  int list(const std::vector<std::string>& a) {
    bool json = false;
    for (const auto& w : a) {
      if (w == "--json")
        json = true;
      else
        return usage("user list takes only --json");
    }
    auto table = loadUsers(settings);
    if (!table) return fail(table.error().message);
    if (!json) {
      for (const auto& u : table->users())
        out << u.address << "\t" << auth::formatName(u.format) << "\t" << u.mailbox << "\t"
            << quotaText(u.quota) << "\n";
      return 0;
    }
    out << "[";
    bool first = true;
    for (const auto& u : table->users()) {
      out << (first ? "\n" : ",\n") << "  {\"address\": " << jsonString(u.address)
          << ", \"format\": " << jsonString(auth::formatName(u.format))
          << ", \"mailbox\": " << jsonString(u.mailbox) << ", \"quota_bytes\": " << u.quota.bytes
          << ", \"quota_messages\": " << u.quota.messages
          << ", \"login\": " << (u.canLogin() ? "true" : "false")
          << ", \"scram\": " << (u.scram ? "true" : "false") << "}";
      first = false;
    }
    out << (first ? "]\n" : "\n]\n");
    return 0;
  }
};

}  // namespace

std::string jsonString(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

int runUserCommand(const config::Config& cfg, const std::vector<std::string>& args,
                   std::istream& in, std::ostream& out, std::ostream& err) {
  return runUserCommand(cfg, args, in, out, err, UserCommandOptions{});
}

int runUserCommand(const config::Config& cfg, const std::vector<std::string>& args,
                   std::istream& in, std::ostream& out, std::ostream& err,
                   const UserCommandOptions& options) {
  std::vector<std::string> a = args;
  if (!a.empty() && a[0] == "user") a.erase(a.begin());
  Context ctx{cfg, in, out, err, options, auth::UserDbSettings::fromConfig(cfg), ""};
  if (a.empty()) return ctx.usage("missing command");
  ctx.verb = a[0];
  std::vector<std::string> rest(a.begin() + 1, a.end());
  if (ctx.verb == "add") return ctx.add(rest);
  if (ctx.verb == "del") return ctx.del(rest);
  if (ctx.verb == "passwd") return ctx.passwd(rest);
  if (ctx.verb == "list") return ctx.list(rest);
  return ctx.usage("unknown command '" + ctx.verb + "'");
}

}  // namespace yubin::ctl
