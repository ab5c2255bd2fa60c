"""yubin-master and yubinctl end to end, with yubin-testd as the daemon: it
answers every TCP connection with "testd <pid>\\r\\n", so a test sees which
process holds the socket the master bound."""

import json
import os
import re
import signal
import socket
import stat
import subprocess

import pytest

from conftest import is_root, tcp_line, wait_for


def serving_pid(port):
    line = tcp_line(port)
    m = re.fullmatch(r'testd (\d+)', line)
    assert m, f'unexpected greeting {line!r}'
    return int(m.group(1))


def alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


@pytest.fixture
def running(instance, testd, free_port):
    """A master running yubin-testd as mtad; yields (instance, port)."""
    port = free_port()
    instance.add_testd(testd, port)
    instance.start_master()
    instance.wait_daemon('mtad')
    return instance, port


def test_master_starts_the_daemon_on_its_socket(running):
    inst, port = running
    d = inst.daemon('mtad')
    assert d['state'] == 'running'
    assert d['restarts'] == 0
    # The socket the master bound is served by the daemon it started.
    assert serving_pid(port) == d['pid']
    log = inst.master_log()
    assert f"daemon started name=mtad pid={d['pid']}" in log
    if not is_root():
        assert 'dev mode' in log


def test_killed_daemon_is_restarted_and_serves_again(running):
    inst, port = running
    old = inst.daemon('mtad')['pid']
    os.kill(old, signal.SIGKILL)
    new = inst.wait_daemon('mtad', not_pid=old)
    assert new['restarts'] == 1
    assert serving_pid(port) == new['pid'] != old
    assert f'cause="pid {old} signal SIGKILL" restart_in=1s' in inst.master_log()


def test_crashing_daemon_backs_off(instance, free_port):
    instance.link_daemon('mtad', '/bin/false')
    instance.write_config({'mtad': {'listen': f'127.0.0.1:{free_port()}'},
                           'master': {'restart_delay_max': '2s'}})
    instance.start_master()
    # 1 s, then 2 s (the cap), 2 s...: the delays are logged.
    wait_for(lambda: 'restart_in=2s' in instance.master_log(), 15, 'a doubled delay')
    assert 'cause="pid' in instance.master_log() and 'exit code 1"' in instance.master_log()
    d = instance.daemon('mtad')
    assert d['restarts'] >= 1
    assert d['state'] in ('backoff', 'running')


def test_status_text_and_json(running):
    inst, port = running
    r = inst.ctl('status')
    assert r.returncode == 0, r.stderr
    d = inst.daemon('mtad')
    lines = r.stdout.splitlines()
    assert lines[0].startswith('yubin-master ')
    assert f'pid {inst.master.pid}' in lines[0]
    assert lines[1].split() == ['NAME', 'STATE', 'PID', 'UPTIME', 'RESTARTS', 'SESSIONS']
    row = [line.split() for line in lines[2:] if line.startswith('mtad ')]
    assert row and row[0][:3] == ['mtad', 'running', str(d['pid'])]
    assert row[0][4] == '0'

    st = json.loads(inst.ctl('status', '--json').stdout)
    assert st['master']['pid'] == inst.master.pid
    assert st['master']['version']
    [m] = [x for x in st['daemons'] if x['name'] == 'mtad']
    assert set(m) == {'name', 'state', 'pid', 'uptime', 'restarts', 'responding', 'sessions'}
    assert m['pid'] == d['pid'] and m['restarts'] == 0 and m['state'] == 'running'
    assert m['responding'] is True and isinstance(m['sessions'], int)


def test_status_counts_open_sessions(running):
    inst, port = running
    with socket.create_connection(('127.0.0.1', port), timeout=5) as a, \
            socket.create_connection(('127.0.0.1', port), timeout=5) as b:
        for s in (a, b):
            assert s.recv(100).startswith(b'testd ')
        wait_for(lambda: inst.daemon('mtad')['sessions'] == 2, 10, 'two sessions')
    wait_for(lambda: inst.daemon('mtad')['sessions'] == 0, 10, 'no session')


