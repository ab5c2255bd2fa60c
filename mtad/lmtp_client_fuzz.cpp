// libFuzzer target for mtad's LMTP client (lmtp_client.hpp): a hostile mdad's
// bytes, cut into pieces, answer an LmtpClient that runs up to four
// transactions (one to four recipients each) on the real event loop: the
// greeting, the LHLO reply, RSET/MAIL/RCPT replies, the DATA reply and the
// one reply per accepted recipient after the final dot (RFC 2033 §4.2). The
// reply grammar itself is smtp/client_reply_fuzz.cpp's; this drives the
// client's state machine around it.
//
// LmtpClient owns its socket (it connects to a Unix socket path), so the
// harness plays mdad on a listening socket in Linux's abstract namespace
// (no file, one per process) and accepts each connection the client makes;
// when the client drops a connection, the bytes left go to its next one.
// The end of the input is the server closing.
//
// Input: byte 0 = the requests (recipients, SMTPUTF8, 8BITMIME, how many
// transactions, small read chunks and write buffer), byte 1 = how the bytes
// are cut into pieces, byte 2 = the message, which timeout is zero and the
// lockstep (no piece holds more than one line end, so the client has
// flushed its output before the next reply comes); the rest is what the
// server sends.
//
// Checked, besides memory safety: the client writes only whole CRLF lines,
// and only LHLO (first, once), RSET, MAIL, RCPT, DATA and QUIT; MAIL carries
// SMTPUTF8 exactly when asked, BODY=8BITMIME only when asked; the content
// after DATA is the queued message dot-stuffed, byte for byte; every
// transaction ends with exactly one result, which has one reply per
// recipient, each 2xx, 4xx or 5xx (never 3xx); a recipient is given a 2xx
// only when the content and the final dot went out in that transaction
// (checked in the lockstep, see checkResult), and an SMTPUTF8
// message only by a server that offered SMTPUTF8; a "retryable" result
// has only 4xx replies.
// Trust: test code.
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.hpp"
#include "base/unique_fd.hpp"
#include "event/event.hpp"
#include "mtad/lmtp_client.hpp"
#include "queue/queue.hpp"
#include "smtp/data.hpp"

using namespace yubin;
using namespace yubin::mtad;

namespace {

constexpr char kSender[] = "alice@example.org";
constexpr char kLhlo[] = "mx.fuzz";

// Message contents, queued once per process. None starts with a command
// word, so the harness can tell content from the command that follows a
// refused DATA.
const std::vector<std::string>& contents() {
  static const std::vector<std::string> c = [] {
    std::string big;
    for (int i = 0; i < 120; ++i) {
      big += (i % 5 == 0) ? "." : "";
      big += "line " + std::to_string(i) + " of a longer message\r\n";
      if (i % 17 == 0) big += ".\r\n";
    }
    return std::vector<std::string>{
        "Subject: t\r\n\r\nhello\r\n",
        "Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nno final line end",
        "Subject: empty body\r\n\r\n",
        "Subject: long\r\n\r\n" + big,
    };
  }();
  return c;
}

std::string stuffed(std::string_view content) {
  smtp::DotEncoder e;
  std::string out;
  e.encode(content, out);
  e.finish(out);
  return out;
}

// What lives as long as the process: the loop, the queued messages and the
// listening socket.
struct World {
  World() {
    ::signal(SIGPIPE, SIG_IGN);
    // YUBIN_FUZZ_DEBUG=1 shows the client's state changes when replaying.
    logInit("fuzz", LogTarget::Stderr,
            std::getenv("YUBIN_FUZZ_DEBUG") ? LogLevel::Debug : LogLevel::Error);
    auto b = yubin::event::newEventBase();
    if (!b) std::abort();
    base = std::move(*b);

    // The queue on tmpfs; the files stay open, the folder goes at once.
    char tmpl[] = "/dev/shm/yubin-lmtp-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    {
      auto q = queue::Queue::open(
          {.spoolDir = std::string(tmpl) + "/spool", .fsyncThreads = 1, .stateThreads = 1});
      if (!q) std::abort();
      for (const auto& c : contents()) {
        queue::Envelope env;
        env.sender = kSender;
        env.recipients.push_back({"bob@example.org", 0, "", ""});
        env.arrivalTime = 1700000000;
        auto m = (*q)->begin(env);
        if (!m || !m->append(c)) std::abort();
        auto id = (*q)->commitNow(std::move(*m));
        if (!id) std::abort();
        auto f = (*q)->openMessage(*id);
        if (!f) std::abort();
        files.push_back(std::move(*f));
        wires.push_back(stuffed(c));
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(tmpl, ec);

    // The abstract name is the whole sun_path (LmtpClient connects with
    // sizeof(sockaddr_un)), so bind with the same length.
    socketPath = std::string(1, '\0') + "yubin-lmtp-fuzz-" + std::to_string(::getpid());
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, socketPath.data(), socketPath.size());
    listener = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listener || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(listener.get(), 64) != 0)
      std::abort();
  }

