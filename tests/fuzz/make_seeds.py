#!/usr/bin/python3
"""Writes the hand-made seed corpora of the fuzz targets whose inputs are
binary records or carry a harness prefix, so that the seeds can be read and
regenerated when a format changes:

    tests/fuzz/make_seeds.py [handoff|imap_session|maildrop ...]

- handoff: records of mrad's login -> mail process hand-over
  (mrad/handoff.hpp), in the current version (3), valid and broken one way
  each; one of version 2 for the version check.
- imap_session: inputs of mrad/imap/mail_session_fuzz.cpp: 4 bytes (flags,
  pieces, produce budget, store fault; see that file) then a logged-in
  client's commands.
- maildrop: drop files as yubin-sendmail writes them (mtad/maildrop.hpp),
  and broken ones.

The files go to tests/fuzz/corpus/<target>/ (that folder is emptied first).
"""
import re
import struct
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / 'corpus'


# ---- handoff (mrad/handoff.hpp) ----

def hstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack('>I', len(b)) + b


def handoff_payload(protocol=1, user='ann@example.org', mailbox='/var/mail/ann/Maildir', kind=1,
                    session='s1', ip='127.0.0.1', tls=0, method='USER', tag='', pending=b'',
                    direct=1):
    return (bytes([protocol]) + hstr(user) + hstr(mailbox) + bytes([kind]) + hstr(session) +
            hstr(ip) + bytes([tls]) + hstr(method) + hstr(tag) + hstr(pending) + bytes([direct]))


def handoff_record(payload, version=3, type_=300, length=None):
    n = len(payload) if length is None else length
    return struct.pack('>IHH', n, version, type_) + payload


def handoff_seeds():
    imap = dict(protocol=2, kind=2, mailbox='/var/mail/bob', tls=1, method='plain', tag='a001',
                direct=0)
    good_pop3 = handoff_payload()
    return {
        'pop3_maildir': handoff_record(good_pop3),
        'pop3_pending': handoff_record(handoff_payload(pending=b'STAT\r\nLIST\r\nRETR 1\r\n')),
        'imap_mbox': handoff_record(handoff_payload(**imap)),
        'imap_pending': handoff_record(handoff_payload(
            **dict(imap, pending=b'b SELECT INBOX\r\nc FETCH 1:* (FLAGS)\r\n'))),
        'imap_literal_tag': handoff_record(handoff_payload(**dict(imap, tag='{3}'))),
        'empty_fields': handoff_record(handoff_payload(user='', mailbox='', session='', ip='',
                                                       method='')),
        'imap_no_tag': handoff_record(handoff_payload(**dict(imap, tag=''))),
        'bad_bool': handoff_record(handoff_payload(tls=2)),
        'pop3_proxied': handoff_record(handoff_payload(direct=0)),
        'bad_direct': handoff_record(handoff_payload(direct=2)),
        'direct_tls': handoff_record(handoff_payload(tls=1)),
        'bad_protocol': handoff_record(handoff_payload(protocol=3)),
        'bad_kind': handoff_record(handoff_payload(kind=0)),
        'bad_type': handoff_record(good_pop3, type_=301),
        'version2': handoff_record(good_pop3[:-1], version=2),
        'leftover': handoff_record(good_pop3 + b'\0'),
        'length_mismatch': handoff_record(good_pop3, length=len(good_pop3) + 1),
        'truncated': handoff_record(good_pop3)[:-3],
        'string_too_long': handoff_record(bytes([1]) + struct.pack('>I', 0xffffffff) + b'x'),
        'short_header': b'\0\0\0\x10\0\x02',
    }


# ---- imap_session (mrad/imap/mail_session_fuzz.cpp) ----

SMALL_LIMITS, UTF8, OUTSIDE, FAULT = 0x10, 0x20, 0x40, 0x80
FAULT_OPS = ['list', 'subscriptions', 'subscribe', 'create', 'remove', 'rename', 'status',
             'select', 'beginAppend', 'append.write', 'append.commit', 'sync', 'open',
             'setFlags', 'expunge', 'copy']
ENOSPC_INDEX = 1  # kFaultErrnos[1]


def imap(flags, pieces, budget, fault, script):
    # Every LF not already after a CR becomes CRLF (literals spell theirs out).
    return bytes([flags, pieces, budget, fault]) + re.sub(r'(?<!\r)\n', '\r\n', script).encode()


def fault(op, errno_index=0):
    return FAULT_OPS.index(op) | (errno_index << 4)