def test_reload_adds_and_removes_daemons(running, testd):
    inst, port = running
    mta_pid = inst.daemon('mtad')['pid']
    lmtp = inst.run_dir / 'lmtp'
    inst.add_testd(testd, section='mdad', unix_socket=lmtp)
    r = inst.ctl('reload')
    assert r.returncode == 0, r.stderr
    mda = inst.wait_daemon('mdad')
    assert tcp_line(lmtp) == f"testd {mda['pid']}"
    assert stat.S_IMODE(lmtp.stat().st_mode) == 0o660
    assert inst.daemon('mtad')['pid'] == mta_pid

    inst.write_config({'mtad': None})
    r = inst.ctl('reload')
    assert r.returncode == 0, r.stderr
    wait_for(lambda: [d['name'] for d in inst.status()['daemons']] == ['mdad'], 10,
             'mtad to leave the status')
    wait_for(lambda: not alive(mta_pid), 10, 'mtad to exit')
    with pytest.raises(OSError):
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
    assert inst.daemon('mdad')['pid'] == mda['pid']
    assert 'section removed; stopping daemon name=mtad' in inst.master_log()


def test_a_new_master_replaces_a_killed_one(running):
    inst, port = running
    old_master, old_daemon = inst.master.pid, inst.daemon('mtad')['pid']
    inst.master.kill()
    inst.master.wait(10)
    # The daemon notices that its master is gone and exits; the control
    # socket file stays behind, stale.
    wait_for(lambda: not alive(old_daemon), 15, 'the orphaned daemon to exit')
    assert (inst.run_dir / 'control').exists()
    inst.start_master()
    d = inst.wait_daemon('mtad')
    assert inst.status()['master']['pid'] != old_master
    assert serving_pid(port) == d['pid'] != old_daemon


def test_reload_keeps_the_daemon_and_refuses_a_bad_config(running):
    inst, port = running
    pid = inst.daemon('mtad')['pid']
    r = inst.ctl('reload')
    assert (r.returncode, r.stdout.strip()) == (0, 'reloaded'), r.stderr
    wait_for(lambda: 'reloaded config=' in inst.master_log(), 5, 'the reload log line')
    assert inst.wait_daemon('mtad')['pid'] == pid  # SIGHUP, not a restart

    # A file that does not parse: yubinctl itself refuses it; the master,
    # told by SIGHUP, logs file:line and keeps the running config.
    good = inst.conf.read_text()
    inst.write_config(text=good + 'bogus_key = 1\n')
    line = len(good.splitlines()) + 1
    r = inst.ctl('reload')
    assert r.returncode == 1
    assert f'{inst.conf}:{line}: unknown key' in r.stderr
    inst.master.send_signal(signal.SIGHUP)
    wait_for(lambda: f'reload refused, keeping the running config error="{inst.conf}:{line}: '
             'unknown key' in inst.master_log(), 5, 'the refusal log line')
    assert inst.master.poll() is None
    inst.write_config(text=good)  # yubinctl needs a readable file again
    assert inst.daemon('mtad')['pid'] == pid
    assert serving_pid(port) == pid

    # A file that parses but cannot be applied (the new section's socket
    # path is a regular file): the master answers the error, file:line.
    blocker = inst.dir / 'not-a-socket'
    blocker.write_text('keep me\n')
    inst.write_config(text=good + f'[mdad]\nlmtp_socket = {blocker}\n')
    r = inst.ctl('reload')
    assert r.returncode == 1
    assert f'{inst.conf}:{line + 1}: [mdad] lmtp_socket: {blocker}: exists and is not a socket' \
        in r.stderr, r.stderr
    assert blocker.read_text() == 'keep me\n'
    assert [d['name'] for d in inst.status()['daemons']] == ['mtad']
    assert inst.daemon('mtad')['pid'] == pid


def test_sighup_reloads(running):
    inst, _ = running
    inst.master.send_signal(signal.SIGHUP)
    wait_for(lambda: 'reloaded config=' in inst.master_log(), 5, 'the reload log line')


