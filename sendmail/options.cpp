// yubin-sendmail's command line; see options.hpp.
#include "sendmail/options.hpp"

#include <cerrno>

namespace yubin::sendmail {
namespace {

Error usage(const std::string& what) { return Error{what, EINVAL}; }

}  // namespace

Result<Options> parseOptions(const std::vector<std::string>& args, std::string_view progName) {
  Options o;
  if (progName == "mailq") o.mode = Mode::ListQueue;
  size_t i = 0;
  // The value of an option: attached ("-fuser") or the next argument.
  auto value = [&](const std::string& arg, std::string& out) -> Status {
    if (arg.size() > 2) {
      out = arg.substr(2);
      return {};
    }
    if (i + 1 >= args.size()) return usage("option " + arg + " needs a value");
    out = args[++i];
    return {};
  };
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;
    char opt = a[1];
    std::string v;
    switch (opt) {
      case 't':
      case 'i':
        if (a.size() != 2) return usage("unknown option " + a);
        (opt == 't' ? o.extract : o.ignoreDots) = true;
        break;
      case 'f':
      case 'r':
        if (auto st = value(a, v); !st) return st.error();
        o.sender = v;
        break;
      case 'F':
        if (auto st = value(a, v); !st) return st.error();
        o.fullName = v;
        break;
      case 'C':
        if (auto st = value(a, v); !st) return st.error();
        o.configPath = v;
        break;
      case 'o':
        // -oi is -i; -oem, -oee, -odb, -odi, -oQ... and the rest: ignored.
        if (a.size() == 2) return usage("option -o needs a letter");
        if (a == "-oi")
          o.ignoreDots = true;
        else
          o.ignored.push_back(a);
        break;
      case 'B':  // body type (7BIT, 8BITMIME): the content is checked by mtad
      case 'N':  // DSN notify
      case 'R':  // DSN return
      case 'V':  // envelope ID
      case 'X':  // traffic log file: never written
      case 'L':  // syslog label
      case 'h':  // hop count
      case 'O':  // long option=value
        if (auto st = value(a, v); !st) return st.error();
        o.ignored.push_back(a.size() > 2 ? a : a + " " + v);
        break;
      case 'v':
      case 'm':
      case 'n':
      case 'U':
      case 'G':
      case 'A':  // -Am/-Ac: which sendmail.cf
      case 'd':  // debug flags
      case 'q':  // queue runs: mtad runs its queue itself
        o.ignored.push_back(a);
        break;
      case 'b': {
        std::string m = a.substr(2);
        if (m == "m") {
          o.mode = Mode::Deliver;
        } else if (m == "s") {
          o.mode = Mode::Smtp;
        } else if (m == "p") {
          o.mode = Mode::ListQueue;
        } else if (m.size() == 1) {
          o.mode = Mode::Unsupported;
          o.unsupported = a;
        } else {
          return usage("unknown mode " + a);
        }
        break;
      }
      default:
        return usage("unknown option " + a);
    }
  }
  for (; i < args.size(); ++i) o.recipients.push_back(args[i]);
  return o;
}

}  // namespace yubin::sendmail
