"""mrad's IMAP APPEND commits off the mail process's loop (issue 8): the
fsyncs of the message and its folder and the UID log's fdatasync run on
worker threads while the one loop goes on serving every other session.

The test holds a commit with [mrad] imap_commit_gate, a Unix socket each
blocking step of a commit connects to and then waits for one byte: a
connection accepted is a step held, so nothing here depends on timing. While the
APPEND is held, another session's NOOP, FETCH and SELECT are answered and
the appending session has answered nothing (not even the NOOP pipelined
behind its APPEND); once both steps are let through, the APPEND gets OK
[APPENDUID] with the UID the other session then sees, the NOOP behind it
is answered, and a restarted mrad keeps the message under that UID.
Then several sessions APPEND at once, without the gate: distinct UIDs, all
of them kept by a restart."""

import os
import re
import select
import socket
import threading

from imap_helper import imap  # noqa: F401 (imap: a fixture)


def msg(n):
    return (b'Subject: async append %d\r\nFrom: alice@example.net\r\n\r\nbody %d\r\n'
            % (n, n))


def hold(gate):
    """Waits until a commit step waits at the gate; returns its connection."""
    conn, _ = gate.accept()
    return conn


def release(conn):
    conn.sendall(b'x')
    conn.close()


def silent(c):
    """Nothing has arrived for client c (its socket has no byte to read)."""
    readable, _, _ = select.select([c.sock], [], [], 0)
    return not readable


def read_until(c, tag):
    lines = []
    while True:
        line = c.readline()
        assert line, 'connection closed'
        lines.append(line)
        if line.startswith(tag + b' '):
            return lines


def uid_of(c, num):
    typ, data = c.fetch(str(num), '(UID)')
    assert typ == 'OK', data
    return int(re.search(rb'UID (\d+)', data[0]).group(1))


def setup_gate(imap):
    path = imap.mail / 'commit-gate'
    gate = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    gate.bind(str(path))
    os.chmod(path, 0o600)
    imap._own(path)
    gate.listen(4)
    gate.settimeout(20)  # a bound for a broken run, not a timing assumption
    imap.write(imap_commit_gate=str(path))
    return gate


def test_append_held_on_disk_while_other_sessions_are_served(imap):
    imap.add_maildir('bob', msg(1).replace(b'\r\n', b'\n'))
    gate = setup_gate(imap)
    imap.start()
    # Plain on the trusted loopback listener: the socket shows exactly what
    # the server sent.
    a = imap.login(tls=False)
    b = imap.login(tls=False)
    assert a.select('INBOX')[0] == 'OK'
    assert b.select('INBOX')[0] == 'OK'
    typ, data = b.fetch('1', '(BODY.PEEK[])')
    assert typ == 'OK', data
    first = data[0][1]

    data = msg(2)
    tag, noop = a._new_tag(), a._new_tag()
    a.send(tag + b' APPEND INBOX (\\Seen) {%d+}\r\n' % len(data) + data + b'\r\n' +
           noop + b' NOOP\r\n')
    # Step 1: the message's fsync, its link into cur/, the folder's fsync.
    step = hold(gate)
    assert b.noop()[0] == 'OK'
    typ, data2 = b.fetch('1', '(UID FLAGS BODY.PEEK[])')
    assert typ == 'OK' and data2[0][1] == first, data2
    assert b.select('INBOX')[0] == 'OK'
    assert b.untagged_responses.get('EXISTS') == [b'1']  # not there yet
    assert silent(a)
    release(step)
    # Step 2: the UID log's fdatasync. The UID is given, not yet told.
    step = hold(gate)
    assert b.noop()[0] == 'OK'
    assert silent(a)
    release(step)

    lines = read_until(a, tag)
    m = re.match(rb'.* OK \[APPENDUID (\d+) (\d+)\] APPEND completed\r\n$', lines[-1])
    assert m, lines
    validity, uid = int(m.group(1)), int(m.group(2))
    assert read_until(a, noop)[-1].startswith(noop + b' OK'), 'the NOOP behind it'
    # The other session sees it with that UID and those bytes.
    assert b.noop()[0] == 'OK'
    assert uid_of(b, 2) == uid
    typ, got = b.fetch('2', '(FLAGS BODY.PEEK[])')
    assert typ == 'OK' and got[0][1] == data, got
    assert b'\\Seen' in got[0][0], got
    assert len(imap.maildir_files('bob')['cur']) == 2
    a.logout()
    b.logout()

    # A restarted mrad has it, under the same UIDVALIDITY and UID.
    gate.close()
    imap.stop()
    imap.start()
    c = imap.login(tls=False)
    assert c.select('INBOX')[0] == 'OK'
    assert c.response('UIDVALIDITY') == ('UIDVALIDITY', [str(validity).encode()])
    assert uid_of(c, 2) == uid
    typ, got = c.fetch('2', '(BODY.PEEK[])')
    assert typ == 'OK' and got[0][1] == data, got
    c.logout()


def test_appends_from_many_sessions_at_once(imap):
    imap.start()
    sessions, each = 6, 8
    results, errors = {}, []

    def appender(k):
        try:
            c = imap.login(tls=False)
            uids = []
            for i in range(each):
                typ, resp = c.append('Archive', None, None, msg(100 * k + i))
                assert typ == 'OK', resp
                uids.append(int(re.search(rb'APPENDUID \d+ (\d+)', resp[0]).group(1)))
            results[k] = uids
            c.logout()
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    uids = sorted(u for v in results.values() for u in v)
    assert uids == list(range(1, sessions * each + 1))

    def contents():
        c = imap.login(tls=False)
        assert c.select('Archive', readonly=True)[0] == 'OK'
        typ, data = c.fetch('1:*', '(UID BODY.PEEK[])')
        assert typ == 'OK', data
        c.logout()
        return {int(re.search(rb'UID (\d+)', d[0]).group(1)): d[1]
                for d in data if isinstance(d, tuple)}

    before = contents()
    assert len(before) == sessions * each
    for k, v in results.items():
        for i, u in enumerate(v):
            assert before[u] == msg(100 * k + i)
    imap.stop()
    imap.start()
    assert contents() == before