def test_stop_stops_everything(running):
    inst, port = running
    pid = inst.daemon('mtad')['pid']
    r = inst.ctl('stop')
    assert r.returncode == 0, r.stderr
    assert inst.master.wait(10) == 0
    assert not alive(pid)
    assert not (inst.run_dir / 'control').exists()
    with pytest.raises(OSError):
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
    r = inst.ctl('status')
    assert r.returncode == 1 and 'not running' in r.stderr


def test_sigterm_stops_gracefully(running):
    inst, _ = running
    pid = inst.daemon('mtad')['pid']
    assert inst.stop_master() == 0
    assert not alive(pid)
    assert 'daemon stopped name=mtad' in inst.master_log()


def test_yubinctl_start_detaches_and_writes_the_pid_file(instance, testd, free_port):
    port = free_port()
    instance.add_testd(testd, port)
    r = instance.ctl('start')
    assert r.returncode == 0, r.stderr
    pid_file = instance.run_dir / 'master.pid'
    pid = int(pid_file.read_text())
    assert f'started (pid {pid})' in r.stdout
    instance.seen_pids.add(pid)
    assert os.getsid(pid) == pid or os.getsid(pid) != os.getsid(0)  # own session
    d = instance.wait_daemon('mtad')
    assert serving_pid(port) == d['pid']
    assert instance.status()['master']['pid'] == pid

    r = instance.ctl('start')
    assert r.returncode == 1 and 'already running' in r.stderr

    r = instance.ctl('stop')
    assert r.returncode == 0, r.stderr
    assert not alive(pid) and not alive(d['pid'])
    assert not pid_file.exists()


def test_yubinctl_start_reports_a_bind_error(instance, testd, free_port):
    port = free_port()
    instance.add_testd(testd, port)
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', port))
        taken.listen()
        r = instance.ctl('start')
    assert r.returncode == 1
    assert re.search(rf'{re.escape(str(instance.conf))}:\d+: \[mtad\] listen: bind 127\.0\.0\.1:{port}: '
                     'Address already in use', r.stderr), r.stderr
    assert 'exited while starting' in r.stderr


