// Maildir delivery and the Maildir naming rules.
//
// Layout (D. J. Bernstein's maildir; Maildir++ folders as Dovecot lays
// them out): the root <Maildir>/ holds cur/ new/ tmp/ (mode 0700); a
// folder "Folder/Sub" is the directory <Maildir>/.Folder.Sub/ with its own
// cur/ new/ tmp/ and an empty "maildirfolder" marker file.
//
// File names: <seconds>.M<usec>P<pid>Q<n>.<host>,S=<size>[:2,<flags>]
// where host has '/' written as \057, ':' as \072 and ',' as \054 (the
// last so ",S=" can always be found), and S= is the exact byte size of
// the file. A message is written to tmp/<base> (O_EXCL), fsync'ed, then
// link()ed to new/<base>,S=<size> (never overwriting: on EEXIST a fresh
// name is drawn), the tmp file is unlinked and new/ is fsync'ed. On any
// failure nothing is left in tmp/ or new/, and the Error keeps the errno
// (ENOSPC, EDQUOT: see classifyDeliveryError).
//
// Standards: D. J. Bernstein's maildir description (maildir(5)); the
// Maildir++ folder layout as Courier and Dovecot use it.
// Trust level: runs as the mailbox owner; message bytes are untrusted and
// only copied. Folder names are checked (no "..", '/', '.' or control
// characters inside a component) before they become paths.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "store/fs_ops.hpp"
#include "store/message_source.hpp"

namespace yubin::store {

// ---- names (pure functions) ----

struct MaildirNameParts {
  int64_t seconds = 0;
  uint32_t micros = 0;
  uint64_t pid = 0;
  uint64_t counter = 0;   // Q<n>: per-process delivery counter
  std::string_view host;  // raw host name; sanitised here
};

// "/" -> "\057", ":" -> "\072", "," -> "\054"; other bytes unchanged.
std::string maildirSanitizeHost(std::string_view host);
// "<seconds>.M<usec>P<pid>Q<n>.<host>": the tmp/ name.
std::string maildirBaseName(const MaildirNameParts& parts);
// "<base>,S=<size>": the new/ name.
std::string maildirUniqueName(const MaildirNameParts& parts, uint64_t size);

// The base part of a file name: everything before the ":" info.
std::string_view maildirBase(std::string_view fileName);
// The stable id of a message: the name before any ',' field or ':' info
// (Dovecot's "base name"; fields such as ,W= may be added later).
std::string_view maildirId(std::string_view fileName);
// The value of the ,<key>=<digits> field of the base part (S= the size on
// disk, W= the size with CRLF line ends), if present and well-formed.
std::optional<uint64_t> maildirNameField(std::string_view fileName, char key);
// The S=<size> field of the base part, if present and well-formed.
std::optional<uint64_t> maildirSizeFromName(std::string_view fileName);
// The flags after ":2,", or "" (no info, or an info of another version).
std::string_view maildirFlags(std::string_view fileName);
// Sorted, without duplicates, without bytes outside 'A'..'Z' / 'a'..'z'.
std::string maildirNormaliseFlags(std::string_view flags);

// Draws unique base names from a clock, the pid and a counter. One per
// process (the counter is what keeps two deliveries in the same
// microsecond apart), shared by all its threads: next() is thread-safe as
// long as the clock is (the default one is). A forked child must make its
// own (the pid is captured at construction).
class MaildirNameGenerator {
 public:
  struct Time {
    int64_t seconds;
    uint32_t micros;
  };
  using Clock = std::function<Time()>;
  // Defaults: CLOCK_REALTIME, getpid(), gethostname().
  explicit MaildirNameGenerator(Clock clock = {}, std::optional<uint64_t> pid = {},
                                std::optional<std::string> host = {});
  std::string next();

 private:
  Clock clock_;
  uint64_t pid_;
  std::string host_;
  std::atomic<uint64_t> counter_{0};
};

// ---- folders ----

// The directory of a folder under a Maildir root: "" and "INBOX" (any
// case) are the root itself; "Sent" is <root>/.Sent; "Folder/Sub" (with
// sep '/') is <root>/.Folder.Sub. Fails (EINVAL) on an empty component,
// "." or ".." in a name, '/' or '.' inside a component, control bytes.
Result<std::string> maildirFolderPath(const std::string& root, std::string_view folder,
                                      char sep = '/');

// Creates what is missing of root (and its missing parents), root's
// cur/ new/ tmp/, and for a sub-folder its directory, cur/ new/ tmp/ and
// maildirfolder marker. Directories are 0700. Returns the folder path.
Result<std::string> ensureMaildirFolder(Fs& fs, const std::string& root, std::string_view folder,
                                        char sep = '/');

// ---- delivery ----

struct MaildirDeliverOptions {
  LineEndings lineEndings = LineEndings::ToLf;
  // Deliver straight into cur/ with ":2,<flags>" (converters); else new/.
  bool intoCur = false;
  std::string flags;
  // Sets the file's mtime (the IMAP internal date), e.g. from a From_ line.
  std::optional<int64_t> mtime;
};

struct MaildirDelivery {
  std::string path;   // full path of the delivered file
  std::string name;   // its file name
  uint64_t size = 0;  // bytes written (S=)
};

class MaildirDeliverer {
 public:
  // fs and names must outlive the deliverer.
  MaildirDeliverer(Fs& fs, MaildirNameGenerator& names) : fs_(fs), names_(names) {}
  // Writes prefix (header lines from the caller, e.g. Return-Path:,
  // Delivered-To:) followed by the message into folder of the Maildir at
  // root, creating the folder structure if needed. prefix goes through
  // the same line-ending conversion as the message.
  Result<MaildirDelivery> deliver(const std::string& root, std::string_view folder,
                                  std::string_view prefix, const MessageSource& msg,
                                  const MaildirDeliverOptions& opts = {});
  // The same into an existing folder directory (no creation).
  Result<MaildirDelivery> deliverToDir(const std::string& dir, std::string_view prefix,
                                       const MessageSource& msg,
                                       const MaildirDeliverOptions& opts = {});

 private:
  Fs& fs_;
  MaildirNameGenerator& names_;
};

// fsync a directory through fs (open O_DIRECTORY, then fs.fsync).
Status fsyncDirFs(Fs& fs, const std::string& dir);

}  // namespace yubin::store
