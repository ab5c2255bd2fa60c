// One LMTP connection of mdad; see connection.hpp.
#include "mdad/connection.hpp"

#include <sys/socket.h>

#include <cerrno>

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

void Connection::messageBegin(const smtp::Envelope&) {
  auto s = SpoolFile::create(server_.settings().spoolDir);
  if (!s) {
    // Reported per recipient at the end of the data; until then the data
    // is read and dropped.
    YLOG_WARN("spool file not created session=%s error=\"%s\"", logId().c_str(),
              s.error().message.c_str());
    spool_ = SpoolFile();
    spoolError_ = s.error();
    return;
  }
  spoolError_.reset();
  spool_ = std::move(*s);
}

void Connection::messageData(std::string_view bytes) { spool_.append(bytes); }

void Connection::messageEnd() {
  stopTimer();
  const smtp::Envelope& env = session().envelope();
  const bool quotaTemporary = server_.deliverer().settings().quotaTemporary;
  const std::string sender = env.nullSender ? std::string() : env.from.normalized();
  const size_t n = env.recipients.size();

  // A failure that concerns the message itself answers every recipient.
  std::optional<Outcome> common;
  std::optional<store::FileSource> source;
  if (spoolError_) {
    common = outcomeOfError(*spoolError_);
  } else if (auto src = spool_.finish(); !src) {
    YLOG_WARN("spool write failed session=%s error=\"%s\"", logId().c_str(),
              src.error().message.c_str());
    common = outcomeOfError(src.error());
  } else {
    source.emplace(std::move(*src));
    if (auto bad = checkMessage(*source)) {
      YLOG_NOTICE("message refused session=%s size=%llu outcome=%s", logId().c_str(),
                  static_cast<unsigned long long>(source->size()),
                  std::string(outcomeName(*bad)).c_str());
      common = bad;
    }
  }
  spool_ = SpoolFile();
  spoolError_.reset();

  std::vector<smtp::Reply> replies;
  replies.reserve(n);
  size_t delivered = 0;
  Deliverer::Served served;
  for (const smtp::Recipient& r : env.recipients) {
    Outcome o = common ? *common
                       : server_.deliverer().deliverToRecipient(
                             server_.directory(), server_.policy().addressOf(r.address), *source,
                             sender, logId(), served);
    if (o == Outcome::Delivered) ++delivered;
    replies.push_back(replyFor(o, quotaTemporary));
  }
  countMessage();
  YLOG_INFO("message done session=%s from=<%s> size=%llu nrcpt=%zu delivered=%zu", logId().c_str(),
            sender.c_str(), static_cast<unsigned long long>(source ? source->size() : 0), n,
            delivered);
  session().messageDone(replies);  // may process pipelined commands at once
}

void Connection::messageAbort() {
  spool_.discard();
  spoolError_.reset();
}

void Connection::finished() {
  spool_.discard();
  server_.closed(this);  // destroys this
}

}  // namespace yubin::mdad
