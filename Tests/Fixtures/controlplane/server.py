#!/usr/bin/env python3
"""Test double for the hosted PipeOps control plane and its chisel-v3 tunnel server.

NOT the real service: a single asyncio process used by the Swift agent's end-to-end tests and by
`make run`. It follows two documents of this repository:

* docs/control-plane-api.md: register, heartbeat and tunnel-status calls, headers, bodies and
  reactions. Requests are recorded and every deviation from the contract becomes a "violation"
  that tests can read (GET /_test/violations) and assert empty.
* docs/chisel-v3-protocol.md, sections 1-8 and 15: the wire behaviour of an unmodified chisel
  server (v1.11.5) for reverse remotes: WebSocket upgrade with `chisel-v3`, SSH banner
  `SSH-chisel-v3-server`, ECDSA P-256 host key (from --key-seed as chisel's --key, or random),
  password auth, raw `config` / `ping` global requests, `chisel` channels, no half-close.

Usage:
  python3 server.py --api-port P --tunnel-port T [--host 127.0.0.1] [--state-file F]
                    [--tunnel-user U --tunnel-password W] [--key-seed S] [--keepalive 25]
                    [--token T ...] [--base-path /prefix] [--initial-status REQUIRED]
                    [--forward name=remote_port ...]
                    [--external-tunnel-url URL --external-tunnel-fingerprint FP]

Port 0 picks a free port. When ready it prints one JSON line on stdout:
  {"api_url": "...", "tunnel_url": "...", "fingerprint": "<44 chars>", ...}
Logs go to stderr with timestamps. The `/_test/...` scripting API is on the API port
(see README.md in this folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from aiohttp import web  # noqa: E402

from api import ControlPlane  # noqa: E402
from control import Control  # noqa: E402
from tunnel import TunnelSettings  # noqa: E402
from tunnel_server import TunnelServer  # noqa: E402

log = logging.getLogger("server")

MAX_REQUEST_BODY = 1 << 20


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--tunnel-port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--state-file")
    p.add_argument("--tunnel-user")
    p.add_argument("--tunnel-password")
    p.add_argument("--key-seed", help="derive the host key like chisel --key <seed>")
    p.add_argument("--keepalive", type=float, default=25.0,
                   help="seconds between the server's own pings (0 = off)")
    p.add_argument("--token", action="append",
                   help="accepted bearer token (repeatable; default 'test-token')")
    p.add_argument("--base-path", default="", help="serve the API under this path prefix")
    p.add_argument("--initial-status", default="IDLE",
                   help="tunnel status returned until a test sets one")
    p.add_argument("--forward", action="append", default=[],
                   help="name=remote_port allocation for the initial tunnel status")
    p.add_argument("--external-tunnel-url",
                   help="hand out this chisel server (e.g. `pipeops-agent tunnel-server`) instead of ours; "
                        "its users must include --tunnel-user/--tunnel-password")
    p.add_argument("--external-tunnel-fingerprint", default="",
                   help="that server's fingerprint, handed out with it")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if (args.tunnel_user is None) != (args.tunnel_password is None):
        p.error("--tunnel-user and --tunnel-password go together")
    return args


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    # One broken session must never take the process down: log and carry on.
    log.error("unhandled: %s", context.get("message"), exc_info=context.get("exception"))


async def main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(loop_exception_handler)

    settings = TunnelSettings(args.host, args.tunnel_user, args.tunnel_password, args.keepalive,
                              args.key_seed)
    cp_holder: list[ControlPlane] = []

    def on_violation(v: dict) -> None:
        if cp_holder:
            cp_holder[0].add_violation(None, v["field"], f"session {v['session']}: {v['message']}",
                                       source="tunnel")

    tunnel = TunnelServer(settings, args.tunnel_port, on_violation)
    await tunnel.start()

    cp = ControlPlane(tunnel, args.token or ["test-token"], args.state_file, args.base_path)
    cp_holder.append(cp)
    if args.external_tunnel_url:
        cp.external_tunnel = (args.external_tunnel_url, args.external_tunnel_fingerprint)
    if "*" not in cp.tunnel_status_cfg or not cp.tunnel_status_cfg["*"]:
        initial: dict = {"status": args.initial_status}
        forwards = []
        for spec in args.forward:
            name, _, port = spec.partition("=")
            if not name or not port.isdigit():
                raise SystemExit(f"--forward wants name=remote_port, got {spec!r}")
            forwards.append({"name": name, "remote_port": int(port)})
        if forwards:
            initial["forwards"] = forwards
        cp.tunnel_status_cfg["*"] = initial
    cp.save_state()

    app = web.Application(client_max_size=MAX_REQUEST_BODY)
    info: dict = {}
    app["info"] = info
    Control(cp, tunnel).add_routes(app)
    cp.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", cp.catch_all)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.api_port, reuse_address=True)
    await site.start()
    api_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api_url = f"http://{args.host}:{api_port}{cp.base_path}"
    info["api_url"] = api_url

    ready = {"api_url": api_url, "tunnel_url": cp.tunnel_url(), "fingerprint": cp.tunnel_fingerprint(),
             "api_port": api_port, "tunnel_port": tunnel.port,
             "control_url": f"http://{args.host}:{api_port}/_test", "pid": os.getpid()}
    print(json.dumps(ready), flush=True)
    log.info("ready: %s", ready)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await tunnel.stop()
    await runner.cleanup()
    return 0


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    setup_logging(arguments.log_level)
    sys.exit(asyncio.run(main(arguments)))
