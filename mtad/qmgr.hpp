// mtad's queue manager: schedules every message of the queue for delivery,
// resolves each recipient with the Directory at delivery time, delivers to
// local users through mdad over LMTP (LmtpClient, a bounded pool of reused
// connections), records each recipient's outcome in the queue's state file
// before acting on it, retries temporary failures with exponential backoff,
// bounces permanent ones with a DSN (bounce.hpp) committed into the queue
// as a new message, and removes a message once every recipient is final.
//
// The rule (docs/queue.md, "Crash windows"): a recipient's state is saved
// (Queue::saveStateLater, on the queue's housekeeper threads, so no fsync
// waits on the loop; durable when its callback runs) before the message is
// removed or anything else is done on the strength of it; messages made on
// the way (a DSN, the copy for recipients still to do, see below) are
// committed before the state that depends on them is saved. So a crash
// never loses a recipient; it may deliver one twice (the window between
// mdad's or the remote server's 250 and our saveState), or send a DSN
// twice: at least once, never zero times. To keep that window short, a
// recipient delivered everywhere and needing no report is saved as soon as
// its last target answers (saveDelivered), not when the slowest part of
// the attempt ends. A save that fails (a full disk) does not lose the
// outcome: it is kept in memory (unsaved_) and the message waits until a
// later attempt has saved it, so mtad does not deliver again to recipients
// it reached while it keeps running.
//
// Recipients and targets. A queued recipient resolves to one or more
// targets: local users (an alias may name several), remote addresses (an
// alias forwarding off-site), or an error. The state file has one record
// per queued recipient, so when a recipient's targets end differently
// (alice delivered, bob over quota for now), the targets still to do are
// moved into a new queued message (same sender and arrival time, each with
// ORCPT = the original recipient) and the recipient is final: no target is
// ever delivered twice because another one failed.
//
// Remote targets (addresses in other domains, direct or through an alias)
// are grouped by domain, one RemoteDelivery job per domain (remote.hpp:
// MX, TLS policy, relay host, connection reuse and limits); the LMTP
// batch and the remote jobs of a message run at the same time, and the
// recipients are decided when all have answered. With [mtad]
// remote_delivery = no they stay pending, logged once per message, and the
// message is parked until a restart.
//
// Reports (bounce.hpp): failures go to the sender (never to <>; a message
// from <> that fails is reported once to the postmaster, and a report to
// the postmaster that fails is dropped with a log line), NOTIFY=SUCCESS
// gets a "delivered" report (or "relayed" when the next server does not
// take NOTIFY), and a recipient still deferred when the message turns
// delay_warning old gets one "delayed" report: the attempt that crosses the
// threshold sends it (its last attempt was before, this one is after), so
// no flag is stored and a restart does not repeat it.
//
// Trust: runs in mtad as yubin-mta; reads the queue (written by mtad, still
// parsed as possibly corrupt) and talks to mdad.
// Standards: RFC 2033 (LMTP, via LmtpClient), RFC 3461/3464 (DSN),
// RFC 5321 §4.5.4.1 (retry strategy), §4.5.5 (no DSN to the null sender),
// §6.1 (reliable delivery).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "auth/directory.hpp"
#include "event/event.hpp"
#include "mtad/lmtp_client.hpp"
#include "mtad/remote.hpp"
#include "queue/queue.hpp"
#include "smtp/client_reply.hpp"

namespace yubin::config {
class Config;
}

