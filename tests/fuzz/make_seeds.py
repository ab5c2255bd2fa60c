#!/usr/bin/python3
"""Writes the hand-made seed corpora of the fuzz targets whose inputs are
binary records or carry a harness prefix, so that the seeds can be read and
regenerated when a format changes:

    tests/fuzz/make_seeds.py [handoff|imap_session|maildrop|lmtp_client ...]

- handoff: records of mrad's login -> mail process hand-over
  (mrad/handoff.hpp), in the current version (3), valid and broken one way
  each; one of version 2 for the version check.
- imap_session: inputs of mrad/imap/mail_session_fuzz.cpp: 4 bytes (flags,
  pieces, produce budget, store fault; see that file) then a logged-in
  client's commands.
- maildrop: drop files as yubin-sendmail writes them (mtad/maildrop.hpp),
  and broken ones.
- lmtp_client: inputs of mtad/lmtp_client_fuzz.cpp: 3 bytes (requests,
  pieces, message/timeouts/lockstep; see that file) then what mdad says:
  whole conversations, refusals at each step, hostile replies.

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


# ---- lmtp_client (mtad/lmtp_client_fuzz.cpp) ----

TIMEOUTS = {None: 0, 'connect': 1, 'reply': 2, 'data': 3, 'idle': 4}


def lmtp(server, rcpts=1, utf8=False, body8=False, tx=1, small=False, pieces=0, message=0,
         timeout=None, lockstep=True):
    flags = (rcpts - 1) | utf8 << 2 | body8 << 3 | (tx - 1) << 4 | small << 6
    options = message | TIMEOUTS[timeout] << 2 | lockstep << 5
    return bytes([flags, pieces, options]) + server


GREET = b'220 mx.test Yubin LMTP\r\n'
OK = b'250 2.1.0 Ok\r\n'
GO = b'354 End data with <CR><LF>.<CR><LF>\r\n'
DONE = b'250 2.0.0 Delivered\r\n'


def lhlo(*ext):
    ext = ext or (b'PIPELINING', b'ENHANCEDSTATUSCODES', b'8BITMIME', b'SMTPUTF8')
    lines = [b'mx.test'] + list(ext)
    return b''.join(b'250-' + l + b'\r\n' for l in lines[:-1]) + b'250 ' + lines[-1] + b'\r\n'


def lmtp_tx(rcpt_replies, finals, rset=False, data=GO):
    """One transaction's replies: [RSET], MAIL, one per RCPT, DATA, finals."""
    out = OK if rset else b''
    out += OK + b''.join(rcpt_replies)
    if data is not None:
        out += data + b''.join(finals)
    return out


def lmtp_piece_seed(server, start, end):
    """A piece seed for which server[start:end] arrives in one piece without
    the lockstep (the harness cuts piece k at 1 + (seed * 31 + k * 7) % 83)."""
    for seed in range(256):
        pos = k = 0
        while True:
            n = 1 + (seed * 31 + k * 7) % 83
            if pos + n > start:
                break
            pos += n
            k += 1
        if pos + n >= end:
            return seed
    raise ValueError('no piece seed fits')