  yubin::event::EventBase base;
  std::vector<queue::QueueFile> files;
  std::vector<std::string> wires;  // each file's content as it must go out
  std::string socketPath;
  UniqueFd listener;
};

World& world() {
  static World w;
  return w;
}

class Harness;

// mdad's end of one connection: what the client wrote, checked line by line.
struct ServerConn {
  Harness* harness = nullptr;
  UniqueFd fd;
  yubin::event::Event ev;  // readable: drain()
  std::string in;          // client bytes not yet checked
  bool greeted = false;    // LHLO seen
  bool afterData = false;  // DATA seen: content or the next command follows
  bool content = false;    // in the content
  size_t contentAt = 0;    // bytes of the stuffed content matched so far
  int tx = -1;             // the transaction whose MAIL came last
  bool eof = false;
};

// What the client wrote for one transaction (told apart by its sender).
struct TxOutput {
  int rcpts = 0;
  bool data = false;  // DATA
  bool dot = false;   // the whole content and the final dot
};

class Harness {
 public:
  Harness(uint8_t flags, uint8_t pieceSeed, uint8_t options) : w_(world()), pieceSeed_(pieceSeed) {
    recipients_ = 1 + (flags & 3);
    smtputf8_ = flags & 4;
    body8_ = flags & 8;
    planned_ = 1 + (flags >> 4 & 3);
    message_ = options & 3;
    lockstep_ = options & 32;
    settings_.socketPath = w_.socketPath;
    settings_.lhloName = kLhlo;
    if (flags & 64) {
      settings_.readChunk = 7;
      settings_.outputHighWater = 64;
    }
    // A zero timeout fires on the next loop turn: the timeout paths.
    switch (options >> 2 & 7) {
      case 1:
        settings_.connectTimeout = std::chrono::milliseconds(0);
        break;
      case 2:
        settings_.replyTimeout = std::chrono::milliseconds(0);
        break;
      case 3:
        settings_.dataTimeout = std::chrono::milliseconds(0);
        break;
      case 4:
        settings_.idleTimeout = std::chrono::milliseconds(0);
        break;
      default:
        break;
    }
    client_.emplace(w_.base.get(), settings_);
    client_->setOnIdleClose([this] { ++progress_; });
    // The loop says when to accept and read: no polling syscalls per turn.
    acceptEv_.reset(event_new(
        w_.base.get(), w_.listener.get(), EV_READ | EV_PERSIST,
        [](evutil_socket_t, short, void* self) { static_cast<Harness*>(self)->acceptAll(); },
        this));
    if (!acceptEv_ || event_add(acceptEv_.get(), nullptr) != 0) std::abort();
  }

  ~Harness() {
    client_.reset();
    acceptEv_.reset();
    for (auto& c : conns_) c.ev.reset();
    // Bufferevents freed with callbacks deferred are released by the loop.
    event_base_loop(w_.base.get(), EVLOOP_NONBLOCK);
    acceptAll();  // a connection the client made and dropped at once
  }

