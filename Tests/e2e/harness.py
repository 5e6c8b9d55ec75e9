"""Harness for the agent's end-to-end tests: the real pipeops-agent binary against the
control-plane test double (Tests/Fixtures/controlplane, a stand-in for the hosted service and
its chisel server), with local services behind the forwards. Everything on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.path.join(ROOT, "Tests", "Fixtures", "controlplane", "server.py")
TOKEN = "test-token"
TUNNEL_USER = "pipeops"
TUNNEL_PASSWORD = "s3cret-pass"
SEED_FINGERPRINT = "r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ="


def agent_binary() -> str:
    b = os.environ.get("PIPEOPS_AGENT_BIN")
    if b:
        return b
    out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(out, "pipeops-agent")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def terminate(proc: subprocess.Popen) -> int:
    """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_for(pred: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Polls `pred` until it returns something truthy; fails with `what` after `timeout`."""
    end = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while time.monotonic() < end:
        try:
            v = pred()
            if v:
                return v
        except Exception as exc:  # the thing may not be up yet
            last_exc = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


class SwiftTunnelServer:
    """`pipeops-agent tunnel-server`, our own chisel-v3 server, on 127.0.0.1 with chisel's seed
    `testseed` (so SEED_FINGERPRINT) and the test user. What it bound is read from its log."""

    def __init__(self, tmp: str, extra: list[str] | None = None, name: str = "tunnel-server",
                 auth: bool = True, reverse: bool = True):
        """`auth`: add the test user with `--auth` (allowed everything); `reverse`: `--reverse`."""
        self.log_path = os.path.join(tmp, f"{name}.log")
        self.extra = (["--auth", f"{TUNNEL_USER}:{TUNNEL_PASSWORD}"] if auth else []) + (["--reverse"] if reverse else []) + (extra or [])
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        """Starts it (again, on the same port after a restart)."""
        self.lines: list[dict] = []
        self.lock = threading.Lock()
        args = [agent_binary(), "tunnel-server", "--host", "127.0.0.1", "--port", str(self.port), "--key", "testseed",
                "-v"] + self.extra
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        listening = self.wait_log(lambda l: l.get("msg", "").startswith("Listening on http"), what="tunnel server listening")
        self.port = int(listening["msg"].rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.fingerprint = next(l["msg"].split()[1] for l in self.logs() if l.get("msg", "").startswith("Fingerprint "))

    def _read(self) -> None:
        with open(self.log_path, "a") as log:
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"msg": line.rstrip("\n"), "level": "raw"}
                with self.lock:
                    self.lines.append(entry)

    def logs(self) -> list[dict]:
        with self.lock:
            return list(self.lines)

    def wait_log(self, pred: Callable[[dict], bool], timeout: float = 20, what: str = "log line") -> dict:
        return wait_for(lambda: next((l for l in self.logs() if pred(l)), None), timeout,
                        f"{what}; log: {self.log_path}")

    def ports(self) -> set[int]:
        """Reverse ports bound now: each session's `Listening` lines until its `Unbound proxies`."""
        bound: dict[str, set[int]] = {}
        for l in self.logs():
            msg, session = l.get("msg", ""), l.get("session")
            if msg.startswith("tun: proxy#") and msg.endswith(": Listening"):
                bound.setdefault(session, set()).add(int(l["port"]))
            elif msg == "tun: Unbound proxies":
                bound.pop(session, None)
        return set().union(*bound.values()) if bound else set()

    def stop(self) -> int:
        code = terminate(self.proc)
        self.reader.join(5)
        return code


class ControlPlane:
    def __init__(self, tmp: str, extra: list[str] | None = None, tunnel: Optional[SwiftTunnelServer] = None):
        """`tunnel`: hand out that server instead of the double's own chisel server."""
        self.log_path = os.path.join(tmp, "controlplane.log")
        self.log = open(self.log_path, "w")
        self.tunnel = tunnel
        handout = ["--external-tunnel-url", tunnel.url, "--external-tunnel-fingerprint", tunnel.fingerprint] if tunnel else []
        args = [sys.executable, SERVER, "--api-port", "0", "--tunnel-port", "0", "--key-seed", "testseed",
                "--tunnel-user", TUNNEL_USER, "--tunnel-password", TUNNEL_PASSWORD, "--token", TOKEN] + handout + (extra or [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("control plane did not start: " + open(self.log_path).read()[-2000:])
        self.info = json.loads(line)
        self.api_url = self.info["api_url"]
        self.tunnel_url = self.info["tunnel_url"]
        self.fingerprint = self.info["fingerprint"]

    def get(self, path: str, **params: Any) -> Any:
        r = requests.get(self.api_url + path, params=params, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None) -> Any:
        r = requests.post(self.api_url + path, json=body if body is not None else {}, timeout=30)
        r.raise_for_status()
        return r.json() if r.content else None

    def delete(self, path: str) -> None:
        requests.delete(self.api_url + path, timeout=30).raise_for_status()

    def requests_for(self, endpoint: str) -> list[dict]:
        return self.get("/_test/requests", endpoint=endpoint)

    def wait_requests(self, endpoint: str, count: int = 1, since: int = 0, timeout: float = 30) -> list[dict]:
        r = self.get("/_test/wait", endpoint=endpoint, count=count, since=since, timeout=timeout)
        assert r["matched"], f"expected {count} {endpoint} request(s) within {timeout}s"
        return r["requests"]

    def require_tunnel(self, forwards: dict[str, int], **extra: Any) -> None:
        body = {"status": "REQUIRED", "forwards": [{"name": n, "remote_port": p} for n, p in forwards.items()],
                "poll_frequency": 1}
        body.update(extra)
        self.post("/_test/tunnel-status", body)

    def ports(self) -> list[dict]:
        if self.tunnel:
            return [{"local_port": p} for p in sorted(self.tunnel.ports())]
        return self.get("/_test/tunnel/ports")

    @property
    def kind(self) -> str:
        return "swift" if self.tunnel else "python"

    def client_banners(self) -> list[str]:
        """The SSH banner of each tunnel client that authenticated."""
        if self.tunnel:
            return [l["client_banner"] for l in self.tunnel.logs() if l.get("msg") == "authenticated"]
        return [s["client_banner"] for s in self.get("/_test/tunnel/sessions")]

    def stop_tunnel(self) -> None:
        if self.tunnel:
            self.tunnel.stop()
        else:
            self.post("/_test/tunnel/stop")

    def start_tunnel(self) -> None:
        if self.tunnel:
            self.tunnel.start()
        else:
            self.post("/_test/tunnel/start")

    def wait_ports(self, wanted: set[int], timeout: float = 30) -> list[dict]:
        found = wait_for(lambda: (lambda p: [p] if {x["local_port"] for x in p} == wanted else None)(self.ports()),
                         timeout, f"reverse ports {sorted(wanted)}")
        return found[0]

    def violations(self) -> list:
        return self.get("/_test/violations")

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


class Agent:
    def __init__(self, tmp: str, api_url: str, forwards: dict[str, str | dict], port: int | None = None,
                 extra_yaml: str = "", env: dict[str, str] | None = None, name: str = "agent",
                 tunnel_yaml: str = "", token: str | None = TOKEN, tunnel_enabled: bool = True,
                 cluster_name: str = "e2e-cluster", log_level: str = "debug"):
        """`forwards`: name -> local_addr, or name -> {key: value} for more keys (remote_port...).
        `tunnel_yaml`: more keys under `tunnel:`, indented by two spaces. `token=None` leaves it out.
        Names are written as YAML double-quoted strings: no `"` or `\\` in them."""
        self.port = port or free_port()
        self.tmp = tmp
        self.state_path = os.path.join(tmp, f"{name}-state.json")
        self.config_path = os.path.join(tmp, f"{name}.yaml")
        def forward(name: str, spec: str | dict) -> str:
            keys = spec if isinstance(spec, dict) else {"local_addr": spec}
            return f"    - name: \"{name}\"\n" + "".join(
                f"      {k}: {v if isinstance(v, int) else chr(34) + str(v) + chr(34)}\n" for k, v in keys.items())
        fw = "".join(forward(n, a) for n, a in forwards.items())
        token_line = f'  token: "{token}"\n' if token is not None else ""
        with open(self.config_path, "w") as f:
            f.write(f"""agent:
  cluster_name: "{cluster_name}"
  port: {self.port}
  heartbeat_interval: 1s
  labels:
    environment: "test"
pipeops:
  api_url: "{api_url}"
{token_line}  timeouts:
    connect: 3s
    register: 5s
    heartbeat: 3s
    poll: 3s
tunnel:
  enabled: {"true" if tunnel_enabled else "false"}
  poll_interval: 1s
{tunnel_yaml}  forwards:
{fw}state:
  path: "{self.state_path}"
{extra_yaml}""")
        self.env = env or {}
        self.log_level = log_level
        self._spawn()

    def _spawn(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()
        e = dict(os.environ)
        for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy"):
            e.pop(k, None)
        # The agent finds a cluster on its own (~/.kube/config, $KUBECONFIG, a service account):
        # tests never let it find the machine's; those that want one configure it.
        for k in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            e.pop(k, None)
        e["HOME"] = self.tmp
        e.update(self.env)
        self.proc = subprocess.Popen([agent_binary(), "--config", self.config_path, "--log-format", "json",
                                      "--log-level", self.log_level], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True, env=e)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @classmethod
    def again(cls, old: "Agent") -> "Agent":
        a = cls.__new__(cls)
        a.port, a.tmp, a.state_path, a.config_path = old.port, old.tmp, old.state_path, old.config_path
        a.env, a.log_level = old.env, old.log_level
        a._spawn()
        return a

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def logs(self) -> list[dict]:
        with self.lock:
            out = []
            for l in self.lines:
                try:
                    out.append(json.loads(l))
                except ValueError:
                    out.append({"msg": l, "level": "raw"})
            return out

    def log_text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)

    def wait_log(self, pred: Callable[[dict], bool], timeout: float = 30, what: str = "log line") -> dict:
        return wait_for(lambda: next((l for l in self.logs() if pred(l)), None), timeout,
                        f"{what}; last log lines:\n" + "\n".join(self.lines[-15:]))

    def get(self, path: str, port: int | None = None) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{port or self.port}{path}", timeout=10)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        code = terminate(self.proc)
        self.reader.join(5)
        return code


KUBE_SERVER = os.path.join(ROOT, "Tests", "Fixtures", "kubernetes", "apiserver.py")
MAKE_PKI = os.path.join(ROOT, "Tests", "Fixtures", "tls", "make-pki.sh")
KUBE_TOKEN = "test-k8s-token"


class KubeAPIServer:
    """The Kubernetes API test server (Tests/Fixtures/kubernetes/apiserver.py) over HTTPS with a
    throwaway PKI (make-pki.sh: ca.pem, server.pem for localhost and 127.0.0.1, other-ca.pem)."""

    def __init__(self, tmp: str, nodes: int = 2, pods: int = 4, extra: list[str] | None = None):
        self.pki = os.path.join(tmp, "k8s-pki")
        subprocess.run(["sh", MAKE_PKI, self.pki], check=True, capture_output=True)
        self.ca = os.path.join(self.pki, "ca.pem")
        self.other_ca = os.path.join(self.pki, "other-ca.pem")
        self.log = open(os.path.join(tmp, "apiserver.log"), "w")
        self.proc = subprocess.Popen([sys.executable, KUBE_SERVER, "--cert", os.path.join(self.pki, "server.pem"),
                                      "--key", os.path.join(self.pki, "server.key"), "--token", KUBE_TOKEN,
                                      "--seed-nodes", str(nodes), "--seed-pods", str(pods)] + (extra or []),
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.port = info["port"]
        self.url = info["url"]
        self.tmp = tmp

    def kubeconfig(self, name: str = "kubeconfig", server: str | None = None, ca: str | None = None,
                   token: str = KUBE_TOKEN) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: {server or self.url}
    certificate-authority: {ca or self.ca}
contexts:
- name: test
  context: {{cluster: test, user: test}}
users:
- name: test
  user:
    token: {token}
""")
        return path

    def kubectl(self, *args: str, server: str | None = None, extra: list[str] | None = None,
                timeout: float = 30) -> str:
        cmd = ["kubectl", "--server", server or self.url, "--certificate-authority", self.ca, "--token", KUBE_TOKEN]
        out = subprocess.run(cmd + (extra or []) + list(args), capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
        return out.stdout

    def control(self, action: str, body: dict | None = None) -> Any:
        r = requests.post(f"{self.url}/_test/{action}", json=body or {}, verify=self.ca, timeout=10)
        r.raise_for_status()
        return r.json()

    def control_get(self, action: str) -> Any:
        r = requests.get(f"{self.url}/_test/{action}", verify=self.ca, timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


def up_tunnel(cp: ControlPlane, agent: Agent, forwards: dict[str, int]) -> None:
    """Asks for the tunnel with `forwards` {name: remote_port} and waits until it is bound."""
    cp.require_tunnel(forwards)
    cp.wait_ports(set(forwards.values()))
    agent.wait_log(lambda l: l.get("msg") == "tunnel connected", what="tunnel connected")


class Browser:
    """Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by selenium. The
    driver is the packaged /usr/bin/chromedriver: naming it skips Selenium Manager, so nothing
    is ever downloaded. Console messages are kept for `console_errors`."""

    DRIVER = "/usr/bin/chromedriver"
    CHROMIUM = "/usr/bin/chromium"

    def __init__(self, width: int = 1440, height: int = 1000):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = self.CHROMIUM
        # Tests talk to loopback only: no proxy, no background services, and every host name but
        # 127.0.0.1 fails to resolve.
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},{height}",
                    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                    "--disable-extensions", "--disable-component-update", "--disable-sync", "--disable-domain-reliability",
                    "--disable-client-side-phishing-detection", "--no-pings", "--no-proxy-server",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=self.DRIVER), options=options)
        self.driver.set_page_load_timeout(30)
        self.driver.set_script_timeout(30)
        self.console: list[dict] = []

    def open(self, url: str) -> None:
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self, element_id: str) -> str:
        """The element's textContent (what the page put there, visible or not)."""
        return self.js("const e = document.getElementById(arguments[0]); return e ? e.textContent : null;", element_id)

    def wait_text(self, element_id: str, pred: Callable[[str], bool], timeout: float = 30, what: str = "") -> str:
        return wait_for(lambda: (lambda t: t if t is not None and pred(t) else None)(self.text(element_id)), timeout,
                        what or f"#{element_id} to match (now {self.text(element_id)!r})")

    def read_console(self) -> list[dict]:
        """Every console entry so far (the driver hands each out once, so they are kept here)."""
        self.console.extend(self.driver.get_log("browser"))
        return self.console

    def console_errors(self) -> list[dict]:
        return [e for e in self.read_console() if e.get("level") == "SEVERE"]

    def screenshot(self, path: str) -> str:
        """The whole page: the window grows to the document's height first."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        width = self.driver.get_window_size()["width"]
        height = self.js("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, min(int(height) + 140, 4000))
        self.driver.save_screenshot(path)
        return path

    def quit(self) -> None:
        self.driver.quit()


class HelloServer:
    """A small HTTP service standing in for the Kubernetes API behind the tunnel."""

    def __init__(self, text: str = "hello from behind the tunnel", host: str = "127.0.0.1", port: int = 0):
        body = text.encode()

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, port), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class EchoServer:
    """Echoes every byte, one thread per connection."""

    def __init__(self) -> None:
        class H(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while True:
                    data = self.request.recv(256 * 1024)
                    if not data:
                        return
                    self.request.sendall(data)

        class S(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 512

        self.server = S(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Prometheus:
    """A real Prometheus server (Debian's `prometheus`) scraping `targets` (host:port on
    127.0.0.1) every second, with its query API on 127.0.0.1."""

    def __init__(self, tmp: str, targets: list[str], metrics_path: str = "/metrics"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pipeops-agent
    metrics_path: "{metrics_path}"
    static_configs:
      - targets: {json.dumps(targets)}
""")
        self.log_path = os.path.join(tmp, "prometheus.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={os.path.join(tmp, 'prometheus-data')}",
                                      f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: requests.get(self.url + "/-/ready", timeout=2).status_code == 200, 60,
                 "Prometheus ready; its log:\n" + open(self.log_path).read()[-2000:])

    def query(self, expr: str) -> list[dict]:
        r = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> Optional[float]:
        """The value of an expression with one result, None while it has none."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, pred: Callable[[float], bool], timeout: float = 30) -> float:
        """Waits until a scrape gives `expr` a value that satisfies `pred`; returns it."""
        seen: list = []

        def check() -> Optional[float]:
            v = self.value(expr)
            seen.append(v)
            return v if v is not None and pred(v) else None
        wait_for(lambda: check() is not None, timeout, f"{expr} (values seen: {seen[-5:]})")
        return seen[-1]

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


def pattern(n: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048   # 64 KiB
    reps = n // len(block) + 1
    return (block * reps)[:n]


def echo_roundtrip(port: int, data: bytes, timeout: float = 120) -> bytes:
    """Sends `data` through the echo at `port` while reading, returns what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = bytearray()

    def reader() -> None:
        while len(got) < len(data):
            chunk = s.recv(1 << 20)
            if not chunk:
                return
            got.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    view = memoryview(data)
    for i in range(0, len(data), 256 * 1024):
        s.sendall(view[i:i + 256 * 1024])
    t.join(timeout)
    s.close()
    return bytes(got)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
