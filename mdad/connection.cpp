// One LMTP connection of mdad; see connection.hpp.
#include "mdad/connection.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <utility>

#include "base/log.hpp"
#include "mdad/mdad.hpp"

namespace yubin::mdad {
namespace {

std::string peerCredentials(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "uid=? pid=?";
  return "uid=" + std::to_string(cred.uid) + " pid=" + std::to_string(cred.pid);
}

}  // namespace

// fd is still open when peerCredentials() reads it: the base takes it by
// reference and moves it in its own initializers.
Connection::Connection(Mdad& server, UniqueFd fd, const event::Peer&, smtp::Settings settings)
    : ServerConnection(server.base(), std::move(fd), std::move(settings), server.policy(),
                       "peer=\"" + peerCredentials(fd.get()) + "\""),
      server_(server) {}

// What the copies of one message share with the loop: kept alive by the
// tasks and the completion, whichever ends last.
struct Connection::Job {
  std::shared_ptr<const store::MessageSource> msg;
  std::string sender;
  std::string logId;
  DeliveryPlan plan;
};

Connection::~Connection() {
  if (delivery_) server_.pool().cancel(delivery_);
}

void Connection::messageBegin(const smtp::Envelope&) {
  message_ = MessageBuffer(server_.settings().spoolDir, server_.settings().memoryMessageSize);
}

void Connection::messageData(std::string_view bytes) { message_.append(bytes); }

void Connection::messageEnd() {
  stopTimer();
  const smtp::Envelope& env = session().envelope();
  const uint64_t size = message_.size();

  // A failure that concerns the message itself answers every recipient.
  auto src = message_.finish();
  std::optional<Outcome> common;
  if (!src) {
    YLOG_WARN("spool write failed session=%s error=\"%s\"", logId().c_str(),
              src.error().message.c_str());
    common = outcomeOfError(src.error());
  } else if (auto bad = checkMessage(**src)) {
    YLOG_NOTICE("message refused session=%s size=%llu outcome=%s", logId().c_str(),
                static_cast<unsigned long long>(size), std::string(outcomeName(*bad)).c_str());
    common = bad;
  }
  if (common) {
    reply(std::vector<Outcome>(env.recipients.size(), *common), size, false);
    return;
  }

  auto job = std::make_shared<Job>();
  job->msg = std::move(*src);
  job->sender = env.nullSender ? std::string() : env.from.normalized();
  job->logId = logId();
  Deliverer& deliverer = server_.deliverer();
  for (const smtp::Recipient& r : env.recipients)
    deliverer.plan(job->plan, server_.directory(), server_.policy().addressOf(r.address),
                   job->logId);
  if (job->plan.users.empty()) {  // nothing to write: answer at once
    reply(deliverer.outcomes(job->plan, job->logId), size, false);
    return;
  }
  // One task per copy. The Deliverer outlives the pool (Mdad destroys the
  // pool first, which waits for running tasks).
  std::vector<event::WorkerPool::Task> tasks;
  for (size_t i = 0; i < job->plan.users.size(); ++i) {
    tasks.push_back([job, &deliverer, i] {
      job->plan.results[i] =
          deliverer.deliverToUser(job->plan.users[i], *job->msg, job->sender, job->logId);
    });
  }
  delivery_ = server_.pool().submit(std::move(tasks), [this, job] {
    delivery_ = 0;
    delivered(*job);
  });
}

void Connection::delivered(const Job& job) {
  reply(server_.deliverer().outcomes(job.plan, job.logId), job.msg->size(), true);
}

void Connection::reply(const std::vector<Outcome>& outcomes, uint64_t size, bool async) {
  const smtp::Envelope& env = session().envelope();
  const bool quotaTemporary = server_.deliverer().settings().quotaTemporary;
  std::vector<smtp::Reply> replies;
  replies.reserve(outcomes.size());
  size_t delivered = 0;
  for (Outcome o : outcomes) {
    if (o == Outcome::Delivered) ++delivered;
    replies.push_back(replyFor(o, quotaTemporary));
  }
  countMessage();
  YLOG_INFO("message done session=%s from=<%s> size=%llu nrcpt=%zu delivered=%zu", logId().c_str(),
            env.nullSender ? "" : env.from.normalized().c_str(),
            static_cast<unsigned long long>(size), outcomes.size(), delivered);
  session().messageDone(replies);  // may process pipelined commands at once
  // Outside messageEnd() the engine has been buffering: read on.
  if (async) resumeReading();
}

void Connection::messageAbort() { message_.discard(); }

void Connection::finished() {
  message_.discard();
  if (delivery_) server_.pool().cancel(std::exchange(delivery_, 0));
  server_.closed(this);  // destroys this
}

}  // namespace yubin::mdad
