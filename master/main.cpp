// yubin-master: options, the config, then the supervisor (supervisor.hpp).
// Trust: started as root (or a user, in dev mode); reads only its options
// and the admin's config file.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "config/config.hpp"
#include "master/supervisor.hpp"
#include "yubin_build_config.h"

namespace {

constexpr const char* kUsage =
    "usage: yubin-master [-f] [-c file]\n"
    "       yubin-master --help | --version\n"
    "Starts and supervises the Yubin daemons named in the config.\n"
    "  -c file    config file (default " YUBIN_SYSCONFDIR "/yubin.conf)\n"
    "  -f         stay in the foreground, log to stderr, run the daemons with -f\n"
    "  --help     this text\n"
    "  --version  print the version\n";

}  // namespace

int main(int argc, char** argv) {
  yubin::master::Options opts;
  opts.configPath = YUBIN_SYSCONFDIR "/yubin.conf";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--version") {
      std::printf("yubin-master %s\n", YUBIN_VERSION);
      return 0;
    } else if (a == "-f") {
      opts.foreground = true;
    } else if (a == "-c" && i + 1 < argc) {
      opts.configPath = argv[++i];
    } else {
      std::fprintf(stderr, "yubin-master: unknown or incomplete option '%s'\n%s", a.c_str(),
                   kUsage);
      return 2;
    }
  }
  // The daemons get the same file whatever their working directory.
  char real[PATH_MAX];
  if (::realpath(opts.configPath.c_str(), real)) opts.configPath = real;

  auto cfg = yubin::config::Config::load(opts.configPath);
  if (!cfg) {
    std::fprintf(stderr, "yubin-master: %s\n", cfg.error().message.c_str());
    return 1;
  }
  return yubin::master::runSupervisor(opts, std::move(*cfg));
}
