// mtad: the Mail Transfer Agent. SMTP on port 25 into the durable queue.
// Trust: reads untrusted network input; runs as [mtad] user (yubin-mta)
// after the skeleton's privilege drop; can write the queue, never a mailbox.
#include <memory>

#include "mtad/mtad.hpp"
#include "service/service.hpp"

int main(int argc, char** argv) {
  const yubin::service::Spec spec{
      .name = "mtad",
      .section = "mtad",
      .summary = "Yubin's mail transfer agent: SMTP server and mail queue",
      .make = [] { return std::make_unique<yubin::mtad::Mtad>(); },
      .tls = true,  // the key is read before the privilege drop
  };
  return yubin::service::run(argc, argv, spec);
}
