// yubinctl queue; see queue_cmd.hpp.
#include "ctl/queue_cmd.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <iostream>

#include "config/config.hpp"
#include "queue/listing.hpp"

namespace yubin::ctl {
namespace {

constexpr const char* kUsage = "usage: yubinctl queue list [--json]\n";

int usage(std::ostream& err, const std::string& why) {
  err << "yubinctl queue: " << why << "\n" << kUsage;
  return 2;
}

int list(const config::Config& cfg, const std::vector<std::string>& args, std::ostream& out,
         std::ostream& err, int64_t now) {
  bool json = false;
  for (const auto& a : args) {
    if (a == "--json")
      json = true;
    else
      return usage(err, "list: unknown argument '" + a + "'");
  }
  const std::string& spool = cfg.str("global", "spool_dir");
  // A spool that mtad has not created yet holds no mail; say so rather
  // than print an opendir error. Any other failure (EACCES: not run as
  // root) is an error.
  struct stat st;
  if (::stat((spool + "/queue").c_str(), &st) != 0 && errno == ENOENT &&
      ::stat(spool.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    out << (json ? queue::renderJson({}, now) : queue::renderMailq({}, now));
    return 0;
  }
  auto entries = queue::listQueue(spool);
  if (!entries) {
    err << "yubinctl queue list: cannot read the queue in " << spool
        << " ([global] spool_dir): " << entries.error().message << "\n";
    return 1;
  }
  out << (json ? queue::renderJson(*entries, now) : queue::renderMailq(*entries, now));
  return 0;
}

}  // namespace

int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err, int64_t now) {
  size_t first = !args.empty() && args[0] == "queue" ? 1 : 0;
  if (args.size() <= first) return usage(err, "missing subcommand");
  const std::string& verb = args[first];
  std::vector<std::string> rest(args.begin() + static_cast<ptrdiff_t>(first) + 1, args.end());
  if (verb == "list") return list(cfg, rest, out, err, now);
  return usage(err, "unknown subcommand '" + verb + "'");
}

int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err) {
  return runQueueCommand(cfg, args, out, err, static_cast<int64_t>(::time(nullptr)));
}

}  // namespace yubin::ctl