  void run(std::string_view bytes) {
    size_t pos = 0, step = 0;
    int stuck = 0;
    startNext();
    spin();
    while (pos < bytes.size()) {
      if (!current() && !startNext()) break;  // nobody left to talk to
      spin();
      ServerConn* c = current();
      if (!c) break;
      size_t n = 1 + (pieceSeed_ * 31 + step++ * 7) % 83;
      n = std::min(n, bytes.size() - pos);
      if (lockstep_) {
        // At most one line end per piece, so at most one reply completes
        // before the client has flushed what the last one made it write.
        size_t lf = bytes.substr(pos, n).find('\n');
        if (lf != std::string_view::npos) n = lf + 1;
      }
      ssize_t k = ::send(c->fd.get(), bytes.data() + pos, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (k < 0 && errno == EAGAIN && ++stuck < 100) {
        spin();  // the client is not reading yet
        continue;
      }
      stuck = 0;
      if (k <= 0) {
        // The client is gone from this connection; what is left goes to
        // its next one.
        c->eof = true;
        spin();
        continue;
      }
      pos += static_cast<size_t>(k);
      spin();
      if (!client_->busy()) startNext();
    }
    // The server hangs up (and on any connection made from now on): a
    // running transaction must end now.
    hangup_ = true;
    for (auto& c : conns_) ::shutdown(c.fd.get(), SHUT_WR);
    spin();
    if (client_->busy()) std::abort();  // no result although the connection is gone
    client_->close();
    spin();
    for (auto& c : conns_) {
      drain(c);
      // Nothing but content may stop in the middle of a line.
      if (!c.content && !c.afterData && !c.in.empty()) std::abort();
    }
    // Judged now that every byte the client wrote has been read.
    if (results_.size() != static_cast<size_t>(sent_)) std::abort();
    for (size_t i = 0; i < results_.size(); ++i) checkResult(static_cast<int>(i), results_[i]);
  }

 private:
  ServerConn* current() {
    if (conns_.empty() || conns_.back().eof) return nullptr;
    return &conns_.back();
  }

  static std::string sender(int tx) { return "s" + std::to_string(tx) + "@example.org"; }

  // Starts the next planned transaction when the client is free.
  bool startNext() {
    if (client_->busy() || sent_ >= planned_) return false;
    LmtpRequest r;
    r.sender = sender(sent_);
    r.body = body8_ ? queue::Body::EightBitMime : queue::Body::SevenBit;
    r.smtputf8 = smtputf8_;
    for (int i = 0; i < recipients_; ++i) r.recipients.push_back("r" + std::to_string(i) + "@x");
    r.file = &w_.files[message_];
    r.logId = "fuzz";
    ++sent_;
    out_.emplace_back();
    client_->send(std::move(r), [this](LmtpResult res) {
      ++progress_;
      // SMTPUTF8 mail goes only to a server that offered it.
      bool delivered = std::any_of(res.replies.begin(), res.replies.end(),
                                   [](const auto& rep) { return rep.code / 100 == 2; });
      if (smtputf8_ && delivered && !client_->smtputf8()) std::abort();
      results_.push_back(std::move(res));
    });
    return true;
  }

  void checkResult(int tx, const LmtpResult& r) {
    if (r.replies.size() != static_cast<size_t>(recipients_)) std::abort();
    if (r.fileError) std::abort();  // the file is fine
    for (const auto& rep : r.replies) {
      const int cls = rep.code / 100;
      if (cls != 2 && cls != 4 && cls != 5) std::abort();
      // Delivered only if the message went out whole, final dot included.
      // Judged in the lockstep only: otherwise a hostile server may send
      // every reply at once, the final ones before the client has flushed
      // DATA and the content, and a protocol error after them drops the
      // connection with all that unsent.
      if (cls == 2 && lockstep_ && !out_[tx].dot) std::abort();
      if (r.retryable && cls != 4) std::abort();
    }
  }

  // Turns the loop until nothing moves for a few turns.
  // (A timer the client arms for 0 ms fires one turn later, so two quiet
  // turns in a row are not yet the end.)
  void spin() {
    int quiet = 0;
    for (int i = 0; i < 100000 && quiet < 3; ++i) {
      const uint64_t before = progress_;
      event_base_loop(w_.base.get(), EVLOOP_NONBLOCK);
      quiet = progress_ == before ? quiet + 1 : 0;
    }
  }

  void acceptAll() {
    for (;;) {
      UniqueFd fd(::accept4(w_.listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd) return;
      ++progress_;
      // One connection at a time: a new one means the last is done with.
      for (auto& c : conns_) c.eof = true;
      if (hangup_) ::shutdown(fd.get(), SHUT_WR);
      ServerConn& c = conns_.emplace_back();  // a deque: &c stays valid
      c.fd = std::move(fd);
      c.ev.reset(event_new(
          w_.base.get(), c.fd.get(), EV_READ | EV_PERSIST,
          [](evutil_socket_t, short, void* conn) {
            auto* c = static_cast<ServerConn*>(conn);
            c->harness->drain(*c);
          },
          &c));
      c.harness = this;
      if (!c.ev || event_add(c.ev.get(), nullptr) != 0) std::abort();
    }
  }

  void drain(ServerConn& c) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        ++progress_;
        c.in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) {
        c.eof = true;
        c.ev.reset();  // else it stays readable
      }
      break;
    }
    check(c);
  }

  // Consumes the client's complete lines (and content) from c.in.
  void check(ServerConn& c) {
    const std::string& wire = w_.wires[message_];
    for (;;) {
      if (c.afterData && !c.in.empty()) {
        // The contents start with "Subject", no command with an S.
        c.afterData = false;
        c.content = c.in[0] == 'S';
        c.contentAt = 0;
      }
      if (c.content) {
        size_t n = std::min(c.in.size(), wire.size() - c.contentAt);
        if (c.in.compare(0, n, wire, c.contentAt, n) != 0) std::abort();
        c.in.erase(0, n);
        c.contentAt += n;
        if (c.contentAt < wire.size()) return;
        c.content = false;
        if (c.tx < 0) std::abort();
        out_[c.tx].dot = true;
        continue;
      }
      size_t e = c.in.find("\r\n");
      if (e == std::string::npos) {
        if (c.in.find('\n') != std::string::npos) std::abort();  // a bare LF
        return;
      }
      std::string line = c.in.substr(0, e);
      c.in.erase(0, e + 2);
      command(c, line);
    }
  }

  void command(ServerConn& c, const std::string& line) {
    if (line.find('\r') != std::string::npos || line.find('\n') != std::string::npos) std::abort();
    if (line == std::string("LHLO ") + kLhlo) {
      if (c.greeted) std::abort();
      c.greeted = true;
      return;
    }
    if (!c.greeted) std::abort();  // anything before LHLO
    if (line == "RSET" || line == "QUIT") return;
    if (line == "DATA") {
      if (c.tx < 0 || out_[c.tx].rcpts == 0 || out_[c.tx].data) std::abort();
      out_[c.tx].data = true;
      c.afterData = true;
      return;
    }
    if (line.rfind("RCPT TO:<", 0) == 0) {
      if (c.tx < 0 || ++out_[c.tx].rcpts > recipients_) std::abort();
      return;
    }
    // MAIL FROM:<sN@example.org>, N a transaction already started and
    // later than the last MAIL's.
    if (line.rfind("MAIL FROM:<s", 0) != 0) std::abort();
    size_t close = line.find('>');
    if (close == std::string::npos) std::abort();
    int tx = -1;
    for (int i = 0; i < sent_; ++i)
      if (line.compare(11, close - 11, sender(i)) == 0) tx = i;
    if (tx < 0 || tx <= c.tx) std::abort();
    c.tx = tx;
    std::string params = line.substr(close + 1);
    std::string want;
    if (body8_ && params.rfind(" BODY=8BITMIME", 0) == 0) want += " BODY=8BITMIME";
    if (smtputf8_) want += " SMTPUTF8";
    if (params != want) std::abort();
  }

  World& w_;
  uint8_t pieceSeed_;
  bool lockstep_ = false;  // one reply at a time, the client's output flushed between
  int recipients_ = 1;
  bool smtputf8_ = false;
  bool body8_ = false;
  int planned_ = 1;
  int sent_ = 0;
  size_t message_ = 0;
  LmtpSettings settings_;
  std::optional<LmtpClient> client_;
  std::deque<ServerConn> conns_;
  yubin::event::Event acceptEv_;
  uint64_t progress_ = 0;
  bool hangup_ = false;              // the input is used up: the server closes
  std::vector<TxOutput> out_;        // per transaction
  std::vector<LmtpResult> results_;  // per transaction, in order
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  Harness h(data[0], data[1], data[2]);
  h.run(std::string_view(reinterpret_cast<const char*>(data + 3), size - 3));
  return 0;
}
