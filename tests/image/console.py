#!/usr/bin/env python3
"""Runs shell commands on a VM's serial console (QEMU `-chardev socket,...,server=on`).

Logs in as root (the image's console login has no password) and runs each command with
markers around its output, so the output and exit status can be told apart from the echo, the
prompt and kernel messages on the same console.

    console.py SOCKET 'command' ['command' ...]

Prints each command's output; exits with the first non-zero exit status (or 124 on a timeout).
TIMEOUT_S (default 300) bounds each command and the login.
"""
import os
import re
import secrets
import socket
import sys
import time

TIMEOUT = float(os.environ.get("TIMEOUT_S", "300"))


class Console:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(0.5)
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode())

    def read_until(self, pattern, timeout, poke=None):
        """Reads until `pattern` (a compiled bytes regex) matches; returns the match."""
        deadline = time.monotonic() + timeout
        last_poke = 0.0
        while True:
            m = pattern.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(pattern.pattern)
            if poke is not None and now - last_poke > 5:
                self.send(poke)
                last_poke = now
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise EOFError("console closed")
            self.buf += chunk

    def login(self):
        # A prompt from getty ("login:") or a shell already logged in ("# ").
        m = self.read_until(re.compile(rb"login: *$|# *$", re.M), TIMEOUT, poke="\n")
        if m.group(0).startswith(b"login"):
            self.send("root\n")
            self.read_until(re.compile(rb"# *$", re.M), TIMEOUT)
        # No echo, no kernel messages on this console, no pager, a quiet prompt.
        self.run("stty -echo; dmesg -n 1; export SYSTEMD_PAGER= PAGER=cat; PS1='# '")

    def run(self, command):
        tag = secrets.token_hex(4)
        # The markers are built by printf, so the echoed command line does not contain them.
        self.buf = b""
        self.send(
            f"printf '%s\\n' '@@B''{tag}'; ( {command} ) 2>&1; printf '%s=%s\\n' '@@E''{tag}' \"$?\"\n"
        )
        m = self.read_until(
            re.compile(rb"@@B" + tag.encode() + rb"\r?\n(.*?)@@E" + tag.encode() + rb"=(\d+)", re.S),
            TIMEOUT,
        )
        out = m.group(1).decode(errors="replace").replace("\r", "")
        return int(m.group(2)), out


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    con = Console(sys.argv[1])
    try:
        con.login()
        for command in sys.argv[2:]:
            rc, out = con.run(command)
            sys.stdout.write(out)
            sys.stdout.flush()
            if rc != 0:
                return rc
    except (TimeoutError, EOFError) as e:
        print(f"console.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 124
    return 0


if __name__ == "__main__":
    sys.exit(main())
