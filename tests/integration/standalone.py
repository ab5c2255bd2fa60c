"""Daemons run alone, without yubin-master: `<exe> -f -c CONF` in the
foreground, each binding its own sockets, its output in <name>.log in the
instance folder. Shared by the end-to-end tests of mtad, mdad and msad.

Also the hand-over of an instance to the account the daemons run as when
the tests run as root (Instance.run_as(): nobody and its group).

Trust: a test helper; loopback and Unix sockets only.
"""

import os
import pwd
import signal
import socket
import subprocess

import pytest

from conftest import read_line, unix_connect, wait_for


class Daemon:
    """One daemon in the foreground. `ready()` says whether it serves;
    start() waits for it (failing the test if the daemon exits first)."""

    def __init__(self, inst, exe, name, ready, timeout=30):
        self.inst = inst
        self.exe = exe
        self.name = name
        self.ready = ready
        self.timeout = timeout
        self.proc = None
        self.log_path = inst.dir / f'{name}.log'

    def start(self):
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen([str(self.exe), '-f', '-c', str(self.inst.conf)],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        # The instance's teardown kills whatever is left of it.
        self.inst._pgids.add(self.proc.pid)
        self.inst.seen_pids.add(self.proc.pid)

        def up():
            if self.proc.poll() is not None:
                pytest.fail(f'{self.name} exited with {self.proc.returncode}:\n{self.log()}')
            return self.ready()
        wait_for(up, self.timeout, f'{self.name} to serve')
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def log(self):
        return self.log_path.read_text(errors='replace') if self.log_path.exists() else ''


def greets(connect):
    """Whether a server reached through connect() (returning a connected
    socket) greets with "220 "; False while it cannot be reached."""
    try:
        s = connect()
    except OSError:
        return False
    with s:
        s.settimeout(5)
        return read_line(s).startswith('220 ')


def tcp_greets(port):
    return greets(lambda: socket.create_connection(('127.0.0.1', port), 5))


def unix_greets(path):
    return greets(lambda: unix_connect(path))


def hand_over(inst, *sections):
    """Readies the instance for daemons run as inst.run_as() when root.

    The users and aliases files become mode 0640 (as root: owned by root,
    group of the daemons' account, like /etc/yubin); as root, the spool and
    the mail root are given to that account, and every dict in `sections`
    (the keys of a daemon's section) gets its user and group. Returns
    (user, group), or None when not root; the caller sets the socket
    groups it needs and writes the config."""
    etc = inst.dir / 'etc'
    for f in ('users', 'aliases'):
        os.chmod(etc / f, 0o640)
    who = inst.run_as()
    if not who:
        return None
    pw = pwd.getpwnam(who[0])
    for f in ('users', 'aliases'):
        os.chown(etc / f, 0, pw.pw_gid)
    for d in ('spool', 'mail'):
        os.chown(inst.dir / d, pw.pw_uid, pw.pw_gid)
    for keys in sections:
        keys['user'], keys['group'] = who
    return who


def submission_chain(inst, binary, smtp_port, sub_port, msad_keys):
    """msad on 127.0.0.1:sub_port handing to mtad (127.0.0.1:smtp_port, no
    remote delivery, quick retries), which delivers through mdad on a Unix
    socket: writes the three sections (msad's from `msad_keys` plus its
    listener and mtad's socket), hands the instance over (call it once the
    users and aliases files are written) and returns the Daemons (mtad,
    mdad, msad), not started."""
    lmtp, submission = inst.run_dir / 'lmtp', inst.run_dir / 'submission'
    mtad = {'listen': f'127.0.0.1:{smtp_port}', 'lmtp_socket': str(lmtp),
            'submission_socket': str(submission), 'remote_delivery': False,
            'retry_min': '1s', 'retry_max': '2s'}
    mdad = {'lmtp_socket': str(lmtp)}
    msad = {'listen': f'127.0.0.1:{sub_port}', 'mtad_socket': str(submission), **msad_keys}
    inst.write_config({'mtad': mtad, 'mdad': mdad, 'msad': msad})
    who = hand_over(inst, mtad, mdad, msad)
    if who:
        mdad['lmtp_socket_group'] = who[1]
        mtad['submission_socket_group'] = who[1]
        inst.write_config({'mtad': mtad, 'mdad': mdad, 'msad': msad})
    return (Daemon(inst, binary('mtad/mtad'), 'mtad', lambda: tcp_greets(smtp_port)),
            Daemon(inst, binary('mdad/mdad'), 'mdad', lambda: unix_greets(lmtp)),
            Daemon(inst, binary('msad/msad'), 'msad', lambda: tcp_greets(sub_port)))