namespace yubin::mtad {

enum class DsnKind : uint8_t;  // bounce.hpp

// ---------------------------------------------------------------- pure parts

struct RetryPolicy {
  std::chrono::seconds min{300};
  std::chrono::seconds max{3600};
  std::chrono::seconds lifetime{5 * 86400};  // counted from the message's arrival
};

// The wait after `attempts` failed attempts (>= 1): min, 2*min, 4*min, ...
// capped at max (and min is at least one second).
std::chrono::seconds retryDelay(uint32_t attempts, const RetryPolicy& policy);

// How one delivery target ended in this attempt.
enum class TargetStatus : uint8_t {
  Delivered,  // 2xx
  Deferred,   // 4xx or no reply (connection failure, timeout)
  Failed,     // 5xx
  Remote,     // a remote address: no remote delivery yet, stays to do
  NotTried,   // mtad is stopping and never tried it: stays as it was
};
TargetStatus classify(const smtp::ClientReply& reply);

struct TargetOutcome {
  TargetOutcome() = default;
  TargetOutcome(std::string a, TargetStatus s, smtp::ClientReply r)
      : address(std::move(a)), status(s), reply(std::move(r)) {}
  std::string address;  // the target (a user's address, a remote address)
  TargetStatus status = TargetStatus::Deferred;
  smtp::ClientReply reply;
  bool remote = false;     // delivered (or not) over SMTP, not to mdad
  bool dsnPassed = false;  // remote: the server took NOTIFY (success reports are its job)
  std::string via;         // remote: the host that answered, for the log
};

// The new state of one queued recipient from its targets' outcomes.
struct Verdict {
  queue::RcptState state;
  // Targets that failed for good (5xx, or deferred past the lifetime), for
  // the DSN, with the RFC 3463 status to report.
  struct Failure {
    Failure() = default;
    Failure(std::string a, std::string s, smtp::ClientReply r, std::string act = {})
        : address(std::move(a)), status(std::move(s)), reply(std::move(r)), action(std::move(act)) {}
    std::string address;
    std::string status;
    smtp::ClientReply reply;
    std::string action;  // for reports other than failures ("relayed")
  };
  std::vector<Failure> failures;
  // Targets still to do while others are final: they go to a new message.
  std::vector<std::string> split;
  bool remotePending = false;
};

// Rules: all targets delivered -> Delivered; all failed -> Bounced; none
// final -> Deferred (attempts + 1, next = now + retryDelay) when any was
// deferred, else (only remote or not tried targets) unchanged; some final and
// some not -> the others are split off and the recipient is Delivered (or
// Bounced when none was delivered). A deferred target is failed instead
// once now >= arrival + lifetime (status 5.4.7, the last reply kept).
Verdict decide(const queue::RcptState& old, const std::vector<TargetOutcome>& targets, int64_t now,
               int64_t arrival, const RetryPolicy& policy);

bool isFinal(queue::RcptStatus s);
// Pending, or Deferred with its time come.
bool isDue(const queue::RcptState& s, int64_t now);
bool allFinal(const queue::MessageState& state);
// The earliest next attempt among Deferred recipients; 0 when none.
int64_t nextWake(const queue::MessageState& state);

// ---------------------------------------------------------------- the manager

struct QmgrSettings {
  std::string hostname = "localhost";  // Reporting-MTA, LHLO, DSN From:
  std::string catchall;                // replaces unknown local users when set
  RetryPolicy retry;
  size_t maxDeliveries = 10;  // messages being delivered at once
  size_t maxLmtp = 10;        // LMTP connections at once
  size_t maxRecipientsPerTransaction = 500;
  LmtpSettings lmtp;
  // Remote delivery; off by default here (tests build settings by hand),
  // on by default in the configuration.
  bool remoteEnabled = false;
  RemoteSettings remote;
  std::string remoteError;  // a bad [mtad] key: start() fails with it
  std::chrono::seconds delayWarning{0};  // 0: no delay reports
  std::string postmaster;  // reports about failed reports go here; empty: dropped
  // After a state save failed (a full disk), the outcomes stay in memory
  // and the message's next attempt, this much later, first saves them
  // ([mtad] state_save_retry).
  std::chrono::seconds stateRetry{30};

  static QmgrSettings fromConfig(const config::Config& cfg, const std::string& hostname,
                                 const std::string& catchall);
};

class Qmgr {
 public:
  Qmgr(event_base* base, queue::Queue& queue, auth::Directory& directory, QmgrSettings settings);
  ~Qmgr();
  Qmgr(const Qmgr&) = delete;
  Qmgr& operator=(const Qmgr&) = delete;

