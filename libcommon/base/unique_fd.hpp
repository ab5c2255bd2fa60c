// RAII owners for C resources: UniqueFd for file descriptors, CPtr for
// anything with a free function, ScopeExit for one-off cleanups.
#pragma once

#include <unistd.h>

#include <memory>
#include <utility>

namespace yubin {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A unique_ptr whose deleter is a C function: CPtr<SSL_CTX, SSL_CTX_free>.
template <auto Fn>
struct CDeleter {
  template <class T>
  void operator()(T* p) const {
    if (p) Fn(p);
  }
};
template <class T, auto Fn>
using CPtr = std::unique_ptr<T, CDeleter<Fn>>;

template <class F>
class [[nodiscard]] ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  ~ScopeExit() {
    if (armed_) f_();
  }
  void dismiss() { armed_ = false; }

 private:
  F f_;
  bool armed_ = true;
};

}  // namespace yubin
