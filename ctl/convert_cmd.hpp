// yubinctl convert: moves a mailbox between the mbox (mboxrd) and Maildir
// formats with the store's converters (libcommon/store/convert.hpp), which
// keep every message byte, the flags (Status:/X-Status: <-> Maildir info)
// and the internal dates.
// Trust: run by the admin or the mailbox owner; mailbox contents are
// untrusted mail, only copied. Files are created as whoever runs it (root
// makes root-owned files: run it as [mdad] user, or chown after).
//
//   convert mbox2maildir MBOX MAILDIR
//   convert maildir2mbox MAILDIR MBOX
//
// The source is left as it was. The destination may exist: messages are
// added to it. Not atomic: after an error the messages converted so far stay
// in the destination.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace yubin::ctl {

// args: the words after "convert" (a leading "convert" is skipped too).
// Prints one summary line on out. Returns 0 ok, 1 error (message on err),
// 2 usage error (usage on err).
int runConvertCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace yubin::ctl