def test_bad_config_is_refused_with_file_and_line(instance):
    bad = instance.write_config(text='version = 1\n[global]\ndomains = example.org\n'
                                     '[mtad]\nlisten = 127.0.0.1:notaport\n')
    r = instance.ctl('check')
    assert r.returncode == 1
    assert r.stderr.startswith(f'{bad}:5: listen:'), r.stderr
    p = subprocess.run([str(instance.master_bin), '-f', '-c', str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert f'{bad}:5: listen:' in p.stderr

    instance.write_config()
    r = instance.ctl('check')
    assert (r.returncode, r.stdout) == (0, 'ok\n')


def test_check_keys_prints_the_schema(instance):
    r = instance.ctl('check', '--keys')
    assert r.returncode == 0
    # section, key, type, default, description, choices
    rows = [line.split('\t') for line in r.stdout.splitlines()]
    assert rows and all(len(row) == 6 for row in rows)
    keys = {(row[0], row[1]): row for row in rows}
    assert keys[('master', 'control_socket')][2:4] == ['path', '/run/yubin/control']
    assert keys[('master', 'control_socket')][4] == 'Unix socket yubinctl talks to'
    assert keys[('global', 'domains')][3] == '(required)'
    assert keys[('mtad', 'listen')][2] == 'listen'
    assert keys[('global', 'log')][2::3] == ['choice', 'syslog stderr']


def test_usage_help_and_version(instance):
    r = instance.ctl('--help')
    assert r.returncode == 0
    for cmd in ('start', 'stop', 'reload', 'status [--json]', 'check', 'version'):
        assert f'\n  {cmd}' in r.stdout
    assert '-c file' in r.stdout
    assert instance.ctl('frobnicate').returncode == 2
    assert instance.ctl('status', '--xml').returncode == 2
    assert subprocess.run([str(instance.ctl_bin)], capture_output=True).returncode == 2

    m = subprocess.run([str(instance.master_bin), '--version'], capture_output=True, text=True)
    assert m.returncode == 0 and m.stdout.startswith('yubin-master ')
    m = subprocess.run([str(instance.master_bin), '--help'], capture_output=True, text=True)
    assert m.returncode == 0 and '-c file' in m.stdout and '-f' in m.stdout
    m = subprocess.run([str(instance.master_bin), '--bogus'], capture_output=True, text=True)
    assert m.returncode == 2
    v = instance.ctl('version')
    assert v.returncode == 0 and v.stdout.startswith('yubinctl ')


def test_two_masters_do_not_share_a_control_socket(running):
    inst, _ = running
    p = subprocess.run([str(inst.master_bin), '-f', '-c', str(inst.conf)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    # Its daemon's port is taken, or else its control socket is.
    assert 'Address already in use' in p.stderr or 'another process' in p.stderr
    assert inst.ctl('status').returncode == 0


@pytest.mark.skipif(not is_root(), reason='needs root')
def test_control_socket_refuses_a_non_admin_peer(running):
    inst, _ = running
    # Mode 0660 and the admin group keep `nobody` out at connect()...
    sock = inst.run_dir / 'control'
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    r = inst.ctl('status', user='nobody')
    assert r.returncode == 1 and 'permission denied' in r.stderr, r.stderr
    # ...and when the file mode lets it in, the master still refuses it: the
    # decision is the master's, from SO_PEERCRED.
    sock.chmod(0o666)
    for cmd in ('status', 'stop', 'reload'):
        r = inst.ctl(cmd, user='nobody')
        assert r.returncode == 1
        assert 'permission denied: uid' in r.stderr, r.stderr
    wait_for(lambda: 'control refused uid=' in inst.master_log(), 5, 'the refusal log line')
    assert inst.ctl('status').returncode == 0
    assert inst.master.poll() is None


@pytest.mark.skipif(not is_root(), reason='needs root')
def test_daemon_runs_as_its_configured_user(instance, testd, free_port, system_user):
    import pwd
    pw = pwd.getpwnam(system_user)
    port = free_port()
    instance.add_testd(testd, port, user=system_user)
    instance.start_master()
    d = instance.wait_daemon('mtad')
    assert serving_pid(port) == d['pid']
    with open(f"/proc/{d['pid']}/status") as f:
        fields = dict(line.split(':', 1) for line in f)
    assert fields['Uid'].split() == [str(pw.pw_uid)] * 4
    assert fields['Gid'].split() == [str(pw.pw_gid)] * 4
    assert fields['Groups'].split() in ([], [str(pw.pw_gid)])


@pytest.mark.skipif(not is_root(), reason='needs root')
def test_master_binds_a_privileged_port_for_the_daemon(instance, testd):
    # Find a free port below 1024 (tests run in parallel: try a few).
    port = None
    for candidate in range(1023, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', candidate))
            except OSError:
                continue
            port = candidate
            break
    if port is None:
        pytest.skip('no free port below 1024')
    instance.add_testd(testd, port)
    instance.start_master()
    d = instance.wait_daemon('mtad')
    assert serving_pid(port) == d['pid']
    with open(f"/proc/{d['pid']}/status") as f:
        uid = [line.split()[1] for line in f if line.startswith('Uid:')][0]
    assert uid != '0'  # it serves port {port} without root


def test_check_reads_the_users_and_aliases_files(instance):
    instance.write_config()
    users = instance.dir / 'etc/users'
    aliases = instance.dir / 'etc/aliases'
    aliases.write_text('postmaster@example.org: bob@example.net\n')
    users.write_text('# a comment\nbob@example.org:nohash\n')
    r = instance.ctl('check')
    assert r.returncode == 1
    assert f'{users}:2:' in r.stderr, r.stderr
    users.write_text('')
    aliases.write_text('')
    r = instance.ctl('check')
    assert (r.returncode, r.stdout) == (0, 'ok\n')
    assert 'warning: postmaster@example.org reaches no one' in r.stderr
    aliases.write_text('postmaster@example.org: someone@example.net\n')
    r = instance.ctl('check')
    assert (r.returncode, r.stdout) == (0, 'ok\n')
    assert 'postmaster' not in r.stderr
