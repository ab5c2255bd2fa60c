"""The password checker's cache (sasl/password_checker.hpp; [mrad] and
[msad] auth_cache_size, auth_cache_ttl), end to end with real clients.

Users are made by `yubinctl user add`, so their hash has the production
cost (Argon2id t=2, m=64 MiB: tens of milliseconds of CPU a check). What is
measured is the CPU time the daemon's threads use for a login
(/proc/PID/task/*/schedstat, as test_attacks_auth_timing does), never the
wall time: the first successful login pays a full Argon2id check, later
ones with the same password are answered from the cache at a small
fraction of it; a wrong password still pays in full and is refused, and
with auth_cache_size = 0 every login pays.

Trust: test code; loopback only."""

import base64
import imaplib
import smtplib
import statistics

import pytest

from conftest import is_root
from imap_helper import ImapSetup
from mrad_helper import PASSWORD
from standalone import Daemon, hand_over, tcp_greets
from test_attacks_auth_timing import cpu_seconds

# A full check costs at least this much CPU at yubinctl's cost (measured
# 60-120 ms on the development VM); a cached login well under a tenth of it.
FULL = 0.02
CACHED = 0.006


def cpu_of(pids, fn):
    before = cpu_seconds(pids())
    result = fn()
    return cpu_seconds(pids()) - before, result


def imap_login(setup, password):
    c = imaplib.IMAP4('127.0.0.1', setup.iport, timeout=30)
    try:
        c.login('bob@example.org', password)
        ok = True
    except imaplib.IMAP4.error:
        ok = False
    try:
        c.logout()
    except (imaplib.IMAP4.abort, OSError):
        pass
    return ok


def mrad_setup(instance, binary, free_port, request, **keys):
    login_user = request.getfixturevalue('system_user') if is_root() else None
    setup = ImapSetup(instance, binary, free_port, login_user=login_user,
                      users={'bob': 'maildir'}, pop3s_listen='', imaps_listen='', **keys)
    setup.start()
    return setup


def pids_of(setup):
    return lambda: [setup.proc.pid] + ([setup.mail_pid()] if setup.mail_pid() else [])


def test_mrad_imap_login_cached(instance, binary, free_port, request):
    setup = mrad_setup(instance, binary, free_port, request)
    pids = pids_of(setup)
    first, ok = cpu_of(pids, lambda: imap_login(setup, PASSWORD))
    assert ok
    assert first > FULL, f'the first login cost only {first * 1000:.1f} ms of CPU'
    later = []
    for _ in range(5):
        t, ok = cpu_of(pids, lambda: imap_login(setup, PASSWORD))
        assert ok
        later.append(t)
    assert statistics.median(later) < CACHED, (first, later)
    # A wrong password is checked in full and refused; the right one is
    # still remembered afterwards.
    t, ok = cpu_of(pids, lambda: imap_login(setup, 'not ' + PASSWORD))
    assert not ok and t > FULL, t
    t, ok = cpu_of(pids, lambda: imap_login(setup, PASSWORD))
    assert ok and t < CACHED * 2, t
    setup.stop()


def test_mrad_auth_cache_off(instance, binary, free_port, request):
    setup = mrad_setup(instance, binary, free_port, request, auth_cache_size=0)
    pids = pids_of(setup)
    costs = []
    for _ in range(3):
        t, ok = cpu_of(pids, lambda: imap_login(setup, PASSWORD))
        assert ok
        costs.append(t)
    assert min(costs) > FULL, costs
    setup.stop()


@pytest.fixture
def msad(instance, binary, free_port):
    port = free_port()
    keys = {'listen': f'127.0.0.1:{port}', 'listen_tls': '',
            'mtad_socket': str(instance.run_dir / 'no-mtad-here'),
            'loopback_plaintext': True, 'auth_delay_ms': 0}
    instance.write_config({'global': {'domains': ['example.org']}, 'msad': keys})
    (instance.dir / 'etc/users').write_text('')
    (instance.dir / 'etc/aliases').write_text('')
    r = instance.ctl('user', 'add', 'alice@example.org', input=PASSWORD + '\n')
    assert r.returncode == 0, r.stderr
    hand_over(instance, keys)
    instance.write_config({'msad': keys})
    d = Daemon(instance, binary('msad/msad'), 'msad', lambda: tcp_greets(port))
    d.start()
    yield port, lambda: [d.proc.pid]
    d.stop()


def smtp_auth(port, password):
    with smtplib.SMTP('127.0.0.1', port, local_hostname='laptop.example', timeout=30) as s:
        s.ehlo()
        creds = base64.b64encode(f'\0alice@example.org\0{password}'.encode()).decode()
        return s.docmd('AUTH', 'PLAIN ' + creds)[0]


def test_msad_auth_plain_cached(msad):
    port, pids = msad
    first, code = cpu_of(pids, lambda: smtp_auth(port, PASSWORD))
    assert code == 235 and first > FULL, (code, first)
    later = []
    for _ in range(5):
        t, code = cpu_of(pids, lambda: smtp_auth(port, PASSWORD))
        assert code == 235
        later.append(t)
    assert statistics.median(later) < CACHED, (first, later)
    t, code = cpu_of(pids, lambda: smtp_auth(port, 'not ' + PASSWORD))
    assert code == 535 and t > FULL, (code, t)
