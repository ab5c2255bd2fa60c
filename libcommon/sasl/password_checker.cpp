// PasswordChecker; see password_checker.hpp.
#include "sasl/password_checker.hpp"

#include <sodium.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "auth/directory.hpp"
#include "auth/password.hpp"

namespace yubin::sasl {

PasswordChecker::HashLookup PasswordChecker::fromDirectory(auth::Directory& dir) {
  // The dummy hash follows the cost of the last real hash seen, so an
  // unknown user costs what a known one costs even when the admin changed
  // the cost; before any, the cost yubinctl uses.
  auto like = std::make_shared<std::string>();
  return [&dir, like](std::string_view user) -> std::string {
    auto u = dir.findUser(user);
    if (u && u->canLogin() && auth::isPasswordHash(u->passwordHash)) {
      *like = u->passwordHash;
      return u->passwordHash;
    }
    return auth::dummyHashLike(*like);
  };
}

Result<std::unique_ptr<PasswordChecker>> PasswordChecker::create(event_base* base,
                                                                 HashLookup lookup,
                                                                 Settings settings) {
  std::unique_ptr<PasswordChecker> c(new PasswordChecker(base, std::move(lookup), settings));
  if (!c->wake_) return Error{"eventfd failed", errno};
  if (!c->event_) return Error{"cannot create the password checker's event"};
  if (event_add(c->event_.get(), nullptr) != 0)
    return Error{"cannot add the password checker's event"};
  auth::ensureSodium();
  randombytes_buf(c->cacheKey_.data(), c->cacheKey_.size());
  unsigned n = settings.threads == 0 ? 1 : settings.threads;
  for (unsigned i = 0; i < n; ++i) c->threads_.emplace_back([p = c.get()] { p->work(); });
  return c;
}

PasswordChecker::PasswordChecker(event_base* base, HashLookup lookup, Settings settings)
    : lookup_(std::move(lookup)),
      settings_(settings),
      wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (wake_)
    event_.reset(
        event_new(base, wake_.get(), EV_READ | EV_PERSIST, &PasswordChecker::onWake, this));
}

PasswordChecker::~PasswordChecker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (Job& j : jobs_) sodium_memzero(j.password.data(), j.password.size());
    jobs_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

PasswordChecker::Digest PasswordChecker::digestOf(std::string_view hash,
                                                  std::string_view password) const {
  Digest d;
  crypto_generichash_state st;
  crypto_generichash_init(&st, cacheKey_.data(), cacheKey_.size(), d.size());
  uint64_t n = hash.size();  // the length first: no two inputs run together
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(&n), sizeof n);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(hash.data()), hash.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(password.data()),
                            password.size());
  crypto_generichash_final(&st, d.data(), d.size());
  return d;
}

std::optional<PasswordChecker::Ticket> PasswordChecker::check(std::string_view user,
                                                              std::string_view password,
                                                              std::function<void(bool)> done) {
  std::string hash = lookup_(user);
  Ticket t = ++next_;
  Pending p{std::move(done), {}, {}};
  if (settings_.cacheEntries > 0) {
    p.user = std::string(user);
    p.digest = digestOf(hash, password);
    auto it = cache_.find(p.user);
    if (it != cache_.end() && it->second.expires > Clock::now() &&
        sodium_memcmp(it->second.digest.data(), p.digest.data(), p.digest.size()) == 0) {
      ++cacheHits_;
      p.user.clear();  // already there; its expiry is not extended
      callbacks_.emplace(t, std::move(p));
      {
        std::lock_guard<std::mutex> lock(mu_);
        results_.emplace_back(t, true);
      }
      wake();  // answered on the loop's next turn, never inside this call
      return t;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (jobs_.size() >= settings_.maxQueued) return std::nullopt;
    jobs_.push_back(Job{t, std::move(hash), std::string(password)});
  }
  callbacks_.emplace(t, std::move(p));
  cv_.notify_one();
  return t;
}

void PasswordChecker::remember(const std::string& user, const Digest& digest) {
  auto now = Clock::now();
  if (cache_.size() >= settings_.cacheEntries && !cache_.count(user)) {
    std::erase_if(cache_, [now](const auto& e) { return e.second.expires <= now; });
    if (cache_.size() >= settings_.cacheEntries) cache_.erase(cache_.begin());
  }
  cache_[user] = CacheEntry{digest, now + settings_.cacheTtl};
}

void PasswordChecker::wake() {
  uint64_t one = 1;
  // EAGAIN only when the counter is about to overflow: the loop is awake.
  (void)!::write(wake_.get(), &one, sizeof one);
}

void PasswordChecker::cancel(Ticket t) { callbacks_.erase(t); }

void PasswordChecker::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    bool ok = auth::verifyPasswordHash(job.hash, job.password);
    sodium_memzero(job.password.data(), job.password.size());
    {
      std::lock_guard<std::mutex> lock(mu_);
      results_.emplace_back(job.ticket, ok);
    }
    wake();
  }
}

void PasswordChecker::onWake(evutil_socket_t fd, short, void* self) {
  uint64_t n;
  (void)!::read(fd, &n, sizeof n);
  static_cast<PasswordChecker*>(self)->deliver();
}

void PasswordChecker::deliver() {
  std::vector<std::pair<Ticket, bool>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done.swap(results_);
  }
  for (auto [t, ok] : done) {
    auto it = callbacks_.find(t);
    if (it == callbacks_.end()) continue;  // cancelled
    Pending p = std::move(it->second);
    callbacks_.erase(it);
    if (ok && !p.user.empty()) remember(p.user, p.digest);
    p.done(ok);  // may call check() or cancel(), or destroy its session
  }
}

}  // namespace yubin::sasl
