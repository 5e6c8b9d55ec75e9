"""The dashboard (`/dashboard`): the page the agent serves, watched in headless Chromium while the
real tunnel (through the control-plane test double) comes up and carries a connection; its
security headers; and agent-supplied names that look like HTML staying text."""

import base64
import hashlib
import json
import os
import re

import requests

from harness import ROOT, TOKEN, free_port, up_tunnel, wait_for
from test_kubernetes import kube_yaml

OUTPUT = os.path.join(ROOT, "Tests", "e2e", "output")
# A payload that would set a global if it ever ran, in two places the agent reports.
XSS = "<img src=x onerror=window.__pwned=1>"
XSS_FORWARD = "fwd " + XSS


def dashboard_url(agent, token=TOKEN):
    return f"http://127.0.0.1:{agent.port}/dashboard" + (f"?token={token}" if token else "")


def inline(page: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.S)


def csp_directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_dashboard_headers_allow_no_foreign_origin_and_only_the_pages_own_script_and_style(cp, agents):
    agent = agents(cp.api_url, {"agent-http": "127.0.0.1:9"})
    wait_for(lambda: agent.get("/health").status_code == 200, what="agent up")
    r = requests.get(dashboard_url(agent, None), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"
    csp = r.headers["Content-Security-Policy"]
    assert "unsafe-" not in csp and "*" not in csp and "http:" not in csp and "https:" not in csp
    d = csp_directives(csp)
    assert d["default-src"] == ["'none'"]
    assert d["connect-src"] == ["'self'"]
    assert d["img-src"] == ["'self'", "data:"]
    assert d["frame-ancestors"] == ["'none'"] and d["base-uri"] == ["'none'"] and d["form-action"] == ["'none'"]
    # Exactly the inline script and style the page carries, by hash (computed here independently).
    page = r.text
    scripts, styles = inline(page, "script"), inline(page, "style")
    assert len(scripts) == 1 and len(styles) == 1
    assert d["script-src"] == [sha256_source(scripts[0])]
    assert d["style-src"] == [sha256_source(styles[0])]
    # No inline handler or style attribute for the policy to have to allow, no HTML sink in the
    # script, and nothing fetched from anywhere (the favicon is a data: URL).
    assert not re.search(r"\son[a-z]+\s*=", page.replace(scripts[0], ""), re.I)
    assert not re.search(r"\sstyle\s*=", page, re.I)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in scripts[0], sink
    assert re.search(r'<link rel="icon" href="data:', page)
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)', page)


