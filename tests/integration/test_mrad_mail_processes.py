"""mrad with several mail processes ([mrad] mail_processes): the login
process starts that many, each on its own handoff channel, and hands each
session to the one chosen by FNV-1a of the user's canonical address modulo
the count (mrad.hpp: mailProcessIndex). Checked here: sessions of several
users (IMAP and POP3) spread over more than one process, each in the
process its hash names; two IMAP sessions of one user share a process and
see each other's STORE and EXPUNGE at once; POP3 [IN-USE] still holds for a
second session of one user; kill -9 of one mail process ends mrad with 70."""

import imaplib
import os
import poplib
import re
import signal

import pytest

from conftest import is_root, wait_for
from imap_helper import ImapSetup
from mrad_helper import PASSWORD

PROCESSES = 3
USERS = ['bob', 'dave', 'erin', 'frank', 'grace', 'heidi']


def msg(n, body=b'hello\n'):
    return (b'From: alice@example.net\nTo: bob@example.org\n'
            b'Subject: message %d\nMessage-ID: <m%d@example.net>\n\n' % (n, n)) + body


def fnv1a_index(user, n):
    h = 14695981039346656037
    for b in user.encode():
        h ^= b
        h = (h * 1099511628211) % (1 << 64)
    return h % n


@pytest.fixture
def setup(instance, binary, free_port, request):
    login_user = request.getfixturevalue('system_user') if is_root() else None
    s = ImapSetup(instance, binary, free_port, login_user=login_user,
                  users={u: 'maildir' for u in USERS}, mail_processes=str(PROCESSES))
    for u in USERS:
        s.add_maildir(u, msg(1))
        s.add_maildir(u, msg(2))
    yield s
    s.stop()


def children(setup):
    pid = setup.proc.pid
    try:
        kids = [int(k) for k in
                open(f'/proc/{pid}/task/{pid}/children').read().split()]
    except OSError:
        return []
    setup.inst.seen_pids.update(kids)
    return kids


def start(setup):
    """Starts mrad; returns {index: pid} of its mail processes, from the
    login process's log, checked against its children."""
    setup.start()
    kids = wait_for(lambda: (lambda k: k if len(k) == PROCESSES else None)(children(setup)),
                    20, 'every mail process')

    def started():
        found = dict((int(i), int(p)) for i, p in
                     re.findall(r'mail process started index=(\d+) pid=(\d+)', setup.log()))
        return found if len(found) == PROCESSES else None
    by_index = wait_for(started, 20, 'the mail processes in the log')
    assert sorted(by_index) == list(range(PROCESSES))
    assert sorted(by_index.values()) == sorted(kids)
    return by_index


def session_pid(setup, pattern, user, count=1):
    """The pid of the mail process that logged `pattern` for user (it must
    have logged it `count` times, all in one process)."""
    rx = re.compile(r'mrad-mail\[(\d+)\]: \w+: ' + pattern + r' session=\S+ user=' +
                    re.escape(f'{user}@example.org') + r'\b')

    def seen():
        pids = rx.findall(setup.log())
        return pids if len(pids) >= count else None
    pids = wait_for(seen, 20, f'{pattern} for {user}')
    assert len(set(pids)) == 1, pids
    return int(pids[0])


def pop_login(setup, user):
    c = poplib.POP3('127.0.0.1', setup.port, timeout=20)
    c.user(f'{user}@example.org')
    c.pass_(PASSWORD)
    return c


def test_sessions_spread_by_user(setup):
    by_index = start(setup)
    imaps = {u: setup.login(u, tls=False) for u in USERS}
    for c in imaps.values():
        assert c.select('INBOX')[0] == 'OK'
    pops = {u: pop_login(setup, u) for u in USERS[:3]}
    for c in pops.values():
        assert c.stat()[0] == 2
    used = set()
    for u in USERS:
        want = by_index[fnv1a_index(f'{u}@example.org', PROCESSES)]
        assert session_pid(setup, 'imap session started', u) == want, u
        used.add(want)
    for u in pops:
        want = by_index[fnv1a_index(f'{u}@example.org', PROCESSES)]
        assert session_pid(setup, 'mailbox opened', u) == want, u
    assert len(used) > 1, used
    for c in imaps.values():
        c.logout()
    for c in pops.values():
        c.quit()
    assert setup.proc.poll() is None


def test_same_user_sessions_meet_in_one_process(setup):
    by_index = start(setup)
    a = setup.login('bob', tls=False)
    b = setup.login('bob', tls=True)  # one direct, one proxied through TLS
    assert a.select('INBOX')[0] == 'OK'
    assert b.select('INBOX')[0] == 'OK'
    pid = session_pid(setup, 'imap session started', 'bob', count=2)
    assert pid == by_index[fnv1a_index('bob@example.org', PROCESSES)]

    assert a.store('1', '+FLAGS', r'(\Flagged)')[0] == 'OK'
    typ, data = b.noop()
    assert typ == 'OK'
    flags = [d for d in b.untagged_responses.get('FETCH', [])]
    assert any(b'\\Flagged' in (f if isinstance(f, bytes) else b''.join(f)) for f in flags), \
        b.untagged_responses
    b.untagged_responses.clear()

    assert a.store('2', '+FLAGS', r'(\Deleted)')[0] == 'OK'
    assert a.expunge()[0] == 'OK'
    assert b.noop()[0] == 'OK'
    assert b.untagged_responses.get('EXPUNGE') == [b'2'], b.untagged_responses
    typ, data = b.search(None, 'ALL')
    assert typ == 'OK' and data == [b'1']
    a.logout()
    b.logout()


def test_pop3_in_use_across_the_same_users_sessions(setup):
    start(setup)
    first = pop_login(setup, 'erin')
    assert first.stat()[0] == 2
    second = poplib.POP3('127.0.0.1', setup.port, timeout=20)
    second.user('erin@example.org')
    with pytest.raises(poplib.error_proto, match=r'\[IN-USE\]'):
        second.pass_(PASSWORD)
    first.quit()
    third = wait_for(lambda: pop_login(setup, 'erin'), 10, 'the mailbox released')
    assert third.stat()[0] == 2
    third.quit()


def test_one_mail_process_killed_ends_mrad(setup):
    by_index = start(setup)
    clients = [setup.login(u, tls=False) for u in USERS]
    victim = by_index[PROCESSES - 1]
    os.kill(victim, signal.SIGKILL)
    assert setup.proc.wait(20) == 70
    log = setup.log()
    assert f'mail process ended index={PROCESSES - 1}' in log
    # Every session was closed, also those of the other processes.
    for c in clients:
        with pytest.raises((imaplib.IMAP4.error, OSError, EOFError)):
            c.noop()
            c.noop()
    # The other mail processes saw their channels close and ended.
    for pid in by_index.values():
        wait_for(lambda: not os.path.exists(f'/proc/{pid}') or
                 'Z' in open(f'/proc/{pid}/stat').read().split(')')[1][:3], 20,
                 f'mail process {pid} to end')