def imap_seeds():
    fetch = ('a SELECT INBOX\n'
             'b FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODY BODYSTRUCTURE)\n'
             'c FETCH 2 (BODY[1] BODY[2.MIME] BODY[3.HEADER] BODY[3.1.2] BINARY[1] BINARY[2] '
             'BINARY.SIZE[1])\n'
             'd FETCH 1,3 (BODY.PEEK[HEADER.FIELDS (Subject From)] BODY[]<5.10> '
             'BODY.PEEK[HEADER.FIELDS.NOT (To)] BODY[TEXT]<0.3> RFC822.HEADER)\n'
             'e UID FETCH 4:* (BINARY[] BINARY.PEEK[1]<2.4> RFC822 FAST)\n'
             'f FETCH 5 (BODY[1.MIME] BODY[2] ALL FULL)\n')
    search = ('a EXAMINE INBOX\n'
              'b SEARCH CHARSET UTF-8 OR SUBJECT "caf\xc3\xa9" BODY inner\n'
              'c UID SEARCH RETURN (MIN MAX COUNT SAVE) NOT SEEN SINCE 1-Jul-2025\n'
              'd FETCH $ (FLAGS)\n'
              'e SEARCH HEADER Subject nul LARGER 10 KEYWORD work TEXT zero\n'
              'f SEARCH (OR ANSWERED UNKEYWORD $x) 2:* SENTBEFORE 2-Jul-2025 NEW OLD RECENT\n'
              'g SEARCH CHARSET KOI8-R ALL\n'
              'h UID SEARCH UID $ FROM ann TO bob CC x BCC y OLDER 10 YOUNGER 99999\n')
    store_copy = ('a SELECT INBOX\n'
                  'b STORE 1:2 +FLAGS (\\Deleted $Junk work)\n'
                  'c STORE 3 -FLAGS.SILENT (\\Seen)\n'
                  'd UID STORE 1:* FLAGS (\\Answered \\Flagged)\n'
                  'e COPY 1:3 Archive\n'
                  'f UID MOVE 2 Trash\n'
                  'g COPY 1 Nope\n'
                  'h EXPUNGE\n'
                  'i UID EXPUNGE 1:*\n'
                  'j CLOSE\n'
                  'k SELECT Archive\n'
                  'l UNSELECT\n')
    first = 'Subject: s\r\n\r\nbody 1\r\n'
    append = ('a APPEND Drafts (\\Draft $x) "17-Jul-1996 02:44:25 -0700" '
              f'{{{len(first)}}}\n{first}\n'
              'b APPEND INBOX {5+}\nhello {3+}\nabc ~{4+}\nx\0yz\n'
              'c APPEND Nope {3+}\nxyz\n'
              'd SELECT INBOX\n'
              'e APPEND INBOX (\\Seen) {12+}\nSubject: q\r\n\n'
              'f FETCH 7:* (UID FLAGS BODY[])\n'
              'g APPEND INBOX {999999999}\n'
              'h APPEND Trash (\\Bogus) {2+}\nab\n')
    idle = ('a SELECT INBOX\n'
            'b IDLE\n'
            'DONE\n'
            'c NOOP\n'
            'd IDLE\n'
            'nope\n'
            'e IDLE\n'
            'done\n'
            'f CHECK\n')
    boxes = ('a ENABLE IMAP4rev2 UTF8=ACCEPT\n'
             'b CREATE Work.2025 (USE (\\Archive))\n'
             'c RENAME Work Play\n'
             'd LIST "" *\n'
             'e LIST (SUBSCRIBED SPECIAL-USE) "" "%" RETURN (CHILDREN STATUS (MESSAGES UIDNEXT '
             'SIZE))\n'
             'f SUBSCRIBE Play.2025\n'
             'g LSUB "" *\n'
             'h STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED)\n'
             'i NAMESPACE\n'
             'j ID ("name" "fuzz" "version" NIL)\n'
             'k DELETE Play\n'
             'l RENAME INBOX Old\n'
             'm CREATE &ZeVnLIqe-\n'
             'n SELECT "../etc"\n'
             'o CREATE "a/b"\n'
             'p LIST "" {3}\nIN*\n'
             'q CAPABILITY\n'
             'r LOGOUT\n'
             's NOOP\n')
    hostile = ('\n'
               'a NOOP\0x\n'
               'b SELECT {99999999}\n'
               'c SEARCH ' + '(' * 40 + 'ALL' + ')' * 40 + '\n'
               'd FETCH 1:4294967295,*:0 (BODY[1.2.3.4.5.6.7.8.9.10.11]<4294967295.4294967295>)\n'
               'e STORE * FLAGS (' + ' '.join(f'k{i}' for i in range(40)) + ')\n'
               'f FOO\n'
               'g UID\n'
               'h FETCH\n')
    return {
        'fetch': imap(0, 0, 200, 0, fetch),
        'fetch_pieces': imap(0x03, 7, 1, 0, fetch),
        'search': imap(0, 0, 50, 0, search),
        'search_utf8_pieces': imap(UTF8 | 0x01, 3, 0, 0, search),
        'store_copy': imap(0, 0, 255, 0, store_copy),
        'store_copy_outside': imap(OUTSIDE, 11, 9, 0, store_copy),
        'store_copy_fault': imap(FAULT, 5, 9, fault('copy', ENOSPC_INDEX), store_copy),
        'append': imap(0, 0, 100, 0, append),
        'append_small_limits': imap(SMALL_LIMITS, 13, 100, 0, append),
        'append_fault_enospc': imap(FAULT, 17, 100, fault('append.write', ENOSPC_INDEX), append),
        'append_commit_fault': imap(FAULT, 17, 100, fault('append.commit', 2), append),
        'idle': imap(OUTSIDE, 0, 100, 0, idle),
        'idle_pieces': imap(OUTSIDE, 2, 100, 0, idle),
        'mailboxes': imap(0x08, 0, 100, 0, boxes),
        'mailboxes_fault': imap(FAULT, 9, 100, fault('rename'), boxes),
        'select_fault': imap(FAULT, 1, 100, fault('select'), fetch),
        'sync_fault': imap(FAULT | OUTSIDE, 23, 100, fault('sync', 5), store_copy),
        'hostile': imap(0, 0, 100, 0, hostile),
        'hostile_small_limits': imap(SMALL_LIMITS, 0, 100, 0, hostile),
    }


