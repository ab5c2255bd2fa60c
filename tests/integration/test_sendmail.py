"""yubin-sendmail end to end: local programs' mail through the maildrop.

yubin-sendmail leaves each message in <spool>/maildrop (root directly,
anyone else through the set-group-ID yubin-postdrop); mtad's pickup moves
it into the queue and mdad delivers it into the Maildir. Covered: recipients
as arguments and with -t (To/Cc/Bcc, Bcc gone from the delivered copy), as
root and as an unprivileged throw-away user, -f honoured for root and
ignored (logged) for an ordinary user, a message dropped while mtad is
stopped and delivered once it starts, -bs (SMTP on stdin/stdout) and its
idle timeouts, a
corrupt maildrop file quarantined, and the sysexits codes for a bad
address and a missing recipient.

As root the daemons run as nobody (standalone.hand_over); the maildrop is
made as the Debian package makes it (owner: the spool's owner, group: a
throw-away drop group, mode 1730) and a copy of yubin-postdrop is made
set-group-ID to that group. Every wait polls with a deadline.
"""

import os
import pwd
import grp
import shutil
import subprocess
import uuid

import pytest

from conftest import is_root, public_copy, wait_for
from test_local_delivery import Site

BODY = 'Subject: hello\n\nthe body\n.. two dots stay\n'


def user_env():
    """The environment for a run as an ordinary user: in a sanitizer build,
    leak detection off, as LeakSanitizer cannot inspect the set-group-ID
    yubin-postdrop (it may not ptrace it) and would fail its exit."""
    env = dict(os.environ)
    asan = env.get('ASAN_OPTIONS', '')
    env['ASAN_OPTIONS'] = (asan + ':' if asan else '') + 'detect_leaks=0'
    return env


