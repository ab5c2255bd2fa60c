// msad: the Mail Submission Agent. SMTP submission on port 587 (STARTTLS)
// and 465 (implicit TLS) with SMTP AUTH; hands each accepted message to
// mtad over its submission socket and never writes the queue itself.
// Trust: reads untrusted network input; runs as [msad] user (yubin-msa)
// after the skeleton's privilege drop; reads the users file (through
// [global] users_group) to check passwords.
#include <memory>

#include "msad/msad.hpp"
#include "service/service.hpp"

int main(int argc, char** argv) {
  const yubin::service::Spec spec{
      .name = "msad",
      .section = "msad",
      .summary = "Yubin's mail submission agent: SMTP submission with AUTH",
      .make = [] { return std::make_unique<yubin::msad::Msad>(); },
      .tls = true,  // the key is read before the privilege drop
  };
  return yubin::service::run(argc, argv, spec);
}
