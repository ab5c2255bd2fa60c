// PasswordChecker: runs Argon2id password verifications (which take about
// 0.1 s and 64 MiB each at the interactive cost) on a few worker threads so
// the event loop never blocks on them, and calls the result back on the
// loop. Shared by msad and mrad.
//
// The hash to check against is looked up on the loop thread (the Directory
// is not thread-safe); an unknown user, or one who may not log in, is
// checked against a dummy hash of the same cost, so the answer takes the
// same time (no user enumeration). Workers only see the hash and the
// password; the password copy is wiped once checked.
//
// Successful checks are remembered (as PingDirectory's encoded-password
// cache does; Dovecot's auth_cache keeps the database answer and still
// runs the hash): per user, a
// keyed BLAKE2b digest of the hash and the password, under a key drawn at
// random when the checker starts. A later check of the same user whose
// digest matches — the same password against the same hash, whose answer
// cannot differ — is answered without Argon2. A changed or removed user
// changes the hash the lookup returns, so the entry no longer matches;
// failures are never remembered, so every wrong password costs a full
// check. Entries expire after `cacheTtl`; at most `cacheEntries` are kept.
//
// Trust: passwords are untrusted input and secret: never logged.
// Standards: none (libsodium crypto_pwhash_str_verify).
#pragma once

#include <event2/event.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <array>
#include <chrono>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "event/event.hpp"

namespace yubin::auth {
class Directory;
}

namespace yubin::sasl {

class PasswordChecker {
 public:
  struct Settings {
    unsigned threads = 2;     // concurrent checks (each may take 64 MiB)
    size_t maxQueued = 1000;  // checks waiting for a thread; more: refused
    size_t cacheEntries = 1000;              // users remembered; 0: no cache
    std::chrono::seconds cacheTtl{3600};     // how long a success is remembered
  };
  // The Argon2 hash to verify `user`'s password against; for an unknown
  // user a dummy hash of the usual cost (auth::dummyHashLike). Runs on the
  // loop thread.
  using HashLookup = std::function<std::string(std::string_view user)>;
  using Ticket = uint64_t;

  // Looks hashes up in `dir`, which must outlive the checker.
  static HashLookup fromDirectory(auth::Directory& dir);

  static Result<std::unique_ptr<PasswordChecker>> create(event_base* base, HashLookup lookup,
                                                         Settings settings);
  // Stops the workers (a check under way finishes first); callbacks of
  // pending checks never run.
  ~PasswordChecker();
  PasswordChecker(const PasswordChecker&) = delete;
  PasswordChecker& operator=(const PasswordChecker&) = delete;

  // Queues a check; `done(ok)` runs later on the loop (never inside this
  // call). nullopt when too many checks are waiting: answer "temporary
  // failure" (SMTP 454 4.7.0).
  std::optional<Ticket> check(std::string_view user, std::string_view password,
                              std::function<void(bool ok)> done);
  // The callback of this check will not run (the session went away).
  void cancel(Ticket t);
  // Checks queued or running whose callback has not run yet.
  size_t pending() const { return callbacks_.size(); }
  // Checks answered from the cache, and the cache's size (for tests).
  uint64_t cacheHits() const { return cacheHits_; }
  size_t cached() const { return cache_.size(); }

 private:
  PasswordChecker(event_base* base, HashLookup lookup, Settings settings);
  static void onWake(evutil_socket_t fd, short, void* self);
  void work();
  void deliver();

  struct Job {
    Ticket ticket;
    std::string hash;
    std::string password;
  };
  using Digest = std::array<unsigned char, 32>;
  using Clock = std::chrono::steady_clock;
  struct Pending {
    std::function<void(bool)> done;
    std::string user;  // empty: not to be cached
    Digest digest{};
  };
  struct CacheEntry {
    Digest digest;
    Clock::time_point expires;
  };
  Digest digestOf(std::string_view hash, std::string_view password) const;
  void remember(const std::string& user, const Digest& digest);
  void wake();

  HashLookup lookup_;
  Settings settings_;
  UniqueFd wake_;  // eventfd: workers -> loop
  event::Event event_;
  std::unordered_map<Ticket, Pending> callbacks_;  // loop thread only
  Ticket next_ = 0;
  std::array<unsigned char, 32> cacheKey_{};
  std::unordered_map<std::string, CacheEntry> cache_;  // loop thread only
  uint64_t cacheHits_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::vector<std::pair<Ticket, bool>> results_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace yubin::sasl
