// yubinctl queue: shows the mail queue ([global] spool_dir) the way mailq
// does, or as JSON for scripts.
// Trust: run by the admin (root), reading a spool owned by yubin-mta.
// Read-only: creates, moves, locks and deletes nothing, so it is safe while
// mtad runs; the listing (libcommon/queue/listing.hpp) opens files without
// following symlinks or blocking on FIFOs and shows a bad file as corrupt.
//
//   queue list [--json]
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace yubin::config {
class Config;
}

namespace yubin::ctl {

// args: the words after "queue" (a leading "queue" is skipped too), e.g.
// {"list", "--json"}. `now` is the time ages are computed from (seconds
// since the epoch; tests pin it). Returns 0 ok, 1 error (message on err),
// 2 usage error.
int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err, int64_t now);
int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err);

}  // namespace yubin::ctl