  // Scans queue/ and schedules every message found, at once.
  Status start();
  // A message was just committed: deliver it now.
  void queued(const queue::QueueId& id);
  // New settings for attempts that start from now on.
  void reload(QmgrSettings settings);
  // A clean stop: starts no new attempt; remote messages waiting for a
  // connection are not tried (their recipients stay as they were, for the
  // next start); outcomes kept in memory after a failed save (unsaved_)
  // are saved once more. `idle` runs (from the loop) once no attempt runs
  // and those saves have ended, so that a clean restart delivers nothing
  // twice. The wait is bounded by the daemon skeleton's stop_timeout.
  void stop(std::function<void()> idle);
  bool idle() const { return active_.empty() && stopSaves_.empty(); }
  size_t active() const { return active_.size(); }
  size_t scheduled() const { return waiting_.size() + ready_.size(); }

  // --- the admin's actions (yubinctl queue, through mtad/control.cpp) ---
  // Each acts on the queue through the manager, never behind its back: a
  // message being delivered is acted on once its attempt has ended and its
  // outcome is saved (never a half-written state). `done` runs from the
  // loop, never inside the call, with a short text for the admin or an
  // Error (ENOENT: no such message; EBUSY: it is not in the right place).
  using AdminDone = std::function<void(Result<std::string>)>;
  bool isActive(const queue::QueueId& id) const { return active_.count(id) != 0; }
  // Every waiting message (deferred recipients included) is attempted now.
  void flush(AdminDone done);
  // This message (in queue/) is attempted now, deferred recipients included.
  void retry(const queue::QueueId& id, AdminDone done);
  // queue/ -> hold/: no attempt until released; hold/ survives restarts.
  void hold(const queue::QueueId& id, AdminDone done);
  // hold/ -> queue/, and attempted now.
  void release(const queue::QueueId& id, AdminDone done);
  // Removed (from queue/ or hold/) with its state, without any report.
  void remove(const queue::QueueId& id, AdminDone done);
  // Every recipient not yet final fails with 5.0.0 "bounced by the
  // administrator", reported through the normal DSN path (NOTIFY, <>,
  // postmaster rules as for any failure); the message is then removed.
  void bounce(const queue::QueueId& id, AdminDone done);

 private:
  struct Delivery;

  void schedule(const queue::QueueId& id, int64_t when);
  void kick();
  void pump();
  void rescan();
  void begin(const queue::QueueId& id);
  void plan(Delivery& d);
  void startLmtp(Delivery& d);
  void runLmtp(Delivery& d);
  void lmtpDone(Delivery& d, LmtpResult result);
  void endLmtp(Delivery& d);
  void startRemote(Delivery& d, size_t job);
  void remoteDone(Delivery& d, size_t job, RemoteResult result);
  void partDone(Delivery& d);
  // One part of the attempt (the LMTP run, one remote job) ended while
  // others still run: the recipients whose targets were all delivered and
  // that need no report are final already; their state is saved now, not
  // when the slowest part ends (a remote domain timing out, mdad busy), so
  // that a crash meanwhile does not deliver them again. A recipient with a
  // failure, a split or a report waits for settle(): its side messages are
  // committed before its state.
  void saveDelivered(Delivery& d);
  // The parts have all ended (and no save of saveDelivered is in flight):
  // settle, or end a quarantined message.
  void endParts(Delivery& d);
  void settle(Delivery& d);
  void enqueueSplit(Delivery& d, const std::vector<std::pair<size_t, std::string>>& targets,
                    std::vector<size_t> rcpts);
  // A report about `items` to `to`; a failure report that cannot be queued
  // defers its recipients (revert), the others are only logged.
  void enqueueDsn(Delivery& d, std::vector<std::pair<size_t, Verdict::Failure>> items,
                  DsnKind kind, const std::string& to);
  void sideDone(Delivery& d);
  // Every side message is committed: removes the message when every
  // recipient is final, else saves the state; both off the loop
  // (Queue::removeLater, saveStateLater), the attempt ending when they are
  // done.
  void saveAndFinish(Delivery& d);
  void saveNext(Delivery& d);
  // A state save failed: the outcomes (d.next) are kept in unsaved_ and the
  // message is tried again after stateRetry, starting from them.
  void keepUnsaved(Delivery& d, const Error& e);
  // begin() once the state is known: remove, bounce or plan.
  void proceed(Delivery& d);
  // A save of `state` (or, with state null, the removal) of d's message on
  // the queue's threads; `then` runs from the loop with the outcome. At
  // most one per message at a time (d.saving).
  void stateIo(Delivery& d, const queue::MessageState* state,
               std::function<void(Delivery&, Status)> then);
  // Ends the attempt; `next` = 0: not rescheduled (done or parked).
  void finish(Delivery& d, int64_t next, bool parked);
  std::unique_ptr<LmtpClient> acquireClient();
  void releaseClient(std::unique_ptr<LmtpClient> c);
  void dropIdleClient(LmtpClient* c);
  bool known(const queue::QueueId& id) const;
  // Where the message is: Queue, Hold, or Tmp for nowhere.
  queue::Area locate(const queue::QueueId& id) const;
  // Drops every plan for id (waiting, ready, parked, forced).
  void forget(const queue::QueueId& id);
  // Runs fn now if id is not being delivered, else once its attempt ends.
  void whenInactive(const queue::QueueId& id, std::function<void()> fn);
  // Runs done(r) from the loop.
  void answer(AdminDone done, Result<std::string> r);
  void runAdminQueue();
  // At stop: every unsaved_ outcome of a message not being delivered is
  // saved (stopSaves_ holds the tickets until the callbacks run).
  void saveUnsavedAtStop();

