"""A real mail client over IMAP: mutt (Debian's mutt), driven through tmux
as a person would drive it, against mrad alone on loopback.

The session lists the folders, reads a message, flags it, moves another to
Archive and deletes a third; each step is checked where it must land — in
the Maildir's file names and folders, which only mrad writes — and the
folder list on mutt's screen. Issue #8's "real mail client flow"."""

import os
import shutil
import subprocess

import pytest

from conftest import wait_for
from imap_helper import imap  # noqa: F401 (imap: a fixture)
from mrad_helper import PASSWORD

pytestmark = pytest.mark.skipif(not (shutil.which('mutt') and shutil.which('tmux')),
                                reason='needs mutt and tmux')


def message(n):
    return (b'From: alice@example.net\nTo: bob@example.org\n'
            b'Date: Thu, 26 Nov 2026 10:0%d:00 +0000\n'
            b'Subject: mutt test %d\nMessage-ID: <mutt-%d@example.net>\n\n'
            b'body of message %d\n' % (n, n, n, n))


class Mutt:
    """mutt in a detached tmux session of its own tmux server."""

    def __init__(self, tmp, port):
        self.sock = str(tmp / 'tmux.sock')
        rc = tmp / 'muttrc'
        rc.write_text(
            f'set folder="imap://127.0.0.1:{port}/"\n'
            'set imap_user="bob@example.org"\n'
            f'set imap_pass="{PASSWORD}"\n'
            'set spoolfile="+INBOX"\n'
            'set ssl_starttls=no\nset ssl_force_tls=no\n'
            'unset header_cache\nunset message_cachedir\n'
            'set sort=date-sent\nunset resolve\nunset move\nunset mark_old\n'
            'set delete=yes\nset quit=yes\nunset confirmappend\nunset confirmcreate\n'
            'unset record\nset mail_check=1\nset timeout=1\nunset wait_key\n'
            'set imap_check_subscribed=no\n')
        os.chmod(rc, 0o600)
        env = {'HOME': str(tmp), 'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
               'TERM': 'xterm', 'LANG': 'C.UTF-8'}
        subprocess.run(['tmux', '-S', self.sock, '-f', '/dev/null', 'new-session', '-d',
                        '-x', '160', '-y', '40', f'mutt -n -F {rc}'],
                       check=True, env=env, timeout=20)

    def screen(self):
        r = subprocess.run(['tmux', '-S', self.sock, 'capture-pane', '-p'],
                           capture_output=True, text=True, timeout=20)
        return r.stdout

    def keys(self, *keys):
        subprocess.run(['tmux', '-S', self.sock, 'send-keys', *keys], check=True, timeout=20)

    def wait_screen(self, text, what):
        wait_for(lambda: text in self.screen(), 30, what + '; screen:\n' + self.screen())

    def close(self):
        subprocess.run(['tmux', '-S', self.sock, 'kill-server'], capture_output=True,
                       timeout=20)



def names(imap, folder=''):
    """{message number: flags} of the files in a Maildir folder ('' = INBOX)."""
    root = imap.maildir('bob') / folder if folder else imap.maildir('bob')
    out = {}
    for sub in ('new', 'cur'):
        d = root / sub
        for name in (os.listdir(d) if d.exists() else []):
            n = int((d / name).read_bytes().split(b'Subject: mutt test ')[1][:1])
            out[n] = name.split(':2,')[1] if ':2,' in name else ''
    return out


def test_mutt_lists_reads_flags_moves_and_deletes(imap, tmp_path):
    for n in (1, 2, 3):
        imap.add_maildir('bob', message(n))
    imap.start()
    # The special-use folders exist once bob has logged in once.
    c = imap.login('bob')
    c.logout()
    mutt = Mutt(tmp_path, imap.iport)
    try:
        mutt.wait_screen('mutt test 3', 'the index of INBOX')
        screen = mutt.screen()
        assert all(f'mutt test {n}' in screen for n in (1, 2, 3)), screen

        # Read message 1 (the pager shows its body), then flag it; the
        # sync stores \Seen and \Flagged: the file name says so.
        mutt.keys('1', 'Enter')
        mutt.keys('Enter')
        mutt.wait_screen('body of message 1', 'the pager')
        mutt.keys('q')
        mutt.wait_screen('mutt test 2', 'the index again')
        mutt.keys('F', '$')
        wait_for(lambda: names(imap).get(1) == 'FS', 30,
                 f'message 1 seen and flagged in its file name: {names(imap)}')

        # Move message 2 to Archive.
        mutt.keys('2', 'Enter', 's')
        mutt.wait_screen('Save to mailbox', 'the save prompt')
        mutt.keys('C-u', '=Archive', 'Enter')
        wait_for(lambda: 2 in names(imap, '.Archive'), 30,
                 'message 2 in Archive; screen:\n' + mutt.screen())
        mutt.keys('$')
        wait_for(lambda: sorted(names(imap)) == [1, 3], 30,
                 f'message 2 gone from INBOX: {names(imap)}; screen:\n' + mutt.screen())

        # Delete message 3 (now number 2) and purge it.
        mutt.wait_screen('mutt test 3', 'the index after the move')
        mutt.keys('2', 'Enter', 'd', '$')
        wait_for(lambda: sorted(names(imap)) == [1], 30,
                 f'message 3 deleted: {names(imap)}; screen:\n' + mutt.screen())
        assert names(imap) == {1: 'FS'}
        assert list(names(imap, '.Archive')) == [2]
        assert (imap.maildir('bob') / '.Archive' / 'cur').exists()

        # The folder list, through mutt's browser.
        mutt.keys('c', '?')
        mutt.wait_screen('Archive', 'the folder browser')
        screen = mutt.screen()
        for folder in ('INBOX', 'Archive', 'Drafts', 'Sent', 'Trash', 'Junk'):
            assert folder in screen, screen
    finally:
        mutt.close()
    # mrad is still up.
    assert imap.proc.poll() is None, imap.log()
