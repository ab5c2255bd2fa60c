// mdad: the Mail Delivery Agent. Writes messages into the users' mailboxes,
// as an LMTP server on a Unix socket (the daemon, through the service
// skeleton) or as a command, `mdad -d ADDRESS < message` (lda.hpp).
// Trust: runs as [mdad] user (the owner of every mailbox) after the
// privilege drop; reads untrusted mail from the local MTA.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "mdad/lda.hpp"
#include "mdad/mdad.hpp"
#include "service/service.hpp"

int main(int argc, char** argv) {
  const yubin::service::Spec spec{
      .name = "mdad",
      .section = "mdad",
      .summary = "Yubin's mail delivery agent: LMTP server and local delivery command",
      .make = [] { return std::make_unique<yubin::mdad::Mdad>(); },
  };
  const std::vector<std::string> args(argv + 1, argv + argc);
  // -d means the delivery command, where -f names the sender rather than
  // asking for the foreground: decided here, before the skeleton parses.
  if (yubin::mdad::isLdaInvocation(args)) return yubin::mdad::runLda(args);
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs((yubin::service::usage(spec) + yubin::mdad::ldaUsage()).c_str(), stdout);
      return 0;
    }
  }
  return yubin::service::run(argc, argv, spec);
}
