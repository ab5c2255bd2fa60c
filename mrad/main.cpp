// mrad: the Mail Retrieval Agent (POP3 now; IMAP later). Two processes: the
// login process (this program under the service skeleton, as [mrad] user)
// and the mail process it starts (`mrad --mail-process CONFIG`, as [mrad]
// mail_user); see mrad.hpp and mail_process.hpp.
// Trust: starts as root; see the two halves.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "mrad/mail_process.hpp"
#include "mrad/mrad.hpp"
#include "service/service.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == yubin::mrad::kMailProcessFlag) {
    if (args.size() < 2) return yubin::service::kExitUsage;
    return yubin::mrad::runMailProcess(args[1], args.size() > 2 && args[2] == "-f");
  }
  const bool foreground = std::find(args.begin(), args.end(), "-f") != args.end();
  int failure = 0;
  const yubin::service::Spec spec{
      .name = "mrad",
      .section = "mrad",
      .summary = "Yubin's mail retrieval agent: POP3 (STLS, implicit TLS, SASL)",
      .make = [&] { return std::make_unique<yubin::mrad::Mrad>(foreground, &failure); },
      .tls = true,
  };
  const int rc = yubin::service::run(argc, argv, spec);
  return rc == yubin::service::kExitOk ? failure : rc;
}
