"""meson install --destdir: every program, page and the sample config land
in their FHS places, and the installed programs run."""
import os
import subprocess
from pathlib import Path


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
    # Nothing test-only is installed.
    assert not any('testd' in f or 'mkcert' in f or f.endswith('_test') for f in files)
    ctl = dest / prefix / 'sbin/yubinctl'
    r = subprocess.run([str(ctl), '--version'], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and 'yubin' in r.stdout.lower(), r.stdout + r.stderr
    mtad = next(dest.rglob('yubin/mtad'))
    r = subprocess.run([str(mtad), '--version'], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith('mtad (yubin) '), r.stdout
