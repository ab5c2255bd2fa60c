"""meson install --destdir: every program, page and the sample config land
in their FHS places, and the installed programs run; the systemd units and
the empty folders are installed too; the units' socket names are config
keys; and what the units grant (capability bounding set, no-new-privs,
socket activation) is enough for the programs they start (as root)."""
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import REPO, is_root, read_line, unix_connect, wait_for
from standalone import hand_over


def test_destdir_install(tmp_path, build_dir):
    dest = tmp_path / 'root'
    r = subprocess.run(['meson', 'install', '-C', str(build_dir), '--no-rebuild', '--quiet',
                        '--destdir', str(dest)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files = {str(p.relative_to(dest)) for p in dest.rglob('*') if p.is_file()}
    prefix = next(p for p in files if p.endswith('sbin/yubinctl')).rsplit('/sbin/', 1)[0]
    want = ['sbin/yubinctl', 'sbin/yubin-master', 'share/man/man8/yubinctl.8',
            'share/man/man5/yubin.conf.5', 'share/man/man7/yubin.7']
    for w in want:
        assert f'{prefix}/{w}' in files, (w, sorted(files))
    assert any(f.endswith('yubin/mtad') for f in files)
    assert any(f.endswith('yubin/mdad') for f in files)
    assert any(f.endswith('etc/yubin/yubin.conf') for f in files)
    # One mailq, where Debian's MTAs have it (/usr/bin), a link to yubinctl
    # (which prints the queue when called mailq); its page is
    # yubin-sendmail(1), a user command.
    mailq = dest / prefix / 'bin/mailq'
    assert mailq.is_symlink() and os.readlink(mailq) == '../sbin/yubinctl'
    assert not (dest / prefix / 'sbin/mailq').is_symlink()
    assert [f for f in files if f.endswith('/mailq')] == [f'{prefix}/bin/mailq']
    assert f'{prefix}/share/man/man1/yubin-sendmail.1' in files
    assert not any(f.endswith('man8/yubin-sendmail.8') for f in files)
    assert os.readlink(dest / prefix / 'share/man/man1/mailq.1') == 'yubin-sendmail.1'
    # Nothing test-only is installed.
    assert not any('testd' in f or 'mkcert' in f or f.endswith('_test') for f in files)
    ctl = dest / prefix / 'sbin/yubinctl'
    r = subprocess.run([str(ctl), '--version'], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and 'yubin' in r.stdout.lower(), r.stdout + r.stderr
    mtad = next(dest.rglob('yubin/mtad'))
    r = subprocess.run([str(mtad), '--version'], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith('mtad (yubin) '), r.stdout


# --- the install layout: units and empty folders ----------------------------

SYSTEMD_SRC = REPO / 'systemd'


def unit_values(path, key):
    """Every value of `key=` in a unit file (comments skipped)."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith(key + '='):
            out.append(line.split('=', 1)[1].strip())
    return out


def daemon_sockets(daemon):
    """The socket units systemd/meson.build installs for `daemon`."""
    text = (SYSTEMD_SRC / 'meson.build').read_text()
    m = re.search(r"'%s' : \[([^]]*)\]" % daemon, text)
    assert m, f'no socket list for {daemon} in systemd/meson.build'
    return [SYSTEMD_SRC / n for n in re.findall(r"'([\w.-]+\.socket)'", m.group(1))]


def test_destdir_install_units_and_folders(tmp_path, build_dir):
    dest = tmp_path / 'root'
    r = subprocess.run(['meson', 'install', '-C', str(build_dir), '--no-rebuild', '--quiet',
                        '--destdir', str(dest)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    opts = {o['name']: o['value'] for o in json.loads(subprocess.run(
        ['meson', 'introspect', str(build_dir), '--buildoptions'],
        capture_output=True, text=True, check=True, timeout=60).stdout)}
    prefix = Path(opts['prefix'])

    # The empty folders of the config's defaults, under localstatedir, with
    # the modes the package keeps (owners are postinst's job).
    state = prefix / opts['localstatedir']
    for sub, mode in (('spool/yubin', 0o700), ('lib/yubin', 0o755), ('mail/yubin', 0o700)):
        d = dest / state.relative_to('/') / sub
        assert d.is_dir(), f'{d} not installed'
        assert list(d.iterdir()) == [], f'{d} is not empty'
        assert d.stat().st_mode & 0o7777 == mode, (d, oct(d.stat().st_mode))

    # Units: installed when the build has a unit folder.
    units = sorted(dest.rglob('systemd/system/yubin*'))
    configured = (build_dir / 'systemd/yubin.service').exists()
    assert bool(units) == configured, units
    if not configured:
        pytest.skip('this build installs no systemd units (-Dsystemdsystemunitdir=no or no systemd)')
    names = {u.name for u in units}
    master = next(u for u in units if u.name == 'yubin.service')
    libexec = prefix / opts['libexecdir'] / 'yubin'
    confdir = prefix / opts['sysconfdir'] / 'yubin'
    assert unit_values(master, 'ExecStart') == [
        f"{prefix / opts['sbindir']}/yubin-master -c {confdir}/yubin.conf"]
    for daemon in ('mtad', 'mdad', 'msad', 'mrad'):
        built = (build_dir / daemon / daemon).exists()
        service = f'yubin-{daemon}.service'
        assert (service in names) == built, (daemon, built, sorted(names))
        if not built:
            continue
        for sock in daemon_sockets(daemon):
            assert sock.name in names, (sock.name, sorted(names))
            assert unit_values(sock, 'Service') == [service]
            assert unit_values(sock, 'Conflicts') == ['yubin.service']
        unit = next(u for u in units if u.name == service)
        assert unit_values(unit, 'ExecStart') == [f'{libexec}/{daemon} -c {confdir}/yubin.conf']
        # Every path a unit names is an installed program.
        assert (dest / libexec.relative_to('/') / daemon).is_file()
    want_sockets = {s.name for d in ('mtad', 'mdad', 'msad', 'mrad')
                    if (build_dir / d / d).exists() for s in daemon_sockets(d)}
    assert {n for n in names if n.endswith('.socket')} == want_sockets
    for u in units:
        assert not re.search(r'@[a-z_]+@', u.read_text()), f'unsubstituted variable in {u.name}'

    # systemd's own check, on copies whose paths point into the destdir
    # (verify wants the programs to exist).
    analyze = shutil.which('systemd-analyze')
    if analyze:
        copies = tmp_path / 'units'
        copies.mkdir()
        for u in units:
            (copies / u.name).write_text(u.read_text().replace(f'={prefix}/', f'={dest}{prefix}/')
                                         .replace(f' {confdir}', f' {dest}{confdir}'))
        r = subprocess.run([analyze, 'verify', '--man=no', *sorted(map(str, copies.iterdir()))],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


def test_socket_names_are_config_keys(build_dir):
    """FileDescriptorName= of every socket unit is a listening key of its
    daemon's section in the parser's own table (yubinctl check --keys)."""
    ctl = build_dir / 'ctl/yubinctl'
    if not ctl.exists():
        pytest.skip('yubinctl is not built')
    r = subprocess.run([str(ctl), 'check', '--keys'], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    listen_keys = {}
    for line in r.stdout.splitlines():
        section, key, typ = line.split('\t')[:3]
        if typ in ('listen', 'unix-listen', 'unixlisten'):
            listen_keys.setdefault(section, set()).add(key)
    checked = 0
    for daemon in ('mtad', 'mdad', 'msad', 'mrad'):
        if daemon not in listen_keys:
            continue  # not in the schema yet: its units are not installed
        for sock in daemon_sockets(daemon):
            names = unit_values(sock, 'FileDescriptorName')
            assert len(names) == 1 and names[0] in listen_keys[daemon], (sock.name, names,
                                                                        listen_keys[daemon])
            checked += 1
    assert checked >= 2, listen_keys


# --- the units' privileges, tried for real ------------------------------------
# systemd is not running here; what can be reproduced without it is: the
# capability bounding set and no-new-privs (setpriv) and socket activation
# (systemd-socket-activate). The rest of the hardening (namespaces, the
# syscall filter) is checked by systemd-analyze only.

def setpriv_prefix(unit):
    caps = unit_values(unit, 'CapabilityBoundingSet')
    assert len(caps) == 1, caps
    names = [c.lower().removeprefix('cap_') for c in caps[0].split()]
    cmd = [shutil.which('setpriv'), '--bounding-set', '-all,' + ','.join('+' + n for n in names)]
    if unit_values(unit, 'NoNewPrivileges') == ['yes']:
        cmd.append('--no-new-privs')
    return cmd


def needs_root_tools(*tools):
    if not is_root():
        pytest.skip('needs root: the units start their programs as root')
    for t in tools:
        if not shutil.which(t):
            pytest.skip(f'{t} is not installed')


def site(instance, binary, port):
    """mtad on 127.0.0.1:port and mdad on a Unix socket, both as nobody,
    one user alice@example.org with a Maildir."""
    mtad_exe, mdad_exe = binary('mtad/mtad'), binary('mdad/mdad')
    instance.link_daemon('mtad', mtad_exe)
    instance.link_daemon('mdad', mdad_exe)
    etc = instance.dir / 'etc'
    (etc / 'users').write_text('alice@example.org:*:::maildir:\n')
    (etc / 'aliases').write_text('')
    sock = instance.run_dir / 'lmtp'
    mtad = {'listen': f'127.0.0.1:{port}', 'lmtp_socket': str(sock),
            'retry_min': '1s', 'retry_max': '2s'}
    mdad = {'lmtp_socket': str(sock)}
    _, group = hand_over(instance, mtad, mdad)
    mdad['lmtp_socket_group'] = group
    # The maildrop's group is the daemons' own: the default, yubin-drop,
    # exists once `scripts/dev up` has run, and mtad as nobody may not give
    # the folder to it (a warning with EPERM in the log).
    instance.write_config({'mtad': mtad, 'mdad': mdad, 'sendmail': {'maildrop_group': group}})
    return sock


def delivered(instance, token):
    new = instance.dir / 'mail/example.org/alice/Maildir/new'
    return new.is_dir() and any(token in p.read_text(errors='replace') for p in new.iterdir())


def send_token(port, token):
    with smtplib.SMTP('127.0.0.1', port, local_hostname='client.example.net', timeout=15) as s:
        refused = s.sendmail('bob@example.net', ['alice@example.org'],
                             f'Subject: {token}\r\n\r\n{token}\r\n')
    assert not refused, refused


def test_master_runs_with_the_capabilities_of_yubin_service(instance, binary, free_port):
    """yubin-master under yubin.service's bounding set and no-new-privs:
    binds, starts mtad and mdad as nobody, a message reaches the Maildir,
    SIGHUP reloads, SIGTERM stops everything."""
    needs_root_tools('setpriv')
    port = free_port()
    site(instance, binary, port)
    unit = SYSTEMD_SRC / 'yubin.service.in'
    master = subprocess.Popen(
        setpriv_prefix(unit) + [str(instance.master_bin), '-f', '-c', str(instance.conf)],
        stdin=subprocess.DEVNULL, stdout=open(instance.log_path, 'ab'),
        stderr=subprocess.STDOUT, start_new_session=True)
    instance.master = master
    instance._pgids.add(master.pid)
    instance.wait_ready()
    instance.wait_daemon('mtad')
    mdad = instance.wait_daemon('mdad')
    token = f'caps-{uuid.uuid4().hex}'
    send_token(port, token)
    wait_for(lambda: delivered(instance, token), 30, 'the message in the Maildir')
    # Reload: the master signals daemons running as another user (CAP_KILL).
    r = instance.ctl('reload')
    assert r.returncode == 0, r.stderr
    wait_for(lambda: 'reload' in instance.master_log().lower(), 10, 'a reload line')
    assert instance.daemon('mdad')['pid'] == mdad['pid']
    assert 'Operation not permitted' not in instance.master_log()
    assert instance.stop_master(30) == 0, instance.master_log()
    for pid in instance.seen_pids:
        wait_for(lambda: not Path(f'/proc/{pid}').exists() or
                 Path(f'/proc/{pid}/stat').read_text().split()[2] == 'Z', 10, f'pid {pid} gone')


@pytest.mark.parametrize('daemon', ['mdad', 'mtad'])
def test_daemon_alone_under_socket_activation(instance, binary, free_port, daemon):
    """A daemon started as its yubin-<daemon>.socket/.service would: the
    socket bound by systemd-socket-activate with the unit's
    FileDescriptorName, the unit's bounding set and no-new-privs. It serves
    on the passed socket instead of binding its own."""
    needs_root_tools('setpriv', 'systemd-socket-activate')
    port = free_port()
    lmtp = site(instance, binary, port)
    sock_unit = SYSTEMD_SRC / f'yubin-{daemon}.socket'
    (fdname,) = unit_values(sock_unit, 'FileDescriptorName')
    if daemon == 'mdad':
        address = str(instance.run_dir / 'activated-lmtp')

        def connect():
            return unix_connect(address, 10)
    else:
        fport = free_port()
        address = f'127.0.0.1:{fport}'

        def connect():
            return socket.create_connection(('127.0.0.1', fport), 5)
    exe = binary(f'{daemon}/{daemon}')
    log = instance.dir / f'{daemon}.log'
    cmd = (setpriv_prefix(SYSTEMD_SRC / f'yubin-{daemon}.service.in') +
           [shutil.which('systemd-socket-activate'), '-l', address, f'--fdname={fdname}',
            str(exe), '-f', '-c', str(instance.conf)])
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(log, 'ab'),
                            stderr=subprocess.STDOUT, start_new_session=True)
    instance._pgids.add(proc.pid)
    instance.seen_pids.add(proc.pid)

    def greeting():
        if proc.poll() is not None:
            pytest.fail(f'{daemon} exited with {proc.returncode}:\n{log.read_text()}')
        try:
            s = connect()
        except OSError:
            return None
        with s:
            s.settimeout(10)
            return read_line(s) or None
    line = wait_for(greeting, 30, f'{daemon} to greet on the activated socket')
    assert line.startswith('220 '), line
    text = log.read_text()
    assert 'no sockets passed' not in text, text
    assert 'privileges dropped' in text, text
    # What its section names was not bound: the passed socket replaced it.
    if daemon == 'mdad':
        assert not lmtp.exists(), 'mdad bound its configured socket too'
    else:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(('127.0.0.1', port), 5).close()
    proc.terminate()
    proc.wait(15)
