// The APPEND commit driver; see append_commit.hpp.
#include "store/append_commit.hpp"

#include <utility>

namespace yubin::store {
namespace {

// One commit under way. Owned by the continuation the runner holds (so it
// is destroyed on the loop thread); the work closure only points at it.
struct CommitJob {
  std::shared_ptr<AppendTransaction> tx;
  BlockingRunner* runner = nullptr;
  CommitDone done;
  Status blocking;  // what the last Blocking step returned (written by the worker)

  void finish(Status st) {
    CommitDone d = std::move(done);
    if (!st)
      d(st.error());
    else
      d(tx->committedUids());
  }
};

// Runs the steps from here: Loop steps at once, until a Blocking one goes
// to the runner (which brings the job back here) or the end.
void advance(std::shared_ptr<CommitJob> job) {
  for (;;) {
    const CommitStep next = job->tx->nextStep();
    if (next == CommitStep::Done) return job->finish({});
    if (next == CommitStep::Blocking && job->runner) {
      BlockingRunner* runner = job->runner;
      CommitJob* raw = job.get();
      runner->run([raw] { raw->blocking = raw->tx->runStep(); },
                  [job = std::move(job)]() mutable {
                    if (!job->blocking) return job->finish(std::move(job->blocking));
                    advance(std::move(job));
                  });
      return;
    }
    if (auto st = job->tx->runStep(); !st) return job->finish(std::move(st));
  }
}

}  // namespace

void commitAppend(std::shared_ptr<AppendTransaction> tx, const Flags& flags, int64_t internalDate,
                  BlockingRunner* runner, CommitDone done) {
  tx->startCommit(flags, internalDate);
  auto job = std::make_shared<CommitJob>();
  job->tx = std::move(tx);
  job->runner = runner;
  job->done = std::move(done);
  advance(std::move(job));
}

}  // namespace yubin::store