def lmtp_client_seeds():
    hello = GREET + lhlo()
    one = lmtp_tx([OK], [DONE])
    two = lmtp_tx([OK, OK], [DONE, DONE])
    content_then_done = hello + lmtp_tx([OK], [], data=None) + GO + DONE
    during = len(content_then_done) - len(GO + DONE)
    return {
        'one_recipient': lmtp(hello + one),
        'mixed_recipients': lmtp(hello + lmtp_tx(
            [OK, b'550 5.1.1 No such user\r\n', b'452 4.2.2 Over quota\r\n', OK],
            [DONE, b'552 5.2.2 Mailbox full\r\n']), rcpts=4),
        'reuse_with_rset': lmtp(hello + two + lmtp_tx([OK, OK], [DONE, DONE], rset=True),
                                rcpts=2, tx=2, message=1),
        'small_buffers_long_message': lmtp(
            hello + one + lmtp_tx([OK], [DONE], rset=True) + lmtp_tx([OK], [DONE], rset=True),
            tx=3, small=True, message=3, pieces=5),
        'smtputf8_offered': lmtp(hello + one, utf8=True),
        'smtputf8_not_offered': lmtp(GREET + lhlo(b'PIPELINING'), utf8=True, tx=2),
        'body_8bitmime': lmtp(hello + one, body8=True, message=2),
        'body_8bitmime_not_offered': lmtp(GREET + lhlo(b'PIPELINING') + one, body8=True),
        'greeting_refused': lmtp(b'554 5.3.2 Not now\r\n'),
        'greeting_busy_then_ok': lmtp(b'421 4.3.2 Busy\r\n' + hello + one, tx=2),
        'lhlo_refused': lmtp(GREET + b'500 5.5.1 What\r\n'),
        'mail_refused': lmtp(hello + b'451 4.3.0 Later\r\n' + b'503 5.5.1 No MAIL\r\n' * 3,
                             rcpts=3),
        'all_recipients_refused': lmtp(hello + lmtp_tx(
            [b'550 5.1.1 No\r\n', b'550 5.1.1 No\r\n'], [], data=None), rcpts=2),
        'data_refused_temporary': lmtp(hello + lmtp_tx([OK], [], data=b'452 4.3.1 Full\r\n')),
        'data_refused_permanent': lmtp(hello + lmtp_tx([OK], [], data=b'554 5.3.4 No\r\n')),
        # The regression (fixed): a 250 to DATA counted as a delivery.
        'regression_data_answered_250': lmtp(hello + lmtp_tx([OK, OK], [], data=DONE), rcpts=2),
        'rcpt_answered_354': lmtp(hello + lmtp_tx([GO], [DONE])),
        'final_reply_3xx': lmtp(hello + lmtp_tx([OK], [GO])),
        'multiline_final_replies': lmtp(hello + lmtp_tx(
            [OK, OK], [b'250-2.0.0 Saved\r\n250 2.0.0 as 1\r\n',
                       b'452-4.2.2 Over\r\n452 4.2.2 quota\r\n']), rcpts=2),
        'reply_during_content': lmtp(content_then_done, small=True, message=3, lockstep=False,
                                     pieces=lmtp_piece_seed(content_then_done, during,
                                                            len(content_then_done))),
        'all_replies_at_once': lmtp(hello + one + lmtp_tx([OK], [DONE], rset=True), tx=2,
                                    lockstep=False, pieces=40),
        'unsolicited_when_idle': lmtp(hello + one + b'421 4.3.2 Closing\r\n'),
        'extra_final_replies': lmtp(hello + one + DONE + DONE),
        'broken_final_reply': lmtp(hello + lmtp_tx([OK], [b'25O ok\r\n'])),
        'bare_lf': lmtp(b'220 mx.test\n'),
        'mixed_codes': lmtp(GREET + b'250-mx.test\r\n251 PIPELINING\r\n'),
        'long_reply_line': lmtp(hello + b'250 ' + b'x' * 3000 + b'\r\n'),
        'many_reply_lines': lmtp(GREET + b'250-x\r\n' * 200 + b'250 x\r\n'),
        'closed_after_354': lmtp(hello + lmtp_tx([OK], []), small=True, message=3),
        'closed_before_finals': lmtp(hello + lmtp_tx([OK, OK, OK], [DONE]), rcpts=3),
        'rset_refused': lmtp(hello + one + b'500 5.5.1 No RSET\r\n' + hello + one, tx=2),
        'timeout_connect': lmtp(hello + one, timeout='connect'),
        'timeout_reply': lmtp(hello + one, timeout='reply'),
        'timeout_data': lmtp(hello + one, timeout='data', small=True, message=3),
        'timeout_idle': lmtp(hello + one + hello + one, timeout='idle', tx=2),
    }


GENERATORS = {'handoff': handoff_seeds, 'imap_session': imap_seeds, 'maildrop': maildrop_seeds,
              'lmtp_client': lmtp_client_seeds}


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
