// The driver of an APPEND commit in steps (mail_store.hpp, CommitStep): the
// Loop steps run on the calling thread, the Blocking steps (the message
// file's fsync, its link into the folder, the directory fsync, the uid
// log's fdatasync) through a BlockingRunner on another thread, so that an
// event loop serving many sessions never waits for one APPEND's disk.
//
// Threads: commitAppend() and every `done` belong to the one thread that
// owns the store (mrad's mail process loop). The runner's `work` runs
// elsewhere and touches only the transaction, which nothing else calls
// meanwhile; the transaction and what it holds are destroyed on the calling
// thread.
// Trust: none of its own; runs as the mailboxes' owner.
#pragma once

#include <functional>
#include <memory>

#include "base/result.hpp"
#include "store/mail_store.hpp"

namespace yubin::store {

// Runs blocking work off the calling thread (mrad: a worker pool).
class BlockingRunner {
 public:
  virtual ~BlockingRunner() = default;
  // Runs `work` on another thread, then `then` on the calling thread, never
  // inside run() itself. If the runner goes away first, `then` does not
  // run and is destroyed on the calling thread (`work` may or may not have
  // run).
  virtual void run(std::function<void()> work, std::function<void()> then) = 0;
};

using CommitDone = std::function<void(Result<AppendedUids>)>;

// Commits tx with these flags and internal date: every step to its end,
// whatever becomes of the caller meanwhile (the transaction is kept until
// then), then `done` once, on this thread, with the UIDs or the error.
// runner nullptr: every step here, and `done` runs before this returns; so
// does it when every step is a Loop step (mbox, the memory store).
void commitAppend(std::shared_ptr<AppendTransaction> tx, const Flags& flags, int64_t internalDate,
                  BlockingRunner* runner, CommitDone done);

}  // namespace yubin::store
