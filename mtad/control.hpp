// mtad's end of the queue channel: the admin's queue commands (`yubinctl
// queue show|flush|retry|hold|release|delete|bounce`, `mailq`) arrive from
// yubin-master as ipc::QueueRequest on the "yubin-queue" socketpair and are
// answered with ipc::QueueResult carrying the same serial. The actions go
// through the queue manager (qmgr.hpp), which owns the schedule; list and
// show read the queue's files and state files the way the manager does.
//
// Trust: runs in mtad as yubin-mta. The channel's peer is the master (root),
// which checked the admin's credentials (SO_PEERCRED); still, every frame
// goes through the strict ipc decoder, and every queue ID through
// queue::QueueId::parse before it names a file, so "../x" names nothing.
// A protocol error closes the channel (mtad keeps running without it).
// Standards: none (Yubin's own ipc vocabulary, libcommon/ipc/ipc.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "event/event.hpp"
#include "ipc/ipc.hpp"
#include "mtad/qmgr.hpp"
#include "queue/queue.hpp"

namespace yubin::mtad {

// The admin's view of one message (list, show): envelope and per-recipient
// state from the queue files; `active` when an attempt is under way.
Result<ipc::QueueMessageInfo> describeMessage(queue::Queue& queue, const queue::QueueId& id,
                                              queue::Area area, bool active);

// "invalid queue ID ...": the text of the error for an ID that does not
// parse; shows at most 40 bytes of it, control characters escaped.
std::string invalidIdError(std::string_view text);

class QueueControl {
 public:
  // Takes the channel socket (non-blocking, from the master). `qmgr` and
  // `queue` outlive this object.
  static Result<std::unique_ptr<QueueControl>> create(event_base* base, UniqueFd fd,
                                                      queue::Queue& queue, Qmgr& qmgr);
  ~QueueControl();
  QueueControl(const QueueControl&) = delete;
  QueueControl& operator=(const QueueControl&) = delete;

  bool open() const { return bev_ != nullptr; }

 private:
  QueueControl(queue::Queue& queue, Qmgr& qmgr) : queue_(queue), qmgr_(qmgr) {}
  static void readCb(bufferevent* bev, void* self);
  static void eventCb(bufferevent* bev, short what, void* self);
  void onRequest(const ipc::QueueRequest& req);
  void send(ipc::QueueResult result);
  void close(const char* why);

  queue::Queue& queue_;
  Qmgr& qmgr_;
  event::Bufferevent bev_;
  ipc::FrameReader reader_{64 * 1024};
  // Answers from the queue manager may come after this object is gone
  // (mtad stopping): they check this token first.
  std::shared_ptr<QueueControl*> self_;
};

}  // namespace yubin::mtad
