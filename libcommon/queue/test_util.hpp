// Test-only helpers for the queue tests: a temporary spool folder and an Fs
// that counts calls, injects errors (ENOSPC, EIO...) at a chosen call and
// can hold file fsyncs at a gate so a batch builds up deterministically, and
// measures how many file fsyncs run at the same time.
#pragma once

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include "base/unique_fd.hpp"
#include "queue/fs.hpp"

namespace yubin::queue::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/yubin-queue-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

enum class Op { Open, Write, Pwrite, Pread, Fsync, Rename, Replace, Unlink, FsyncDir, ListDir };

class FaultFs : public RealFs {
 public:
  // The nth call (1-based, counted from now) of op fails with err; with
  // sticky, that call and every later one fail.
  void failAt(Op op, int nth, int err, bool sticky = false) {
    std::lock_guard l(mu_);
    faults_[op] = Fault{calls_[op] + nth, err, sticky};
  }
  void clearFaults() {
    std::lock_guard l(mu_);
    faults_.clear();
  }
  int calls(Op op) {
    std::lock_guard l(mu_);
    return calls_[op];
  }
  // Each write(2) writes at most this many bytes (0: no limit).
  void setMaxWrite(size_t n) {
    std::lock_guard l(mu_);
    maxWrite_ = n;
  }
  // While closed, file fsyncs wait.
  void closeGate() {
    std::lock_guard l(mu_);
    gateClosed_ = true;
  }
  void openGate() {
    {
      std::lock_guard l(mu_);
      gateClosed_ = false;
    }
    cv_.notify_all();
  }

  Result<UniqueFd> open(const std::string& p, int f, mode_t m) override {
    if (auto e = hit(Op::Open)) return *e;
    return RealFs::open(p, f, m);
  }
  Result<size_t> write(int fd, const char* d, size_t n) override {
    if (auto e = hit(Op::Write)) return *e;
    size_t cap;
    {
      std::lock_guard l(mu_);
      cap = maxWrite_;
    }
    return RealFs::write(fd, d, cap && n > cap ? cap : n);
  }
  Status pwrite(int fd, const char* d, size_t n, uint64_t off) override {
    if (auto e = hit(Op::Pwrite)) return *e;
    return RealFs::pwrite(fd, d, n, off);
  }
  Result<size_t> pread(int fd, char* d, size_t n, uint64_t off) override {
    if (auto e = hit(Op::Pread)) return *e;
    return RealFs::pread(fd, d, n, off);
  }
  // Returns once n file fsyncs are waiting at the closed gate.
  void waitForGateWaiters(int n) {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return gateWaiters_ >= n; });
  }
  // File fsyncs that start from now on wait (at most 30 s) until n file
  // fsyncs run at the same time; once that happened, none waits any more.
  // Shows that the committer really syncs files in parallel: a serial one
  // never gets there, and maxConcurrentFsyncs() stays 1.
  void armConcurrencyBarrier(int n) {
    std::lock_guard l(mu_);
    barrierTarget_ = n;
    barrierReached_ = false;
  }
  // The most file fsyncs that were in progress at one moment.
  int maxConcurrentFsyncs() {
    std::lock_guard l(mu_);
    return maxInFlight_;
  }

  Status fsync(int fd) override {
    {
      std::unique_lock l(mu_);
      bool barrier = barrierTarget_ > 0;  // armed when this call started
      ++gateWaiters_;
      cv_.notify_all();
      cv_.wait(l, [&] { return !gateClosed_; });
      --gateWaiters_;
      maxInFlight_ = std::max(maxInFlight_, ++inFlight_);
      if (barrier && !barrierReached_) {
        if (inFlight_ >= barrierTarget_) {
          barrierReached_ = true;
          cv_.notify_all();
        } else {
          cv_.wait_for(l, std::chrono::seconds(30), [&] { return barrierReached_; });
        }
      }
    }
    ScopeExit leave([&] {
      std::lock_guard l(mu_);
      --inFlight_;
    });
    if (auto e = hit(Op::Fsync)) return *e;
    return RealFs::fsync(fd);
  }
  Status rename(const std::string& a, const std::string& b) override {
    if (auto e = hit(Op::Rename)) return *e;
    return RealFs::rename(a, b);
  }
  Status replace(const std::string& a, const std::string& b) override {
    if (auto e = hit(Op::Replace)) return *e;
    return RealFs::replace(a, b);
  }
  Status unlink(const std::string& p) override {
    if (auto e = hit(Op::Unlink)) return *e;
    return RealFs::unlink(p);
  }
  // While closed, directory fsyncs wait.
  void closeDirGate() {
    std::lock_guard l(mu_);
    dirGateClosed_ = true;
  }
  void openDirGate() {
    {
      std::lock_guard l(mu_);
      dirGateClosed_ = false;
    }
    cv_.notify_all();
  }
  // Returns once n directory fsyncs are waiting at the closed gate.
  void waitForDirGateWaiters(int n) {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return dirGateWaiters_ >= n; });
  }
  // Returns once op has been called n times in all (at most 30 s).
  bool waitForCalls(Op op, int n) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(30), [&] { return calls_[op] >= n; });
  }
  Status fsyncDir(const std::string& d) override {
    {
      std::unique_lock l(mu_);
      ++dirGateWaiters_;
      cv_.notify_all();
      cv_.wait(l, [&] { return !dirGateClosed_; });
      --dirGateWaiters_;
    }
    if (auto e = hit(Op::FsyncDir)) return *e;
    return RealFs::fsyncDir(d);
  }
  Result<std::vector<std::string>> listDir(const std::string& d) override {
    if (auto e = hit(Op::ListDir)) return *e;
    return RealFs::listDir(d);
  }

 private:
  struct Fault {
    int at;
    int err;
    bool sticky;
  };
  std::optional<Error> hit(Op op) {
    std::lock_guard l(mu_);
    int n = ++calls_[op];
    cv_.notify_all();  // for waitForCalls
    auto it = faults_.find(op);
    if (it == faults_.end()) return std::nullopt;
    if (n == it->second.at || (it->second.sticky && n > it->second.at))
      return Error{"injected: " + std::string(std::strerror(it->second.err)), it->second.err};
    return std::nullopt;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Op, int> calls_;
  std::map<Op, Fault> faults_;
  size_t maxWrite_ = 0;
  bool gateClosed_ = false;
  int gateWaiters_ = 0;
  bool dirGateClosed_ = false;
  int dirGateWaiters_ = 0;
  int inFlight_ = 0;
  int maxInFlight_ = 0;
  int barrierTarget_ = 0;
  bool barrierReached_ = false;
};

// Names in a folder (empty if it does not exist).
inline std::vector<std::string> listNames(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace yubin::queue::testing
