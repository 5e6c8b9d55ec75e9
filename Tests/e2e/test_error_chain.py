"""End to end: a failure's cause chain (layer by layer) on /ready, /api/health/detailed and in the
logs, for a tunnel whose server cannot be reached (a closed port on 127.0.0.1)."""

import json

import requests

from harness import TOKEN, free_port, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def detailed_status(agent):
    r = requests.get(f"http://127.0.0.1:{agent.port}/api/health/detailed", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_ready_and_detailed_status_show_each_layer_of_a_tunnel_that_cannot_connect(cp, hello, agents):
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    closed = free_port()
    cp.require_tunnel({"kubernetes-api": free_port()}, tunnel_server_addr=f"http://127.0.0.1:{closed}")

    def tunnel_check():
        r = agent.get("/ready")
        check = r.json()["checks"]["tunnel"]
        return (r, check) if check.get("error_chain") else None

    r, check = wait_for(tunnel_check, what="the tunnel check's error chain")
    refused = f"connect to 127.0.0.1:{closed}: ECONNREFUSED (Connection refused)"
    assert r.status_code == 503 and check["ok"] is False, check
    assert check["error_chain"] == [
        {"layer": "tunnel", "message": f"cannot reach the tunnel server ws://127.0.0.1:{closed}/"},
        {"layer": "connect", "message": refused},
    ], check
    assert check["detail"] == f"down: cannot reach the tunnel server ws://127.0.0.1:{closed}/: {refused}", check

    detailed = detailed_status(agent)
    assert detailed["tunnel"]["last_error_chain"] == check["error_chain"], detailed["tunnel"]
    assert detailed["tunnel"]["last_error"].endswith(refused), detailed["tunnel"]
    assert detailed["health"]["checks"]["tunnel"]["error_chain"] == check["error_chain"]
    # Checks that are fine carry no chain.
    assert "error_chain" not in detailed["health"]["checks"]["registered"]

    drops = [l for l in agent.logs() if l.get("msg") == "tunnel down; reconnecting"]
    assert drops and drops[0]["error"].endswith(refused), drops[:1]

    # The hub's tunnel_state event carries the chain too (replayed from the ring).
    with requests.get(f"http://127.0.0.1:{agent.port}/api/realtime/events", stream=True, timeout=10,
                      headers={**AUTH, "Last-Event-ID": "0"}) as events:
        event, found = None, None
        for line in events.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                event = line[len("event:"):].strip()
            elif line.startswith("data:") and event == "tunnel_state":
                data = json.loads(line[len("data:"):])
                if data.get("state") == "disconnected":
                    found = data
                    break
    assert found and found["error_chain"] == check["error_chain"], found


def test_registration_failure_shows_the_control_plane_layer_and_the_status_message(cp, hello, agents):
    cp.post("/_test/fail", {"endpoint": "register", "count": 1000, "status": 500, "body": {"message": "database is down"}})
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})

    def registered_check():
        r = agent.get("/ready")
        check = r.json()["checks"]["registered"]
        return check if check.get("error_chain") else None

    check = wait_for(registered_check, what="the registration check's error chain")
    assert check["error_chain"] == [{"layer": "control_plane", "message": "register: HTTP 500: database is down"}], check
    assert check["detail"] == "register: HTTP 500: database is down"
    registration = detailed_status(agent)["registration"]
    assert registration["error_chain"] == check["error_chain"], registration
