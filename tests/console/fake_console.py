"""A stand-in for ``virsh console``: a relay program whose stdin/stdout is a login terminal.

Run by the console transport's ``command:`` form in tests. It forks a pty (as a
real serial line is a terminal on the host) running a getty-like loop: ``login:``,
``Password:`` (no echo), then an interactive ``bash`` with a prompt, and the login
prompt again after it exits. The relay copies bytes both ways, raw. With
``FAKE_KMSG=1`` it prints a kernel-style message into the middle of the host's
output every few reads, as a kernel's printk lands in the middle of a serial line.

Environment: FAKE_USER, FAKE_PASSWORD (required), FAKE_KMSG, FAKE_HALF_LOGIN=1 (start
at a ``Password:`` prompt for another user, as a login someone left half done).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import termios
import time


def read_password() -> str:
    """``Password: `` with echo off, as login does (no flush of what was typed already)."""
    attrs = termios.tcgetattr(0)
    quiet = attrs[:]
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(0, termios.TCSANOW, quiet)
    try:
        sys.stdout.write("Password: ")
        sys.stdout.flush()
        return sys.stdin.readline().strip()
    finally:
        termios.tcsetattr(0, termios.TCSANOW, attrs)
        sys.stdout.write("\r\n")


def login_loop() -> None:
    user, password = os.environ["FAKE_USER"], os.environ["FAKE_PASSWORD"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "TERM": "vt100"}
    env["PS1"] = "\\[\\e[1;32m\\]\\u@fake:\\w\\$ \\[\\e[0m\\]"  # a coloured prompt
    stale = os.environ.get("FAKE_HALF_LOGIN") == "1"  # someone typed a name and left
    while True:
        if stale:
            name, stale = "someone", False
        else:
            sys.stdout.write("\r\nDebian GNU/Linux 12 fake ttyS0\r\n\r\nfake login: ")
            sys.stdout.flush()
            name = sys.stdin.readline().strip()
            if not name:  # as agetty: an empty line asks again
                continue
        given = read_password()
        if name == user and given == password:
            subprocess.call(["bash", "--norc", "--noprofile", "-i"], env=env)
        else:
            time.sleep(0.3)
            sys.stdout.write("\r\nLogin incorrect\r\n")


def relay(fd: int, kmsg: bool) -> None:
    reads = 0
    while True:
        ready, _, _ = select.select([0, fd], [], [])
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                return
            os.write(fd, data)
        if fd in ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            reads += 1
            if kmsg and reads % 7 == 0 and len(data) > 10:
                half = len(data) // 2
                line = f"[ {time.monotonic():11.6f}] fake: link is down: e1000e\r\n".encode()
                data = data[:half] + line + data[half:]
            os.write(1, data)


def main() -> None:
    pid, fd = pty.fork()
    if pid == 0:
        login_loop()
        os._exit(0)
    try:
        relay(fd, os.environ.get("FAKE_KMSG") == "1")
    finally:
        os.kill(pid, 9)


if __name__ == "__main__":
    main()
