// mtad's pickup: moves messages that yubin-sendmail left in the maildrop
// (<spool_dir>/maildrop, see maildrop.hpp) into the queue, like Postfix's
// pickup. A scan at start, then inotify on the folder (plus a slow periodic
// rescan as a safety net). Each file in turn: checked (regular file, one
// link, size, format), its sender decided from the file's OWNER (never
// from its contents: -f is honoured only for root and [sendmail]
// trusted_users), committed through the normal queue writer with a
// Received: field and Date:/Message-ID:/From: when missing (mail/
// header_fixer.hpp, shared with msad), and only then
// removed: a crash in between delivers it twice, never zero times. A file
// that fails a check goes to maildrop/corrupt/ with a log line.
//
// Trust: reads files any local user can write; runs as yubin-mta inside
// mtad. Standards: RFC 5322 §3.6 (Date, Message-ID, From), RFC 5321 §4.4
// (Received).
#pragma once

#include <event2/event.h>
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "auth/directory.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "config/config.hpp"
#include "event/event.hpp"
#include "mail/header_fixer.hpp"
#include "mtad/maildrop.hpp"
#include "queue/queue.hpp"

namespace yubin::mtad {

struct PickupSettings {
  std::string spoolDir;
  std::string dir;        // spoolDir + "/maildrop"
  std::string dropGroup;  // [sendmail] maildrop_group: the folder's group
  std::string hostname;
  std::string qualifyDomain;  // [sendmail] qualify_domain, else hostname
  std::vector<std::string> trustedUsers;
  uint64_t maxMessageSize = 0;  // [mtad] max_message_size; 0 = only kMaxDropFile
  static PickupSettings fromConfig(const config::Config& cfg);
};

// Who dropped a file, as the pickup sees it.
struct Submitter {
  uint32_t uid = 0;
  std::string login;     // from the password database; "uid<N>" if none
  std::string fullName;  // the first GECOS field
  bool trusted = false;  // root or in trusted_users: -f honoured
  std::string address;   // the sender used when -f is absent or not honoured
};

// A drop file turned into what the queue gets. Pure: no I/O.
struct PickupMessage {
  queue::Envelope envelope;
  // From (the sender, with the -F or GECOS name), Date and Message-ID for
  // the header fixer, which adds each only when the message lacks it.
  mail::HeaderAdditions header;
  bool senderIgnored = false;  // -f was given and not honoured
};
// Refuses (EBADMSG) a recipient or honoured sender that is not a valid
// address. `now` and `messageId` ("<x@host>") are used for missing fields.
Result<PickupMessage> preparePickup(const ParsedDrop& drop, std::string_view message,
                                    const Submitter& who, time_t now, const std::string& messageId);

// The content as queued: `received` first, then the message with the
// missing From/Date/Message-ID added at the end of its header section (and
// a header/body separator when it had none), handed to `sink` in pieces.
void pickupContent(const PickupMessage& p, std::string received, std::string_view message,
                   const std::function<void(std::string_view)>& sink);

// "Received: by HOST (Yubin) id ID from userid UID; DATE" with its CRLF.
std::string pickupReceived(const std::string& hostname, uint32_t uid, const std::string& id,
                           time_t now);
// A display name quoted as an RFC 5322 quoted-string when needed; control
// characters dropped.
std::string quoteDisplayName(std::string_view name);

class Pickup {
 public:
  using QueuedFn = std::function<void(const queue::QueueId&)>;
  Pickup(event_base* base, queue::Queue& queue, auth::Directory& directory, PickupSettings settings,
         QueuedFn queued);
  ~Pickup();
  Pickup(const Pickup&) = delete;
  Pickup& operator=(const Pickup&) = delete;

  // Prepares the folder (created 1730 with the drop group when missing;
  // corrupt/ inside it), starts watching it and picks up what is there.
  // A failure is returned; mtad logs it and runs without a pickup.
  Status start();
  void reload(PickupSettings settings);
  // No new files are taken. A commit under way finishes; `idle` runs
  // after it (only then: check idle() first).
  void stop(std::function<void()> idle = {});
  bool idle() const { return !committing_; }

  // For tests: files picked up and files quarantined so far.
  uint64_t pickedUp() const { return pickedUp_; }
  uint64_t quarantined() const { return quarantined_; }

 private:
  static void onInotify(evutil_socket_t, short, void* self);
  void scan();
  void next();
  // Handles one file; true when a commit was started (wait for it).
  bool process(const std::string& name);
  void quarantine(const std::string& name, const std::string& why);
  Submitter submitter(uid_t uid);

  event_base* base_;
  queue::Queue& queue_;
  auth::Directory& directory_;
  PickupSettings settings_;
  QueuedFn queued_;
  UniqueFd dirFd_;
  UniqueFd inotify_;
  event::Event inotifyEvent_;
  event::Timer rescan_;
  std::deque<std::string> todo_;
  std::set<std::string> pendingNames_;
  bool committing_ = false;
  bool stopped_ = false;
  std::function<void()> onIdle_;
  std::optional<queue::CommitTicket> ticket_;
  uint64_t pickedUp_ = 0;
  uint64_t quarantined_ = 0;
};

}  // namespace yubin::mtad
