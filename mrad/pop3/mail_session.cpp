// The POP3 TRANSACTION and UPDATE states; see mail_session.hpp.
#include "mrad/pop3/mail_session.hpp"

#include <algorithm>
#include <utility>

#include "base/log.hpp"

namespace yubin::mrad::pop3 {
namespace {

constexpr size_t kReadPiece = size_t{64} * 1024;

const char* const kLoginVerbs[] = {"USER", "PASS", "AUTH", "APOP", "STLS"};

}  // namespace

MailSession::MailSession(store::Folder& folder, MailSettings s)
    : folder_(folder),
      settings_(std::move(s)),
      lines_(settings_.limits.maxLine),
      deleted_(folder.messages().size()) {}

void MailSession::start(std::string_view pendingInput) {
  uint64_t octets = 0;
  for (const auto& m : folder_.messages()) octets += m.size;
  out_ += ok("Logged in, " + std::to_string(folder_.messages().size()) + " messages (" +
             std::to_string(octets) + " octets)");
  feed(pendingInput);
}

std::string MailSession::takeOutput() { return std::exchange(out_, std::string()); }

void MailSession::feed(std::string_view bytes) {
  lines_.feed(bytes);
  run();
}

void MailSession::run() {
  std::string line;
  while (!closing_ && !transfer_) {
    auto kind = lines_.next(&line);
    if (kind == LineReader::Kind::None) return;
    if (kind == LineReader::Kind::TooLong) {
      bad(err("Line too long"));
      continue;
    }
    handle(parseCommand(line));
  }
}

void MailSession::bad(const std::string& reply) {
  if (++bad_ >= settings_.limits.maxBadCommands) {
    out_ += err("Too many bad commands, closing connection");
    closing_ = true;
    return;
  }
  out_ += reply;
}

std::optional<size_t> MailSession::message(const std::string& arg) {
  auto n = parseNumber(arg);
  if (!n || *n == 0 || *n > folder_.messages().size()) {
    bad(err("No such message"));
    return std::nullopt;
  }
  size_t i = static_cast<size_t>(*n - 1);
  if (deleted_[i]) {
    out_ += err("Message " + arg + " already deleted");
    return std::nullopt;
  }
  return i;
}

void MailSession::handle(const Command& c) {
  const std::string& v = c.verb;
  const auto& msgs = folder_.messages();
  auto totals = [&] {
    uint64_t n = 0, octets = 0;
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (deleted_[i]) continue;
      ++n;
      octets += msgs[i].size;
    }
    return std::pair{n, octets};
  };
  if (v == "STAT") {
    if (!c.args.empty()) return bad(err("STAT takes no argument"));
    auto [n, octets] = totals();
    out_ += ok(std::to_string(n) + " " + std::to_string(octets));
  } else if (v == "LIST" || v == "UIDL") {
    bool list = v == "LIST";
    auto field = [&](size_t i) { return list ? std::to_string(msgs[i].size) : msgs[i].uid; };
    if (c.args.size() > 1) return bad(err("Usage: " + v + " [message]"));
    if (c.args.size() == 1) {
      auto i = message(c.args[0]);
      if (i) out_ += ok(std::to_string(*i + 1) + " " + field(*i));
      return;
    }
    auto [n, octets] = totals();
    out_ += list ? ok(std::to_string(n) + " messages (" + std::to_string(octets) + " octets)")
                 : ok("Unique ids follow");
    for (size_t i = 0; i < msgs.size(); ++i)
      if (!deleted_[i]) out_ += std::to_string(i + 1) + " " + field(i) + "\r\n";
    out_ += ".\r\n";
  } else if (v == "RETR") {
    if (c.args.size() != 1) return bad(err("Usage: RETR message"));
    if (auto i = message(c.args[0])) beginTransfer(*i, std::nullopt);
  } else if (v == "TOP") {
    if (c.args.size() != 2) return bad(err("Usage: TOP message lines"));
    auto lines = parseNumber(c.args[1]);
    if (!lines) return bad(err("Usage: TOP message lines"));
    if (auto i = message(c.args[0])) beginTransfer(*i, *lines);
  } else if (v == "DELE") {
    if (c.args.size() != 1) return bad(err("Usage: DELE message"));
    if (auto i = message(c.args[0])) {
      deleted_[*i] = true;
      out_ += ok("Message " + c.args[0] + " deleted");
    }
  } else if (v == "NOOP") {
    if (!c.args.empty()) return bad(err("NOOP takes no argument"));
    out_ += ok("");
  } else if (v == "RSET") {
    if (!c.args.empty()) return bad(err("RSET takes no argument"));
    std::fill(deleted_.begin(), deleted_.end(), false);
    auto [n, octets] = totals();
    out_ += ok("Maildrop has " + std::to_string(n) + " messages (" + std::to_string(octets) +
               " octets)");
  } else if (v == "QUIT") {
    if (!c.args.empty()) return bad(err("QUIT takes no argument"));
    quit();
  } else if (v == "CAPA") {
    if (!c.args.empty()) return bad(err("CAPA takes no argument"));
    out_ += ok("Capability list follows") +
            "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
            "IMPLEMENTATION Yubin\r\n.\r\n";
  } else if (v.empty()) {
    bad(err("Empty command"));
  } else {
    for (const char* t : kLoginVerbs)
      if (v == t) return bad(err("Already logged in"));
    bad(err("Unknown command"));
  }
}

