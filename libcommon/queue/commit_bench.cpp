// Local benchmark of the group committer (not part of meson test): N
// messages of SIZE bytes committed from S concurrent "sessions" on one
// event_base through Queue::begin/append/commit, each session starting its
// next message from the callback of the previous one, as mtad's SMTP
// sessions do. Prints commits per second and the file and directory fsyncs
// per message (the spare makers' directory fsyncs included), and how long
// reopening the spool takes (recovery verifies every message's checksum).
// Figures: docs/queue.md, "Group commit" and "Spare files".
//
//   commit_bench [--dir D] [-n N] [--size B] [--sessions 10,50]
//                [--threads 1,4,8] [--repeat R] [--fdatasync] [--spares S]
//
// --spares S: QueueOptions::maxSpares (0, the default: no spares). Also
// prints the cost of the checksum over SIZE bytes.
// --dir must be on the file system under test (default /var/tmp). Each run
// uses a fresh spool under it and removes it afterwards. --fdatasync makes
// the Fs use fdatasync(2) for files (to measure it; the queue uses fsync).
// Trust: a developer tool; writes only under --dir.
#include <event2/event.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "queue/queue.hpp"

using namespace yubin;
using namespace yubin::queue;

namespace {

class CountingFs : public RealFs {
 public:
  explicit CountingFs(bool useFdatasync) : fdatasync_(useFdatasync) {}
  Status fsync(int fd) override {
    ++fsyncs;
    if (!fdatasync_) return RealFs::fsync(fd);
    if (::fdatasync(fd) != 0) return errnoError("fdatasync");
    return {};
  }
  Status fsyncDir(const std::string& d) override {
    ++dirFsyncs;
    return RealFs::fsyncDir(d);
  }
  std::atomic<int> fsyncs{0};
  std::atomic<int> dirFsyncs{0};

 private:
  bool fdatasync_;
};

std::vector<size_t> parseList(const char* s) {
  std::vector<size_t> out;
  std::string str(s);
  size_t pos = 0;
  while (pos <= str.size()) {
    size_t comma = str.find(',', pos);
    if (comma == std::string::npos) comma = str.size();
    out.push_back(std::stoul(str.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

struct RunResult {
  double perSecond;
  double fsyncsPerMsg;
  double dirFsyncsPerMsg;
  double recoverMs;
};

RunResult runOnce(const std::string& parent, size_t n, size_t size, size_t sessions,
                  size_t threads, bool useFdatasync, size_t spares) {
  std::string spool = parent + "/yubin-commit-bench-" + std::to_string(::getpid());
  std::filesystem::remove_all(spool);
  CountingFs fs(useFdatasync);
  CPtr<event_base, event_base_free> base(event_base_new());
  std::string body(size, 'x');
  for (size_t i = 78; i < body.size(); i += 80) body.replace(i - 2, 2, "\r\n");
  size_t started = 0, done = 0, failed = 0;
  std::chrono::steady_clock::time_point t0;
  {
    QueueOptions o;
    o.spoolDir = spool;
    o.fs = &fs;
    o.fsyncThreads = threads;
    o.maxSpares = spares;
    o.createOnFlush = true;
    auto q = Queue::open(o);
    if (!q) fatal("open: %s", q.error().message.c_str());
    Queue& queue = **q;
    if (auto st = queue.attachLoop(base.get()); !st) fatal("attach: %s", st.error().message.c_str());
    int fsyncs0 = fs.fsyncs, dirs0 = fs.dirFsyncs;
    std::function<void()> next = [&] {
      if (started == n) return;
      ++started;
      auto m = queue.begin([] {
        Envelope env;
        env.sender = "sender@example.org";
        env.recipients.push_back({"rcpt@example.net", 0, "", ""});
        env.arrivalTime = 1700000000;
        env.clientAddress = "127.0.0.1";
        env.heloName = "bench.example";
        return env;
      }());
      if (!m) fatal("begin: %s", m.error().message.c_str());
      if (auto st = m->append(body); !st) fatal("append: %s", st.error().message.c_str());
      queue.commit(std::move(*m), [&](Result<QueueId> r) {
        ++done;
        if (!r) ++failed;
        next();
      });
    };
    t0 = std::chrono::steady_clock::now();
    for (size_t s = 0; s < sessions; ++s) next();
    while (done < n) event_base_loop(base.get(), EVLOOP_ONCE);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (failed) fatal("%zu commits failed", failed);
    RunResult r{static_cast<double>(n) / secs,
                static_cast<double>(fs.fsyncs - fsyncs0) / static_cast<double>(n),
                static_cast<double>(fs.dirFsyncs - dirs0) / static_cast<double>(n), 0};
    q->reset();
    // Recovery of the n messages (page cache warm, as after a restart).
    auto t1 = std::chrono::steady_clock::now();
    auto again = Queue::open(o);
    if (!again) fatal("reopen: %s", again.error().message.c_str());
    r.recoverMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1)
                      .count();
    again->reset();
    base.reset();
    std::filesystem::remove_all(spool);
    return r;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/var/tmp";
  size_t n = 2000, size = 4096, repeat = 3;
  std::vector<size_t> sessions{10, 50}, threads{1, 4, 8};
  bool useFdatasync = false;
  size_t spares = 0;
  for (int i = 1; i < argc; ++i) {
    auto arg = [&] {
      if (i + 1 >= argc) fatal("%s needs a value", argv[i]);
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--dir")) dir = arg();
    else if (!std::strcmp(argv[i], "-n")) n = std::stoul(arg());
    else if (!std::strcmp(argv[i], "--size")) size = std::stoul(arg());
    else if (!std::strcmp(argv[i], "--sessions")) sessions = parseList(arg());
    else if (!std::strcmp(argv[i], "--threads")) threads = parseList(arg());
    else if (!std::strcmp(argv[i], "--repeat")) repeat = std::stoul(arg());
    else if (!std::strcmp(argv[i], "--fdatasync")) useFdatasync = true;
    else if (!std::strcmp(argv[i], "--spares")) spares = std::stoul(arg());
    else fatal("unknown argument %s", argv[i]);
  }
  std::printf("# n=%zu size=%zu dir=%s%s spares=%zu\n", n, size, dir.c_str(),
              useFdatasync ? " fdatasync" : "", spares);
  {
    std::string bytes(size, 'h');
    const int rounds = 1000;
    // CPU time of this thread: the machine is shared, wall time is not
    // the checksum's cost.
    auto cpu = [] {
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
    };
    const double t0 = cpu();
    size_t sink = 0;
    for (int i = 0; i < rounds; ++i) {
      ImageHasher h;
      h.update(bytes);
      sink += h.trailer(bytes.substr(0, kHeaderSize), bytes.size()).size();
    }
    const double us = (cpu() - t0) / rounds;
    std::printf("# checksum of %zu bytes: %.1f us of CPU (%zu)\n", size, us, sink / rounds);
  }
  std::printf("%-8s %-8s %-6s %10s %12s %14s %11s\n", "sessions", "threads", "run", "commits/s",
              "fsyncs/msg", "dirfsyncs/msg", "recover ms");
  for (size_t s : sessions) {
    for (size_t t : threads) {
      for (size_t r = 1; r <= repeat; ++r) {
        RunResult res = runOnce(dir, n, size, s, t, useFdatasync, spares);
        std::printf("%-8zu %-8zu %-6zu %10.0f %12.2f %14.3f %11.0f\n", s, t, r, res.perSecond,
                    res.fsyncsPerMsg, res.dirFsyncsPerMsg, res.recoverMs);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
