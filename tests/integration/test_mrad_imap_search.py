"""mrad's SEARCH by header fields while the folder changes under it, with
imaplib over a real Maildir: two sessions on one INBOX search by SUBJECT,
FROM, HEADER and SENTON, then one APPENDs and the other sees the new
message in its next search; a message delivered into new/ by another writer
is found; an expunged message is no longer found, in either session, and a
message appended after it is (the per-folder header cache of the mail
process must neither miss new messages nor keep answering for gone ones);
a flag change (STORE, not forced to disk before the OK) is seen by the
other session and survives a restart of mrad (a stop, not a power cut)."""

import time

from imap_helper import imap  # noqa: F401 (imap: a fixture)


def msg(n, subject=None, sender=None, extra=b''):
    subject = subject or b'note %d' % n
    sender = sender or b'Sender %d <s%d@example.net>' % (n, n)
    return (b'From: ' + sender + b'\r\nTo: bob@example.org\r\nSubject: ' + subject +
            b'\r\nDate: %d Feb 2024 10:00:00 +0000\r\n' % (1 + n % 28) + extra +
            b'\r\nbody %d\r\n' % n)



def uid_search(c, *keys):
    typ, data = c.uid('SEARCH', *keys)
    assert typ == 'OK', data
    return [int(x) for x in data[0].split()]


def seq_search(c, *keys):
    typ, data = c.search(None, *keys)
    assert typ == 'OK', data
    return [int(x) for x in data[0].split()]


def append(c, data, flags='()'):
    typ, resp = c.append('INBOX', flags, None, data)
    assert typ == 'OK', resp
    text = resp[0].decode()
    assert 'APPENDUID' in text, text
    return int(text.split(']')[0].split()[-1])


def until(c, pred, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        c.noop()
        if pred():
            return
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_header_search_follows_append_delivery_and_expunge(imap):
    for n in range(1, 31):
        subject = b'rare word %d' % n if n % 10 == 0 else None
        imap.add_maildir('bob', msg(n, subject=subject,
                                    extra=b'X-Tag: t%d\r\n' % (n % 3)))
    imap.start()
    a = imap.login()
    b = imap.login()
    assert a.select('INBOX')[0] == 'OK'
    assert b.select('INBOX')[0] == 'OK'
    rare = uid_search(a, 'SUBJECT', 'rare')
    assert len(rare) == 3
    for c in (a, b):  # the second session (and the second time) answer the same
        for _ in range(2):
            assert uid_search(c, 'SUBJECT', 'rare') == rare
            assert len(uid_search(c, 'HEADER', 'X-Tag', 't1')) == 10
            assert len(uid_search(c, 'FROM', 's7@example.net')) == 1
            assert len(uid_search(c, 'SENTON', '3-Feb-2024')) == 2  # n = 2, 30
            assert uid_search(c, 'OR', 'SUBJECT', 'rare', 'FROM', '"sender 5"') == sorted(
                rare + uid_search(c, 'FROM', '"sender 5"'))

    # An APPEND in one session: the other finds it at its next search.
    new_uid = append(a, msg(100, subject=b'rare appended', extra=b'X-Tag: t1\r\n'))
    until(b, lambda: len(seq_search(b, 'ALL')) == 31)
    assert uid_search(b, 'SUBJECT', 'rare') == rare + [new_uid]
    assert len(uid_search(b, 'HEADER', 'X-Tag', 't1')) == 11
    assert uid_search(a, 'SUBJECT', 'appended') == [new_uid]

    # A delivery by another writer (into new/).
    imap.add_maildir('bob', msg(101, subject=b'rare delivered'))
    until(a, lambda: len(seq_search(a, 'ALL')) == 32)
    delivered = uid_search(a, 'SUBJECT', 'delivered')
    assert len(delivered) == 1 and delivered[0] > new_uid
    until(b, lambda: len(seq_search(b, 'ALL')) == 32)
    assert uid_search(b, 'SUBJECT', 'rare') == rare + [new_uid] + delivered

    # Expunge the second rare message and the appended one in session a.
    gone = [rare[1], new_uid]
    typ, data = a.uid('STORE', ','.join(map(str, gone)), '+FLAGS.SILENT', r'(\Deleted)')
    assert typ == 'OK', data
    typ, data = a.expunge()
    assert typ == 'OK', data
    keep = [rare[0], rare[2]] + delivered
    assert uid_search(a, 'SUBJECT', 'rare') == keep
    until(b, lambda: len(seq_search(b, 'ALL')) == 30)
    assert uid_search(b, 'SUBJECT', 'rare') == keep
    assert uid_search(b, 'SUBJECT', 'appended') == []

    # A message appended after the expunge is found; the gone ones are not.
    later = append(b, msg(102, subject=b'rare later'))
    assert later > delivered[0]
    until(a, lambda: len(seq_search(a, 'ALL')) == 31)
    for c in (a, b):
        assert uid_search(c, 'SUBJECT', 'rare') == keep + [later]
        assert uid_search(c, 'UID', ','.join(map(str, gone))) == []
    a.logout()
    b.logout()


def test_search_in_a_new_session_and_other_folders(imap):
    for n in range(1, 6):
        imap.add_maildir('bob', msg(n, subject=b'alpha %d' % n))
    imap.start()
    a = imap.login()
    assert a.select('INBOX')[0] == 'OK'
    assert len(uid_search(a, 'SUBJECT', 'alpha')) == 5
    assert a.create('Other')[0] == 'OK'
    append_other = a.append('Other', '()', None, msg(9, subject=b'beta only here'))
    assert append_other[0] == 'OK', append_other
    assert a.select('Other')[0] == 'OK'
    # The same UIDs in another folder are other messages.
    assert uid_search(a, 'SUBJECT', 'alpha') == []
    assert len(uid_search(a, 'SUBJECT', 'beta')) == 1
    a.logout()
    b = imap.login()
    assert b.select('INBOX')[0] == 'OK'
    assert len(uid_search(b, 'SUBJECT', 'alpha')) == 5
    assert uid_search(b, 'SUBJECT', 'beta') == []
    b.logout()


def test_store_is_seen_by_the_other_session_and_survives_a_restart(imap):
    for n in range(1, 4):
        imap.add_maildir('bob', msg(n))
    imap.start()
    a = imap.login()
    b = imap.login()
    assert a.select('INBOX')[0] == 'OK'
    assert b.select('INBOX')[0] == 'OK'
    typ, data = a.store('2', '+FLAGS', r'(\Flagged $Work)')
    assert typ == 'OK', data
    assert seq_search(a, 'FLAGGED') == [2]
    until(b, lambda: seq_search(b, 'FLAGGED') == [2])
    assert seq_search(b, 'KEYWORD', '$Work') == [2]
    typ, data = b.store('1', '+FLAGS', r'(\Seen)')
    assert typ == 'OK', data
    a.logout()
    b.logout()
    imap.stop()
    imap.start()
    c = imap.login()
    assert c.select('INBOX')[0] == 'OK'
    assert seq_search(c, 'FLAGGED') == [2]
    assert seq_search(c, 'KEYWORD', '$Work') == [2]
    assert seq_search(c, 'SEEN') == [1]
    c.logout()