@pytest.fixture
def drop_group():
    if not is_root():
        pytest.skip('needs root')
    name = 'ydrop' + uuid.uuid4().hex[:10]
    subprocess.run(['groupadd', '--system', name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(['groupdel', name], capture_output=True)


class Mail:
    """A Site (mtad + mdad, users alice bob carol) plus yubin-sendmail."""

    def __init__(self, inst, binary, port, group):
        self.site = Site(inst, binary, port)
        self.inst = inst
        self.sendmail = binary('sendmail/yubin-sendmail')
        postdrop = inst.dir / 'libexec' / 'yubin-postdrop'
        shutil.copy(binary('sendmail/yubin-postdrop'), postdrop)
        gid = grp.getgrnam(group).gr_gid
        os.chown(postdrop, 0, gid)
        os.chmod(postdrop, 0o2755)
        self.maildrop = inst.dir / 'spool' / 'maildrop'
        spool = os.stat(inst.dir / 'spool')
        self.maildrop.mkdir()
        os.chown(self.maildrop, spool.st_uid, gid)
        os.chmod(self.maildrop, 0o1730)
        inst.write_config({'sendmail': {'postdrop': str(postdrop), 'maildrop_group': group,
                                        'qualify_domain': 'example.org'}})

    def run(self, *args, input=BODY, user=None):
        preexec = None
        if user is not None:
            pw = pwd.getpwnam(user)

            def preexec():
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        sendmail = self.sendmail if user is None else public_copy(self.sendmail)
        return subprocess.run([str(sendmail), '-C', str(self.inst.conf), *args],
                              input=input, capture_output=True, text=True, timeout=30,
                              preexec_fn=preexec, env=user_env() if user else None)

    def wait_mail(self, user, count=1):
        wait_for(lambda: len(self.site.maildir(user)) >= count, 30,
                 f'{count} message(s) for {user} (mtad log: {self.site.mtad.log()[-2000:]})')
        return [m.decode() for m in self.site.messages(user)]

    def drop_files(self):
        return sorted(p.name for p in self.maildrop.iterdir() if p.name != 'corrupt')


@pytest.fixture
def mail(instance, binary, free_port, drop_group):
    m = Mail(instance, binary, free_port(), drop_group)
    yield m
    for d in (m.site.mtad, m.site.mdad):
        d.stop()


@pytest.fixture
def running(mail):
    mail.site.mdad.start()
    mail.site.mtad.start()
    return mail


def header(msg, name):
    for line in msg.split('\n'):
        if line.lower().startswith(name.lower() + ':'):
            return line.split(':', 1)[1].strip()
    return None


def test_recipients_as_arguments_as_root(running):
    r = running.run('-F', 'Cron Daemon', 'bob', 'carol@example.org')
    assert r.returncode == 0, r.stderr
    for user in ('bob', 'carol'):
        msg = running.wait_mail(user)[0]
        assert msg.startswith('Return-Path: <root@example.org>\n')
        assert header(msg, 'From') == '"Cron Daemon" <root@example.org>' or \
            header(msg, 'From') == 'Cron Daemon <root@example.org>'
        assert header(msg, 'Date') and header(msg, 'Message-ID').endswith('@mx.example.org>')
        assert 'from userid 0;' in msg
        assert msg.endswith('\nthe body\n.. two dots stay\n')
    assert running.drop_files() == []


def test_extract_recipients_as_an_ordinary_user(running, system_user):
    text = ('From: Me <me@example.org>\nTo: bob@example.org,\n  "Carol C." <carol@example.org>\n'
            'Bcc: hidden: alice@example.org;\nSubject: t\n\nbody\n')
    r = running.run('-t', '-i', '-oem', '-f', 'someone@evil.example', input=text, user=system_user)
    assert r.returncode == 0, r.stderr
    uid = pwd.getpwnam(system_user).pw_uid
    for user in ('bob', 'carol', 'alice'):
        msg = running.wait_mail(user)[0]
        # -f is not honoured for an ordinary user: the sender is who they are.
        assert msg.startswith(f'Return-Path: <{system_user}@example.org>\n'), msg[:200]
        assert header(msg, 'Bcc') is None
        assert header(msg, 'From') == 'Me <me@example.org>'
        assert f'from userid {uid};' in msg
    wait_for(lambda: 'sender ignored' in running.site.mtad.log(), 10, 'the sender-ignored log line')
    log = [line for line in running.site.mtad.log().splitlines() if 'sender ignored' in line][0]
    assert f'user={system_user}' in log and 'requested=<someone@evil.example>' in log


def test_root_may_set_the_sender(running):
    r = running.run('-f', 'alice@example.org', 'bob@example.org')
    assert r.returncode == 0, r.stderr
    msg = running.wait_mail('bob')[0]
    assert msg.startswith('Return-Path: <alice@example.org>\n')
    assert header(msg, 'From') == 'alice@example.org'


def test_dropped_while_mtad_is_stopped(mail, system_user):
    mail.site.mdad.start()
    r = mail.run('bob@example.org', user=system_user)
    assert r.returncode == 0, r.stderr
    r = mail.run('-oi', 'carol@example.org')
    assert r.returncode == 0, r.stderr
    files = mail.drop_files()
    assert len(files) == 2
    owners = sorted(os.stat(mail.maildrop / f).st_uid for f in files)
    assert owners == sorted([0, pwd.getpwnam(system_user).pw_uid])
    mail.site.mtad.start()
    assert mail.wait_mail('bob')[0].startswith(f'Return-Path: <{system_user}@example.org>\n')
    assert mail.wait_mail('carol')[0].startswith('Return-Path: <root@example.org>\n')
    wait_for(lambda: mail.drop_files() == [], 10, 'the maildrop to empty')


def test_smtp_on_stdin(running):
    script = ('EHLO localhost\r\nMAIL FROM:<carol@example.org>\r\nRCPT TO:<bob@example.org>\r\n'
              'DATA\r\nSubject: via -bs\r\n\r\nline\r\n..dot\r\n.\r\nQUIT\r\n')
    r = running.run('-bs', input=script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('220 mx.example.org')
    assert any(line.startswith('250 2.0.0') for line in lines), lines
    assert lines[-1].startswith('221')
    msg = running.wait_mail('bob')[0]
    # Root ran it: the MAIL FROM is honoured; dot-stuffing undone.
    assert msg.startswith('Return-Path: <carol@example.org>\n')
    assert msg.endswith('\nline\n.dot\n')


def bs_until_exit(mail, lines, timeout=20):
    """Runs -bs, writes `lines` and then stays silent with stdin open (an
    idle client): the exit code, the time to exit, and what was printed."""
    import time
    p = subprocess.Popen([str(mail.sendmail), '-C', str(mail.inst.conf), '-bs'],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        p.stdin.write(lines)
        p.stdin.flush()
        rc = p.wait(timeout=timeout)
        return rc, time.monotonic() - start, p.stdout.read().splitlines()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
        p.stdout.close()


def test_smtp_on_stdin_idle_timeout(mail):
    # Postfix applies smtpd's timeouts to `sendmail -bs`; here [mtad]'s:
    # the command timeout between commands, the data timeout inside DATA.
    mail.inst.write_config({'mtad': {'command_timeout': '1s', 'data_timeout': '2s'}})
    rc, took, out = bs_until_exit(mail, 'EHLO localhost\r\n')
    assert rc == 75, out                                   # EX_TEMPFAIL
    assert out[0].startswith('220 ') and out[-1].startswith('421 4.4.2'), out
    assert 1 <= took < 10
    # Half a message, then silence: 421, nothing dropped.
    rc, took, out = bs_until_exit(mail, 'HELO localhost\r\nMAIL FROM:<carol@example.org>\r\n'
                                        'RCPT TO:<bob@example.org>\r\nDATA\r\nSubject: half\r\n')
    assert rc == 75, out
    assert any(line.startswith('354') for line in out) and out[-1].startswith('421 4.4.2'), out
    assert 2 <= took < 15
    assert mail.drop_files() == []


def test_corrupt_file_is_quarantined(running):
    # Written as the real writer does: a dot name first, then renamed.
    tmp = running.maildrop / '.bad1'
    tmp.write_bytes(b'YUBIN-MAILDROP 1\nrcpt bob@example.org\nsize 999\n\nshort\n')
    os.chmod(tmp, 0o644)
    os.rename(tmp, running.maildrop / 'bad1')
    # A good message after it still goes through.
    r = running.run('carol@example.org')
    assert r.returncode == 0, r.stderr
    running.wait_mail('carol')
    wait_for(lambda: (running.maildrop / 'corrupt' / 'bad1').exists(), 10, 'quarantine')
    assert 'message truncated' in running.site.mtad.log()
    assert running.site.maildir('bob') == []


def test_exit_codes(mail):
    assert mail.run('a@@b').returncode == 65              # EX_DATAERR: bad address
    assert mail.run().returncode == 64                    # EX_USAGE: no recipient
    assert mail.run('-t', input='Subject: x\n\nno one\n').returncode == 64
    r = mail.run('-Z', 'bob@example.org')
    assert r.returncode == 64 and 'unknown option' in r.stderr
    assert mail.run('-bd').returncode == 69               # EX_UNAVAILABLE
    assert mail.run('-C', '/nonexistent/yubin.conf', 'bob').returncode == 78  # EX_CONFIG
    assert mail.drop_files() == []


def test_postdrop_refuses(mail, system_user):
    postdrop = mail.inst.dir / 'libexec' / 'yubin-postdrop'
    pw = pwd.getpwnam(system_user)

    def as_user():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    def run(folder, data=b''):
        return subprocess.run([str(postdrop), str(folder)], input=data, capture_output=True,
                              timeout=30, preexec_fn=as_user, env=user_env())
    # Not a maildrop folder by name, by mode or by group.
    assert run('/tmp').returncode == 64
    assert run('relative/maildrop').returncode == 64
    other = mail.inst.dir / 'elsewhere' / 'maildrop'  # reachable by the user
    other.mkdir(parents=True)
    os.chmod(other, 0o1777)
    assert run(other).returncode == 77
    assert list(other.iterdir()) == []
    # The real one, with input that is not a drop file.
    r = run(mail.maildrop, b'From: x\n\nnot a drop file\n')
    assert r.returncode == 65 and b'not a maildrop file' in r.stderr
    r = run(mail.maildrop, b'YUBIN-MAILDROP 1\nrcpt a@b\nsize 10\n\nshort')
    assert r.returncode == 65 and b'message truncated' in r.stderr
    assert mail.drop_files() == []
    # A good one lands, owned by the user, group of the drop folder.
    r = run(mail.maildrop, b'YUBIN-MAILDROP 1\nrcpt bob@example.org\nsize 3\n\nhi\n')
    assert r.returncode == 0, r.stderr
    name = r.stdout.decode().strip()
    assert mail.drop_files() == [name]
    st = os.stat(mail.maildrop / name)
    assert st.st_uid == pw.pw_uid and st.st_mode & 0o7777 == 0o644
    assert st.st_gid == os.stat(mail.maildrop).st_gid


def test_mailq_runs_yubinctl_as_mailq(mail, binary):
    # No master runs: yubinctl, called as mailq, says so in its own words.
    env = dict(os.environ, YUBINCTL=str(binary('ctl/yubinctl')))
    for args in (['-bp'], ['-bp', '-oi']):
        r = subprocess.run([str(mail.sendmail), '-C', str(mail.inst.conf), *args],
                           capture_output=True, text=True, timeout=30, env=env)
        assert r.returncode != 0
        assert r.stderr.startswith('mailq: '), r.stderr
