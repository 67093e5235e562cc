"""Drives a command through a real pseudo-terminal (for `ssh` shell tests).

argv[1] is JSON: {"cmd": "...", "rows": 24, "cols": 80, "steps": [{"send": "..."}, {"expect": "regex"},
{"resize": [rows, cols]}]}. Prints JSON: {"ok": bool, "out": transcript, "status": exit status, "failed": step}.
"""
import fcntl, json, os, pty, re, select, signal, struct, sys, termios, time

args = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', args.get('rows', 24), args.get('cols', 80), 0, 0))
    os.execvp('/bin/sh', ['/bin/sh', '-c', args['cmd']])

buf = b''
pos = 0
def read_more(timeout):
    global buf
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return False
    try:
        d = os.read(fd, 65536)
    except OSError:
        return None
    if not d:
        return None
    buf += d
    return True

def expect(pat, timeout):
    global pos
    end = time.time() + timeout
    rx = re.compile(pat.encode(), re.S)
    while True:
        m = rx.search(buf, pos)
        if m:
            pos = m.end()
            return True
        left = end - time.time()
        if left <= 0:
            return False
        if read_more(left) is None:
            m = rx.search(buf, pos)
            return bool(m)

def finish(ok, failed=None):
    status = None
    deadline = time.time() + 60
    while time.time() < deadline:
        if read_more(0.2) is None:
            break
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
    if status is None:
        try:
            _, st = os.waitpid(pid, 0) if ok else (os.kill(pid, 9), os.waitpid(pid, 0))[1]
            status = os.waitstatus_to_exitcode(st)
        except ChildProcessError:
            pass
    sys.stdout.write(json.dumps({'ok': ok, 'out': buf.decode('utf8', 'replace'), 'status': status, 'failed': failed}))
    sys.exit(0)

for st in args['steps']:
    if 'resize' in st:
        rows, cols = st['resize']
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
        os.kill(pid, signal.SIGWINCH)
    if 'send' in st:
        os.write(fd, st['send'].encode())
    if 'expect' in st:
        if not expect(st['expect'], st.get('timeout', 90)):
            finish(False, st)
finish(True)
