"""mrad's CONDSTORE (RFC 7162) end to end with imaplib over a real Maildir:
CONDSTORE advertised after login, ENABLE CONDSTORE, SELECT's HIGHESTMODSEQ,
FETCH MODSEQ and CHANGEDSINCE, STATUS HIGHESTMODSEQ, SEARCH MODSEQ; two
sessions -- one STOREs, the other sees the change as FETCH ... MODSEQ at its
next NOOP, and its STORE (UNCHANGEDSINCE) with the mod-sequence it had
fails with [MODIFIED]; mod-sequences survive a restart of mrad (the uid
list on disk, version 2); a flag change made by renaming the file (as a
Dovecot-style Maildir client does) gets a greater mod-sequence."""

import os
import re
import time

from imap_helper import imap  # noqa: F401 (imap: a fixture)


def msg(n):
    return b'Subject: message %d\nFrom: alice@example.net\n\nhello %d\n' % (n, n)



def modseqs(data):
    """{sequence number: modseq} of FETCH response data."""
    out = {}
    for item in data:
        if isinstance(item, tuple):
            item = item[0]
        if not isinstance(item, bytes):
            continue
        m = re.match(rb'(\d+) \(.*MODSEQ \((\d+)\)', item)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def highest(c):
    """HIGHESTMODSEQ of the last SELECT (imaplib files response codes by name)."""
    vals = c.untagged_responses.get('HIGHESTMODSEQ')
    assert vals, c.untagged_responses
    return int(vals[-1])


def fetch_modseqs(c, spec='1:*'):
    typ, data = c.fetch(spec, '(UID MODSEQ)')
    assert typ == 'OK', data
    return modseqs(data)


def noop_until(c, pred, timeout=10):
    """NOOP until pred(FETCH data seen so far) holds; returns that data."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        c.noop()
        seen += c.untagged_responses.pop('FETCH', [])
        if pred(seen):
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)


def test_two_sessions_modified_and_restart(imap):
    imap.add_maildir('bob', msg(1))
    imap.add_maildir('bob', msg(2))
    imap.start()
    a = imap.login()
    typ, data = a.capability()
    assert typ == 'OK' and b'CONDSTORE' in data[0].split(), data
    typ, data = a.enable('CONDSTORE')
    assert typ == 'OK', data
    assert a.untagged_responses.get('ENABLED') == [b'CONDSTORE']
    assert a.select('INBOX')[0] == 'OK'
    h0 = highest(a)
    before = fetch_modseqs(a)
    assert set(before) == {1, 2}
    assert all(1 <= v <= h0 for v in before.values())

    b = imap.login()
    assert b.select('INBOX')[0] == 'OK'
    assert highest(b) == h0
    typ, data = b.store('1', '+FLAGS', '(\\Flagged)')
    assert typ == 'OK', data

    # a sees b's change with a greater MODSEQ.
    seen = noop_until(a, lambda s: 1 in modseqs(s))
    assert b'\\Flagged' in b' '.join(x for x in seen if isinstance(x, bytes))
    m1 = modseqs(seen)[1]
    assert m1 > h0

    # a's conditional STORE with the mod-sequence it had before fails.
    # (imaplib files the tagged reply's [MODIFIED ...] code under its name.)
    typ, data = a.store('1', f'(UNCHANGEDSINCE {before[1]}) +FLAGS', '(\\Seen)')
    assert typ == 'OK', data
    assert a.response('MODIFIED') == ('MODIFIED', [b'1'])
    typ, data = a.fetch('1', '(FLAGS)')
    assert b'\\Seen' not in data[0]
    # With the current one it succeeds and answers the new MODSEQ.
    typ, data = a.store('1', f'(UNCHANGEDSINCE {m1}) +FLAGS', '(\\Seen)')
    assert typ == 'OK', data
    assert a.response('MODIFIED') == ('MODIFIED', [None])
    got = modseqs(data)
    assert got[1] > m1
    # CHANGEDSINCE: only what changed after the SELECT.
    typ, data = a.fetch('1:*', f'(FLAGS) (CHANGEDSINCE {h0})')
    assert typ == 'OK', data
    assert set(modseqs(data)) == {1}
    typ, data = a.search(None, 'MODSEQ', str(h0 + 1))
    assert typ == 'OK', data
    assert data[0] == b'1 (MODSEQ %d)' % got[1], data
    typ, data = a.status('INBOX', '(HIGHESTMODSEQ MESSAGES)')
    assert typ == 'OK', data
    assert data[0] == b'INBOX (HIGHESTMODSEQ %d MESSAGES 2)' % got[1], data

    after = fetch_modseqs(a)
    top = max(after.values())
    a.logout()
    b.logout()

    # The list on disk is version 2; a restarted mrad has the same modseqs.
    text = (imap.maildir('bob') / 'yubin-uidlist').read_text()
    assert text.startswith('yubin-uidlist 2 '), text
    imap.stop()
    imap.start()
    c = imap.login()
    assert c.select('INBOX')[0] == 'OK'
    assert highest(c) == top
    assert fetch_modseqs(c) == after
    c.logout()


def test_rename_by_another_maildir_writer_gets_a_new_modseq(imap):
    imap.add_maildir('bob', msg(1))
    imap.start()
    a = imap.login()
    assert a.enable('CONDSTORE')[0] == 'OK'
    assert a.select('INBOX')[0] == 'OK'  # moves the message to cur/
    h0 = highest(a)
    cur = imap.maildir('bob') / 'cur'
    names = os.listdir(cur)
    assert len(names) == 1, names
    base = names[0].split(':')[0]
    os.rename(cur / names[0], cur / (base + ':2,FS'))
    seen = noop_until(a, lambda s: 1 in modseqs(s))
    line = b' '.join(x for x in seen if isinstance(x, bytes))
    assert b'\\Flagged' in line and b'\\Seen' in line, line
    assert modseqs(seen)[1] > h0
    a.logout()


def test_no_modseq_before_condstore_is_enabled(imap):
    imap.add_maildir('bob', msg(1))
    imap.start()
    a = imap.login()
    b = imap.login()
    assert a.select('INBOX')[0] == 'OK'
    assert b.select('INBOX')[0] == 'OK'
    typ, data = a.store('1', '+FLAGS', '(\\Answered)')
    assert typ == 'OK'
    assert b'MODSEQ' not in data[0], data
    # SELECT ... (CONDSTORE) turns it on.
    typ, data = b._simple_command('SELECT', 'INBOX', '(CONDSTORE)')
    assert typ == 'OK', data
    assert a.store('1', '-FLAGS', '(\\Answered)')[0] == 'OK'
    seen = noop_until(b, lambda s: 1 in modseqs(s))
    assert modseqs(seen)[1] >= 1
    a.logout()
    b.logout()