void MailSession::beginTransfer(size_t index, std::optional<uint64_t> topLines) {
  auto reader = folder_.open(index);
  if (!reader) {
    YLOG_ERROR("cannot read message session=%s user=%s msg=%zu error=\"%s\"",
               settings_.logId.c_str(), settings_.user.c_str(), index + 1,
               reader.error().message.c_str());
    out_ += errCode(kSysTemp, "Cannot read the message now, try again later");
    return;
  }
  if (topLines) {
    out_ += ok("Top of message follows");
    ++stats_.tops;
  } else {
    out_ += ok(std::to_string(folder_.messages()[index].size) + " octets");
  }
  transfer_ = std::make_unique<Transfer>(
      Transfer{std::move(*reader), WireEncoder(topLines), index, !topLines.has_value()});
}

void MailSession::produce(size_t budget) {
  size_t start = out_.size();
  // One allocation for the piece (LF -> CRLF adds about 1/70 on text).
  out_.reserve(start + budget + budget / 16 + 64);
  while (transfer_ && out_.size() - start < budget) {
    chunk_.clear();
    auto n = transfer_->reader->read(chunk_, std::min(kReadPiece, std::max<size_t>(budget, 1)));
    if (!n) {
      // The "+OK" is out: the only honest signal left is to hang up before
      // the terminating dot, so the client sees the message incomplete.
      YLOG_ERROR("message read failed mid-transfer, closing session=%s user=%s msg=%zu "
                 "error=\"%s\"",
                 settings_.logId.c_str(), settings_.user.c_str(), transfer_->index + 1,
                 n.error().message.c_str());
      transfer_.reset();
      closing_ = true;
      return;
    }
    bool more = *n > 0 && transfer_->encoder.encode(chunk_, out_);
    if (more) continue;
    transfer_->encoder.finish(out_);
    if (transfer_->full) {
      ++stats_.retrieved;
      stats_.retrievedBytes += folder_.messages()[transfer_->index].size;
      if (auto st = folder_.markSeen(transfer_->index); !st)
        YLOG_WARN("cannot mark message seen session=%s user=%s msg=%zu error=\"%s\"",
                  settings_.logId.c_str(), settings_.user.c_str(), transfer_->index + 1,
                  st.error().message.c_str());
    }
    transfer_.reset();
    run();
  }
}

void MailSession::quit() {
  std::vector<size_t> gone;
  for (size_t i = 0; i < deleted_.size(); ++i)
    if (deleted_[i]) gone.push_back(i);
  closing_ = true;
  updated_ = true;
  if (gone.empty()) {
    out_ += ok("Bye");
    return;
  }
  if (auto st = folder_.expunge(gone); !st) {
    YLOG_ERROR("update failed, messages kept session=%s user=%s error=\"%s\"",
               settings_.logId.c_str(), settings_.user.c_str(), st.error().message.c_str());
    out_ += errCode(kSysTemp, "Some deleted messages were not removed");
    return;
  }
  stats_.deleted = gone.size();
  out_ += ok("Bye, " + std::to_string(gone.size()) + " messages deleted");
}

}  // namespace yubin::mrad::pop3
