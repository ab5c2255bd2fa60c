// yubin-testd: a test-only daemon on the service skeleton, standing in for a
// real daemon in yubin-master's integration tests. It greets every connection
// with "testd <pid>\r\n" and then echoes each line back. It reads the section
// named like the program it was started as (program_dir/mtad -> [mtad],
// program_dir/mdad -> [mdad]; anything else -> [mtad]) and serves every
// listening socket of that section. See README.md.
// Trust: test code; reads the network like a daemon would, runs after the
// skeleton's privilege drop. Never installed.
#include <event2/buffer.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "base/log.hpp"
#include "service/service.hpp"

namespace {

using namespace yubin;

class Testd final : public service::Daemon {
 public:
  explicit Testd(std::string section) : section_(std::move(section)) {}

  Status start(service::Context& ctx) override {
    ctx_ = &ctx;
    for (const auto& k : config::schema()) {
      if (k.section != section_) continue;
      if (k.type != config::Type::Listen && k.type != config::Type::UnixListen) continue;
      auto ls = service::acceptOn(ctx, k.key, [this](UniqueFd fd, const yubin::event::Peer& peer) {
        accept(std::move(fd), peer);
      });
      if (!ls) return ls.error();
      for (auto& l : *ls) listeners_.push_back(std::move(l));
    }
    if (listeners_.empty()) return Error{"no listening socket in [" + section_ + "]"};
    return {};
  }

  void reload(const config::Config&) override { YLOG_INFO("testd reloaded"); }

  // Stop accepting; each session gets "testd stopping" and is closed once
  // that is written; the loop ends with the last one.
  void stop(service::Context& ctx) override {
    for (auto& l : listeners_) l->disable();
    if (sessions_.empty()) return ctx.exit();
    for (auto& [bev, s] : sessions_) {
      write(bev, "testd stopping\r\n");
      s.closing = true;
    }
  }

  size_t sessions() const override { return sessions_.size(); }

 private:
  struct Session {
    yubin::event::Bufferevent bev;
    bool closing = false;
  };

  static void write(bufferevent* bev, const std::string& s) {
    bufferevent_write(bev, s.data(), s.size());
  }

  void accept(UniqueFd fd, const yubin::event::Peer& peer) {
    auto bev = yubin::event::newSocketBufferevent(ctx_->base(), std::move(fd));
    if (!bev) {
      YLOG_WARN("testd: %s", bev.error().message.c_str());
      return;
    }
    bufferevent* raw = bev->get();
    // A client that sends lines forever must not grow our memory forever.
    bufferevent_setwatermark(raw, EV_READ, 0, 64 * 1024);
    bufferevent_setcb(raw, &Testd::readCb, &Testd::writeCb, &Testd::eventCb, this);
    bufferevent_enable(raw, EV_READ | EV_WRITE);
    sessions_[raw].bev = std::move(*bev);
    YLOG_DEBUG("testd session peer=%s sessions=%zu", peer.text().c_str(), sessions_.size());
    write(raw, "testd " + std::to_string(::getpid()) + "\r\n");
  }

  void close(bufferevent* bev) {
    sessions_.erase(bev);
    if (ctx_->stopping() && sessions_.empty()) ctx_->exit();
  }

  static void readCb(bufferevent* bev, void* self) {
    auto* d = static_cast<Testd*>(self);
    evbuffer* in = bufferevent_get_input(bev);
    size_t n = 0;
    while (char* line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) {
      write(bev, std::string(line, n) + "\r\n");
      std::free(line);
    }
    // A line longer than the watermark: drop the client.
    if (evbuffer_get_length(in) >= 64 * 1024) d->close(bev);
  }
  static void writeCb(bufferevent* bev, void* self) {
    auto* d = static_cast<Testd*>(self);
    auto it = d->sessions_.find(bev);
    if (it != d->sessions_.end() && it->second.closing) d->close(bev);
  }
  static void eventCb(bufferevent* bev, short what, void* self) {
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) static_cast<Testd*>(self)->close(bev);
  }

  std::string section_;
  service::Context* ctx_ = nullptr;
  std::vector<std::unique_ptr<yubin::event::Listener>> listeners_;
  std::map<bufferevent*, Session> sessions_;
};

// The section is the name the master started us as.
std::string sectionFor(const char* argv0) {
  std::string base = argv0 ? argv0 : "";
  if (auto slash = base.rfind('/'); slash != std::string::npos) base = base.substr(slash + 1);
  for (std::string_view s : config::daemonSections())
    if (s == base) return base;
  return "mtad";
}

}  // namespace

int main(int argc, char** argv) {
  static const std::string section = sectionFor(argc > 0 ? argv[0] : nullptr);
  const service::Spec spec{
      .name = "yubin-testd",
      .section = section,
      .summary = "Test daemon: greets each connection with \"testd <pid>\" and echoes lines.",
      .make = [] { return std::make_unique<Testd>(section); },
  };
  return service::run(argc, argv, spec);
}
