// yubinctl convert; see convert_cmd.hpp.
#include "ctl/convert_cmd.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <ostream>

#include "store/convert.hpp"

namespace yubin::ctl {
namespace {

constexpr int kOk = 0, kFail = 1, kUsage = 2;

int usage(std::ostream& err, const std::string& why) {
  err << "yubinctl convert: " << why << "\n"
      << "usage: yubinctl convert mbox2maildir MBOX MAILDIR\n"
      << "       yubinctl convert maildir2mbox MAILDIR MBOX\n";
  return kUsage;
}

int report(const Result<store::ConvertStats>& r, const std::string& from, const std::string& to,
           std::ostream& out, std::ostream& err) {
  if (!r) {
    err << "yubinctl convert: " << r.error().message << "\n"
        << "yubinctl convert: messages converted before the error stay in " << to << "\n";
    return kFail;
  }
  out << "converted " << r->messages << (r->messages == 1 ? " message" : " messages") << " ("
      << r->bytes << " bytes) from " << from << " to " << to << "\n";
  if (::geteuid() == 0)
    err << "yubinctl convert: note: new files belong to root; give them to the mailbox owner "
           "([mdad] user)\n";
  return kOk;
}

}  // namespace

int runConvertCommand(const std::vector<std::string>& argsIn, std::ostream& out,
                      std::ostream& err) {
  std::vector<std::string> args = argsIn;
  if (!args.empty() && args.front() == "convert") args.erase(args.begin());
  if (args.empty()) return usage(err, "missing direction");
  const std::string& dir = args[0];
  if (dir != "mbox2maildir" && dir != "maildir2mbox")
    return usage(err, "unknown direction '" + dir + "'");
  if (args.size() != 3) return usage(err, dir + " takes two paths");
  const std::string& from = args[1];
  const std::string& to = args[2];
  if (from.empty() || to.empty()) return usage(err, "empty path");
  if (from == to) return usage(err, "source and destination are the same path");

  // The converters make the destination before they read the source:
  // check the source first, so a mistyped path creates nothing.
  struct stat st;
  if (dir == "mbox2maildir") {
    if (::stat(from.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      err << "yubinctl convert: " << from << ": not an mbox file\n";
      return kFail;
    }
    store::MaildirNameGenerator names;
    return report(store::mboxToMaildir(from, to, "", names), from, to, out, err);
  }
  if (::stat((from + "/cur").c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    err << "yubinctl convert: " << from << ": not a Maildir (no cur/ folder)\n";
    return kFail;
  }
  return report(store::maildirToMbox(from, "", to), from, to, out, err);
}

}  // namespace yubin::ctl