# ---- maildrop (mtad/maildrop.hpp) ----

def drop(message, rcpts=(b'bob@example.org',), sender=None, fullname=None, size=None, extra=b''):
    h = b'YUBIN-MAILDROP 1\n'
    if sender is not None:
        h += b'sender ' + sender + b'\n'
    if fullname is not None:
        h += b'fullname ' + fullname + b'\n'
    for r in rcpts:
        h += b'rcpt ' + r + b'\n'
    h += extra
    h += b'size ' + str(len(message) if size is None else size).encode() + b'\n\n'
    return h + message


def maildrop_seeds():
    m = b'Subject: hi\r\nTo: bob@example.org\r\n\r\nhello\r\n'
    return {
        'plain': drop(m, rcpts=(b'bob@example.org',)),
        'full': drop(b'From: a@b\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n'
                     b'\r\nbody\r\n', rcpts=(b'a@example.org', b'b@example.org', b'local'),
                     sender=b'root@example.org', fullname=b'Ann "the" Admin'),
        'null_sender': drop(m, sender=b'<>', fullname=b''),
        'no_header_end': drop(b'Subject: one line only', rcpts=(b'x@y',)),
        'no_header': drop(b'just a body\nwith LF\n'),
        'empty_message': drop(b''),
        'utf8': drop('Subject: \u65e5\u672c\r\n\r\n\u00e9\r\n'.encode(),
                     rcpts=('j\u00f6rg@b\u00fccher.example'.encode(),),
                     fullname='J\u00f6rg'.encode()),
        'hostile_addresses': drop(m, rcpts=(b'"a;b"@x', b'`id`@x', b'|cmd@x', b'user%host@x',
                                            b'@x:y@z', b'a!b')),
        'bad_magic': b'YUBIN-MAILDROP 2\nrcpt a@b\nsize 0\n\n',
        'repeated_sender': drop(m, sender=b'a@b', extra=b'sender c@d\n'),
        'field_after_rcpt': drop(m, extra=b'fullname x\n'),
        'unknown_field': drop(m, extra=b'header X: y\n'),
        'cr_in_header': drop(m, fullname=b'x\ry'),
        'size_mismatch': drop(m, size=len(m) + 1),
        'size_leading_zero': drop(m, size='0' + str(len(m))),
        'size_huge': drop(m, size=18446744073709551616),
        'truncated_header': b'YUBIN-MAILDROP 1\nrcpt a@b\nsize 3',
        'long_line': drop(m, fullname=b'x' * 1100),
        'no_rcpt': drop(m, rcpts=()),
    }


GENERATORS = {'handoff': handoff_seeds, 'imap_session': imap_seeds, 'maildrop': maildrop_seeds}


def main():
    names = sys.argv[1:] or list(GENERATORS)
    for name in names:
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        seeds = GENERATORS[name]()
        for seed, data in seeds.items():
            (folder / seed).write_bytes(data)
        print(f'{name}: {len(seeds)} seeds in {folder}')


if __name__ == '__main__':
    main()
