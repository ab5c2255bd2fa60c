// mtad's end of the queue channel; see control.hpp.
#include "mtad/control.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <cerrno>
#include <cstdio>

#include "base/log.hpp"

namespace yubin::mtad {
namespace {

static_assert(static_cast<uint8_t>(queue::RcptStatus::Held) ==
              static_cast<uint8_t>(ipc::QueueRcptStatus::Held));
static_assert(static_cast<uint8_t>(queue::RcptStatus::Deferred) ==
              static_cast<uint8_t>(ipc::QueueRcptStatus::Deferred));
static_assert(static_cast<uint8_t>(queue::Ret::Headers) == 2);

// A list reply stays under the ipc frame limit with room to spare.
constexpr size_t kListBudget = ipc::kMaxFrameSize - 64 * 1024;

size_t encodedSize(const ipc::QueueMessageInfo& m) {
  size_t n = 38 + m.id.size() + m.sender.size() + m.envid.size();
  for (const auto& r : m.recipients)
    n += 38 + r.address.size() + r.orcptType.size() + r.orcpt.size() + r.reply.size();
  return n;
}

}  // namespace

std::string invalidIdError(std::string_view text) {
  std::string shown;
  for (size_t i = 0; i < text.size() && i < 40; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      shown += buf;
    } else {
      shown.push_back(static_cast<char>(c));
    }
  }
  if (text.size() > 40) shown += "...";
  return "invalid queue ID '" + shown +
         "': a queue ID is 16 characters of 0-9 and a-z without i, l, o and u";
}

Result<ipc::QueueMessageInfo> describeMessage(queue::Queue& queue, const queue::QueueId& id,
                                              queue::Area area, bool active) {
  auto file = queue.openMessage(id, area);
  if (!file) return file.error();
  const queue::Envelope& env = file->envelope();
  auto state = queue.loadState(id, env.recipients.size());
  if (!state) return state.error();
  ipc::QueueMessageInfo m;
  m.id = id.str();
  m.sender = env.nullSender ? std::string() : env.sender;
  m.arrival = static_cast<uint64_t>(std::max<int64_t>(env.arrivalTime, 0));
  m.size = env.size;
  m.envid = env.envid;
  m.ret = static_cast<uint8_t>(env.ret);
  bool deferred = false;
  for (size_t i = 0; i < env.recipients.size(); ++i) {
    const queue::Recipient& r = env.recipients[i];
    const queue::RcptState& s = state->rcpts[i];
    ipc::QueueRcptInfo q;
    q.address = r.address;
    q.orcptType = r.orcptType;
    q.orcpt = r.orcpt;
    q.notify = r.notify;
    q.status = static_cast<ipc::QueueRcptStatus>(s.status);
    q.attempts = s.attempts;
    q.lastAttempt = static_cast<uint64_t>(std::max<int64_t>(s.lastAttempt, 0));
    q.nextAttempt = static_cast<uint64_t>(std::max<int64_t>(s.nextAttempt, 0));
    q.reply = s.reply;
    if (s.status == queue::RcptStatus::Deferred) deferred = true;
    m.recipients.push_back(std::move(q));
  }
  m.state = area == queue::Area::Hold ? ipc::QueueMsgState::Held
            : active                  ? ipc::QueueMsgState::Active
            : deferred                ? ipc::QueueMsgState::Deferred
                                      : ipc::QueueMsgState::Queued;
  return m;
}

Result<std::unique_ptr<QueueControl>> QueueControl::create(event_base* base, UniqueFd fd,
                                                           queue::Queue& queue, Qmgr& qmgr) {
  auto bev = event::newSocketBufferevent(base, std::move(fd));
  if (!bev) return bev.error();
  std::unique_ptr<QueueControl> c(new QueueControl(queue, qmgr));
  c->bev_ = std::move(*bev);
  c->self_ = std::make_shared<QueueControl*>(c.get());
  bufferevent_setcb(c->bev_.get(), &QueueControl::readCb, nullptr, &QueueControl::eventCb, c.get());
  bufferevent_enable(c->bev_.get(), EV_READ);
  return c;
}

QueueControl::~QueueControl() {
  if (self_) *self_ = nullptr;
}

void QueueControl::close(const char* why) {
  YLOG_WARN("queue channel closed reason=\"%s\"", why);
  bev_.reset();
}

