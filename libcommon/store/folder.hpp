// Folder: one mailbox opened for reading by a retrieval session (POP3 now,
// IMAP later). Opening takes a snapshot of the messages (stable unique id,
// size as a client receives it with CRLF line ends); the snapshot does not
// change while the session lasts, so message numbers stay valid. Messages
// are read as pull streams (a session sends a large message a piece at a
// time, as the client drains it); marking seen and expunging act on the
// files. Backends: Maildir (maildir_folder.hpp), mbox (mbox_folder.hpp),
// and MemoryFolder here, for the protocol tests (with failure injection).
//
// Trust: runs as the mailboxes' owner (the mrad mail process). Mailbox
// contents and file names are untrusted (they come from mail senders, or
// from the mailbox's user through other programs); they are only counted,
// hashed and copied. Indexes from callers are checked.
// Standards: RFC 1939 (UIDL: 1-70 octets of 0x21-0x7E), RFC 4155 (mbox).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::store {

struct FolderMessage {
  // Stable unique id within the folder: 1-70 octets in 0x21..0x7E, the same
  // in every session as long as the message exists (POP3 UIDL).
  std::string uid;
  // Octets with every line ending as CRLF: what a client receives (before
  // dot-stuffing), so LIST and STAT match what RETR sends.
  uint64_t size = 0;
  // Already read by a client (Maildir: in cur/ with the S flag).
  bool seen = false;
};

// A pull stream of one message's bytes as stored (line ends LF or CRLF;
// mbox quoting already undone).
class MessageReader {
 public:
  virtual ~MessageReader() = default;
  // Appends at most `max` further bytes to out; returns how many, 0 at the
  // end of the message.
  virtual Result<size_t> read(std::string& out, size_t max) = 0;
};

class Folder {
 public:
  virtual ~Folder() = default;
  // The snapshot taken when the folder was opened, oldest first.
  virtual const std::vector<FolderMessage>& messages() const = 0;
  // Message `index` (0-based into messages()).
  virtual Result<std::unique_ptr<MessageReader>> open(size_t index) = 0;
  // A client read the whole message: Maildir moves it to cur/ with the S
  // flag; mbox keeps no flags.
  virtual Status markSeen(size_t index) = 0;
  // Removes the messages with these indexes, durably; messages delivered
  // since the snapshot are kept. A message already removed by someone else
  // is not an error. On an error nothing or part was removed; what remains
  // is intact.
  virtual Status expunge(const std::vector<size_t>& indexes) = 0;
};

// Counts the octets of a byte stream with every bare LF counted as CRLF
// (feed any pieces; a CR at the end of one piece and the LF at the start of
// the next count as one CRLF).
class CrlfCounter {
 public:
  void feed(std::string_view bytes);
  uint64_t total() const { return total_; }

 private:
  uint64_t total_ = 0;
  bool prevCr_ = false;
};
uint64_t crlfSize(std::string_view bytes);
// The CRLF size of a whole file (opened O_NOFOLLOW), read once.
Result<uint64_t> crlfFileSize(const std::string& path);

// A pull stream over an open message file, read with read(2) as the
// session asks for more (Maildir backends of Folder and MailStore).
// sizeHint: the file's size as listed (Maildir's S= or a stat), or -1. With
// it a read asks for no more than the rest of the file plus one byte, so a
// small message is one read(2) into a buffer of its size, and the short
// read that comes back is the end (no second read(2) to learn it). A hint
// that is wrong only costs reads: the file's own end still decides.
std::unique_ptr<MessageReader> fileReader(UniqueFd fd, int64_t sizeHint = -1);

// True when `uid` may be used as a POP3 unique id as it is.
bool validUid(std::string_view uid);
// A 32-hex-digit digest of bytes (BLAKE2b-128): the uid for a message whose
// own name is not a valid uid.
std::string uidDigest(std::string_view bytes);

// Messages held in memory, for protocol tests. Records what the session
// did; failNext* inject errors.
class MemoryFolder final : public Folder {
 public:
  struct Item {
    std::string uid;
    std::string data;
  };
  explicit MemoryFolder(std::vector<Item> items);
  const std::vector<FolderMessage>& messages() const override { return list_; }
  Result<std::unique_ptr<MessageReader>> open(size_t index) override;
  Status markSeen(size_t index) override;
  Status expunge(const std::vector<size_t>& indexes) override;

  // The messages still there (data), in order, and which were marked seen.
  std::vector<std::string> remaining() const;
  const std::vector<bool>& seenFlags() const { return seen_; }
  bool failOpen = false;
  bool failExpunge = false;
  size_t readChunk = 7;  // tiny, so the tests cross chunk boundaries

 private:
  std::vector<Item> items_;
  std::vector<FolderMessage> list_;
  std::vector<bool> seen_;
  std::vector<bool> removed_;
};

}  // namespace yubin::store