  event_base* base_;
  queue::Queue& queue_;
  auth::Directory& directory_;
  QmgrSettings settings_;

  // Scheduling: waiting_ (id -> due time) mirrored by byTime_; ready_ runs
  // in order as slots free up; active_ are being delivered; parked_ wait
  // for remote delivery (until restart).
  std::map<queue::QueueId, int64_t> waiting_;
  std::set<std::pair<int64_t, queue::QueueId>> byTime_;
  std::deque<queue::QueueId> ready_;
  std::set<queue::QueueId> readySet_;
  std::map<queue::QueueId, std::unique_ptr<Delivery>> active_;
  std::set<queue::QueueId> parked_;
  std::set<queue::QueueId> remoteLogged_;
  // Outcomes whose state save failed (disk full): the truth about these
  // messages until a save succeeds; their next attempt starts from it, so
  // recipients already reached are not delivered again while mtad runs.
  std::map<queue::QueueId, queue::MessageState> unsaved_;
  std::vector<std::unique_ptr<Delivery>> finished_;  // destroyed from the loop
  event::Timer wake_;                                // the earliest due time
  event::Timer kicker_;                              // runs pump() from the loop
  event::Timer rescan_;  // periodic scan of queue/ for messages we do not know

  std::unique_ptr<RemoteDelivery> remote_;
  std::vector<std::unique_ptr<RemoteDelivery>> retiredRemote_;  // until their jobs end
  size_t lmtpSlots_ = 0;
  std::deque<queue::QueueId> lmtpWaiting_;

  std::vector<std::unique_ptr<LmtpClient>> idleClients_;
  std::vector<std::unique_ptr<LmtpClient>> deadClients_;  // destroyed from the loop

  // Admin actions: messages whose deferred recipients are due at their
  // next attempt whatever their retry time; messages to bounce (and the
  // folder they are in); actions waiting for an attempt to end; answers
  // and actions to run from the loop.
  std::set<queue::QueueId> forced_;
  std::map<queue::QueueId, std::pair<queue::Area, std::vector<AdminDone>>> bounces_;
  std::map<queue::QueueId, std::vector<std::function<void()>>> afterActive_;
  std::vector<std::function<void()>> adminQueue_;

  bool stopping_ = false;
  std::function<void()> onIdle_;
  std::set<queue::CommitTicket> stopSaves_;
};

}  // namespace yubin::mtad
