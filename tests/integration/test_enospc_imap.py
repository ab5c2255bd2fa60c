"""Disk full under IMAP APPEND (issue 10 item 4): the mail root on a small
tmpfs, filled; APPEND gets a tagged NO (never BAD, never a dropped
connection), no half-written file stays in tmp/ or cur/, the session goes
on, and APPEND works again by itself once space is freed. SMTP and LMTP on
a full disk are tests/torture/enospc (test_enospc.py).

Needs root for mount(2) (CI runs as root); skipped otherwise, or where
mount is not permitted.

Trust: a test; loopback only; mounts a tmpfs under the instance folder."""

import imaplib
import os
import subprocess

import pytest

from imap_helper import ImapSetup
from test_mtad_outbound_cache import fill


def message(n, size=20000):
    return (b'From: a@example.net\r\nSubject: append %d\r\n\r\n' % n +
            b'x' * 76 + b'\r\n') * (size // 78)


def files(root):
    out = {}
    for sub in ('tmp', 'new', 'cur'):
        d = root / sub
        out[sub] = sorted(os.listdir(d)) if d.exists() else []
    return out


def test_imap_append_on_a_full_disk(instance, binary, free_port, request):
    if os.geteuid() != 0:
        pytest.skip('mount(2) needs root')
    mail = instance.dir / 'mail'
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m,mode=0755',
                        'yubin-mailfull', str(mail)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f'mount not permitted: {r.stderr.strip()}')
    ballast = mail / 'ballast'
    setup = None
    try:
        setup = ImapSetup(instance, binary, free_port,
                          login_user=request.getfixturevalue('system_user'),
                          users={'bob': 'maildir'})
        setup.start()
        c = setup.login('bob')
        assert c.append('INBOX', None, None, message(1))[0] == 'OK'
        root = setup.maildir('bob')
        before = files(root)
        assert len(before['new']) + len(before['cur']) == 1

        assert fill(ballast) > 0
        typ, data = c.append('INBOX', None, None, message(2, 200000))
        assert typ == 'NO' and data == [b'[OVERQUOTA] Not enough disk space'], (typ, data)
        assert 'warning: imap: APPEND failed' in setup.log()
        # Nothing half-written: tmp/ is empty again and no new message.
        assert files(root) == before
        # A small one is held in memory and gets its file on a commit thread
        # (maildir_store.cpp, MaildirAppend): the same answer, nothing left.
        typ, data = c.append('INBOX', None, None, message(4))
        assert typ == 'NO' and data == [b'[OVERQUOTA] Not enough disk space'], (typ, data)
        assert files(root) == before
        # The session goes on, and it still has its one message.
        typ, data = c.select('INBOX')
        assert typ == 'OK' and data == [b'1'], data
        typ, data = c.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
        assert typ == 'OK' and b'append 1' in data[0][1]

        ballast.unlink()
        assert c.append('INBOX', None, None, message(3))[0] == 'OK'
        typ, data = c.select('INBOX')
        assert typ == 'OK' and data == [b'2'], data
        c.logout()
        assert setup.proc.poll() is None, setup.log()
        assert files(root)['tmp'] == []
    finally:
        if setup is not None:
            setup.stop()
        ballast.unlink(missing_ok=True)
        r = subprocess.run(['umount', str(mail)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(['umount', '-l', str(mail)], capture_output=True)