void QueueControl::readCb(bufferevent* bev, void* self) {
  auto* c = static_cast<QueueControl*>(self);
  evbuffer* in = bufferevent_get_input(bev);
  while (size_t n = evbuffer_get_length(in)) {
    char buf[4096];
    int got = evbuffer_remove(in, buf, std::min(n, sizeof buf));
    if (got <= 0) break;
    c->reader_.feed(std::string_view(buf, static_cast<size_t>(got)));
  }
  for (;;) {
    auto m = c->reader_.next();
    if (!m) {
      std::string why = "protocol error: " + m.error().message;
      c->close(why.c_str());
      return;
    }
    if (!*m) return;
    const auto* req = std::get_if<ipc::QueueRequest>(&**m);
    if (!req) {
      std::string why = std::string("unexpected message ") +
                        ipc::typeName(static_cast<uint16_t>(ipc::typeOf(**m)));
      c->close(why.c_str());
      return;
    }
    c->onRequest(*req);
    if (!c->bev_) return;
  }
}

void QueueControl::eventCb(bufferevent*, short what, void* self) {
  auto* c = static_cast<QueueControl*>(self);
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    YLOG_DEBUG("queue channel: the master closed it");
    c->bev_.reset();
  }
}

void QueueControl::send(ipc::QueueResult result) {
  if (!bev_) return;
  std::string frame = ipc::encode(result);
  bufferevent_write(bev_.get(), frame.data(), frame.size());
}

void QueueControl::onRequest(const ipc::QueueRequest& req) {
  const uint32_t serial = req.serial;
  auto fail = [&](std::string text) { send({serial, false, std::move(text), {}}); };

  if (req.action == ipc::QueueAction::List) {
    ipc::QueueResult r{serial, true, "", {}};
    size_t total = 0, budget = 0;
    for (queue::Area area : {queue::Area::Queue, queue::Area::Hold}) {
      auto ids = queue_.scan(area);
      if (!ids) return fail("cannot read the queue: " + ids.error().message);
      for (const auto& id : *ids) {
        auto m = describeMessage(queue_, id, area, qmgr_.isActive(id));
        if (!m) {
          if (m.error().errnum != ENOENT)
            YLOG_WARN("queue list: skipping id=%s error=\"%s\"", id.str().c_str(),
                      m.error().message.c_str());
          continue;
        }
        ++total;
        budget += encodedSize(*m);
        if (budget <= kListBudget) r.messages.push_back(std::move(*m));
      }
    }
    if (r.messages.size() < total)
      r.text = "the first " + std::to_string(r.messages.size()) + " of " + std::to_string(total) +
               " messages";
    return send(std::move(r));
  }

  if (!ipc::queueActionNeedsId(req.action)) {  // Flush
    std::shared_ptr<QueueControl*> token = self_;
    qmgr_.flush([token, serial](Result<std::string> r) {
      if (!*token) return;
      (*token)->send({serial, r.ok(), r ? *r : r.error().message, {}});
    });
    return;
  }

  auto id = queue::QueueId::parse(req.id);
  if (!id) return fail(invalidIdError(req.id));

  if (req.action == ipc::QueueAction::Show) {
    for (queue::Area area : {queue::Area::Queue, queue::Area::Hold}) {
      auto m = describeMessage(queue_, *id, area, qmgr_.isActive(*id));
      if (m) return send({serial, true, "", {std::move(*m)}});
      if (m.error().errnum != ENOENT)
        return fail("cannot read message " + id->str() + ": " + m.error().message);
    }
    return fail("no message " + id->str() + " in the queue");
  }

  std::shared_ptr<QueueControl*> token = self_;
  auto done = [token, serial](Result<std::string> r) {
    if (!*token) return;
    (*token)->send({serial, r.ok(), r ? *r : r.error().message, {}});
  };
  switch (req.action) {
    case ipc::QueueAction::Retry:
      return qmgr_.retry(*id, done);
    case ipc::QueueAction::Hold:
      return qmgr_.hold(*id, done);
    case ipc::QueueAction::Release:
      return qmgr_.release(*id, done);
    case ipc::QueueAction::Delete:
      return qmgr_.remove(*id, done);
    case ipc::QueueAction::Bounce:
      return qmgr_.bounce(*id, done);
    default:
      return fail(std::string("unsupported queue action ") + ipc::queueActionName(req.action));
  }
}

}  // namespace yubin::mtad