def test_dashboard_is_not_served_when_disabled(cp, agents):
    agent = agents(cp.api_url, {"agent-http": "127.0.0.1:9"}, extra_yaml="server:\n  enable_dashboard: false\n")
    wait_for(lambda: agent.get("/health").status_code == 200, what="agent up")
    r = requests.get(dashboard_url(agent), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 404 and r.json()["status"] == 404


def test_dashboard_follows_the_tunnel_live_and_shows_agent_names_as_text(cp, hello, agents, browser):
    port = free_port()   # the agent's HTTP port, also the target of its agent-http forward
    agent = agents(cp.api_url, {"agent-http": f"127.0.0.1:{port}", XSS_FORWARD: f"127.0.0.1:{hello.port}"},
                   port=port, cluster_name=XSS)
    wait_for(lambda: agent.get("/health").status_code == 200, what="agent up")
    browser.open(dashboard_url(agent))
    browser.wait_text("conn", lambda t: t == "live", what="the page's WebSocket to go live")
    # The token was for the first request only: the page drops it from the address bar.
    assert "token=" not in browser.js("return location.href")
    browser.wait_text("cluster-name", lambda t: t == XSS)
    assert browser.text("tunnel-state") != "connected"
    uptime = browser.wait_text("uptime", lambda t: t[:1].isdigit())

    http_remote, xss_remote = free_port(), free_port()
    up_tunnel(cp, agent, {"agent-http": http_remote, XSS_FORWARD: xss_remote})
    browser.wait_text("tunnel-state", lambda t: t == "connected", what="the tunnel to show as connected")

    # One connection through the agent-http forward: the agent reaches itself through the tunnel.
    assert requests.get(f"http://127.0.0.1:{http_remote}/health", timeout=10).status_code == 200
    opened = wait_for(lambda: browser.js(
        "return [...document.querySelectorAll('#timeline li')].filter(li => li.dataset.event === 'forward_opened')"
        ".map(li => li.textContent)"), what="a forward_opened event in the timeline")
    assert any("agent-http" in t and str(http_remote) in t for t in opened), opened
    rows = wait_for(lambda: (lambda r: r if any(str(http_remote) in x for x in r) and any(str(xss_remote) in x for x in r)
                             else None)(browser.js("return [...document.querySelectorAll('#forward-rows tr')]"
                                                   ".map(tr => tr.textContent)")),
                    what="both forwards with their remote ports")
    assert any(t.startswith("agent-http") for t in rows), rows

    # Uptime ticks, and the charts gain samples from the metrics pushes (every 5 s).
    browser.wait_text("uptime", lambda t: t != uptime, what="uptime to move")
    points = lambda: int(browser.js("return document.getElementById('rss-chart').dataset.points || '0'"))
    first = wait_for(lambda: points() or None, what="a memory sample")
    wait_for(lambda: points() > first, timeout=30, what="the memory chart to gain a sample")
    wait_for(lambda: int(browser.js("return document.getElementById('cpu-chart').dataset.points || '0'")) >= 1,
             timeout=30, what="a CPU sample (from two readings)")

    # Agent-supplied names are text: no <img> was made, nothing ran.
    assert browser.text("cluster-name") == XSS
    assert XSS_FORWARD in browser.js("return [...document.querySelectorAll('#forward-rows td.fname')].map(td => td.textContent)")
    assert browser.js("return document.getElementsByTagName('img').length") == 0
    assert browser.js("return typeof window.__pwned") == "undefined"
    assert "no Kubernetes data yet" in browser.text("cluster")
    assert browser.js("return document.querySelectorAll('#features .chip').length") > 0
    assert browser.text("health-status") in ("ready", "not ready")

    assert browser.console_errors() == []
    shot = browser.screenshot(os.path.join(OUTPUT, "dashboard.png"))
    assert os.path.getsize(shot) > 10_000


def test_dashboard_shows_offline_and_reconnects_when_the_agent_comes_back(cp, agents, browser):
    agent = agents(cp.api_url, {"agent-http": "127.0.0.1:9"})
    wait_for(lambda: agent.get("/health").status_code == 200, what="agent up")
    browser.open(dashboard_url(agent))
    browser.wait_text("conn", lambda t: t == "live")
    assert browser.console_errors() == []
    assert agent.stop() == 0
    browser.wait_text("conn", lambda t: t.startswith("offline"), what="the page to say it is offline")
    assert "offline" in browser.js("return document.body.className")
    # The same agent again on the same port: the page comes back by itself (the cookie the token
    # set is still valid) and reads the new agent's status.
    again = agents.restart(agent)
    wait_for(lambda: again.get("/health").status_code == 200, what="agent up again")
    browser.wait_text("conn", lambda t: t == "live", timeout=40, what="the page to reconnect")
    assert "offline" not in browser.js("return document.body.className")
    # While the agent was away the browser logs its failed connection attempts; nothing else.
    others = [e for e in browser.console_errors() if "WebSocket connection to" not in e.get("message", "")]
    assert others == []


def test_dashboard_cluster_panel_shows_nodes_and_pods_once_kubernetes_data_exists(cp, kube, agents, browser):
    items = json.loads(kube.kubectl("get", "nodes,pods", "-A", "-o", "json"))["items"]
    nodes = sum(1 for i in items if i["kind"] == "Node")
    phases = {}
    for i in items:
        if i["kind"] == "Pod":
            phases[i["status"]["phase"]] = phases.get(i["status"]["phase"], 0) + 1
    agent = agents(cp.api_url, {"agent-http": "127.0.0.1:9"}, extra_yaml=kube_yaml(kube.kubeconfig()))
    wait_for(lambda: agent.get("/health").status_code == 200, what="agent up")
    browser.open(dashboard_url(agent))
    browser.wait_text("conn", lambda t: t == "live")
    browser.wait_text("k8s-state", lambda t: t == "reachable", what="the cluster panel to fill in")
    rows = browser.js("const d = {}; document.querySelectorAll('#cluster dl dt').forEach(dt => "
                      "d[dt.textContent] = dt.nextElementSibling.textContent); return d;")
    assert rows["nodes"] == str(nodes) and rows["pods"] == str(sum(phases.values())), rows
    bars = browser.js("const b = [...document.querySelectorAll('#cluster .bars > *')].map(e => e.textContent);"
                      "const out = {}; for (let i = 0; i + 2 < b.length + 1; i += 3) out[b[i]] = b[i + 2]; return out;")
    # Every phase the agent reports, the empty ones as 0.
    assert {p: n for p, n in bars.items() if n != "0"} == {phase: str(n) for phase, n in phases.items()}, bars
    assert "no Kubernetes data yet" not in browser.text("cluster")
    assert browser.console_errors() == []
