"""A throwaway OpenSSH sshd on 127.0.0.1 for the agent's SSH tunnel mode (real peer)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
USER = "sshtest"
PASSWORD = "sshtest-password"


class SSHD:
    def __init__(self, tmp: str, port: int, extra: str = ""):
        self.dir = os.path.join(tmp, f"sshd-{port}")
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        subprocess.run(["sh", os.path.join(ROOT, "Tests", "Fixtures", "ssh", "make-test-user.sh"), USER, PASSWORD], check=True)
        self.key = os.path.join(self.dir, "host_ed25519")
        if not os.path.exists(self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True)
        out = subprocess.run(["ssh-keygen", "-lf", self.key + ".pub"], capture_output=True, text=True, check=True).stdout
        self.fingerprint = out.split()[1]            # SHA256:...
        self.port = port
        self.config = os.path.join(self.dir, "sshd_config")
        with open(os.path.join(ROOT, "Tests", "Fixtures", "ssh", "sshd_config.template")) as f:
            text = f.read()
        text = (text.replace("@PORT@", str(port)).replace("@PIDFILE@", f"{self.dir}/sshd.pid")
                .replace("@AUTHKEYS@", f"{self.dir}/authorized_keys"))
        with open(self.config, "w") as f:
            f.write(text + f"HostKey {self.key}\n{extra}\n")
        self.log = os.path.join(self.dir, "sshd.log")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", self.config, "-E", self.log])
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sshd did not start: " + open(self.log).read()[-2000:])

    def stop(self) -> None:
        """Stops the listener and every session it forked, as a crash or a reboot of the server would."""
        # Sessions first: once the listener is gone they are reparented and harder to find.
        subprocess.run(["pkill", "-TERM", "-P", str(self.proc.pid)], check=False)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
