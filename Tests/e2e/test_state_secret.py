"""End to end: `state.backend: secret` against the Kubernetes API test server
(Tests/Fixtures/kubernetes). The agent's state lives in the Secret `pipeops-agent-state` of
`kubernetes.namespace` (pipeops-system) and survives a new pod; writes use resourceVersion and
survive a concurrent writer; one agent per cluster holds the Lease `pipeops-agent`, a second
stands by and takes over when the first dies. "In a pod" is a kubeconfig plus
PIPEOPS_STATE_BACKEND=secret and the downward API's POD_NAME; the Secret and the Lease are read
back with kubectl, a client we did not write."""

from __future__ import annotations

import base64
import datetime
import json
import os

from harness import wait_for

NAMESPACE = "pipeops-system"
LEASE_SECONDS = 15
RETRY_SECONDS = 2


def pod_agent(agents, cp, kube, pod: str):
    """An agent as pod `pod` would run it: its state in the Secret, its own file untouched."""
    yaml = f'kubernetes:\n  kubeconfig: "{kube.kubeconfig()}"\n  namespace: "{NAMESPACE}"\n'
    return agents(cp.api_url, {"agent-http": "127.0.0.1:1"}, extra_yaml=yaml, name=pod,
                  env={"POD_NAME": pod, "PIPEOPS_STATE_BACKEND": "secret"})


def kubectl_json(kube, *args: str) -> dict:
    return json.loads(kube.kubectl("get", *args, "-n", NAMESPACE, "-o", "json"))


def secret_state(kube) -> dict[str, str]:
    data = kubectl_json(kube, "secret", "pipeops-agent-state").get("data", {})
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def lease_spec(kube) -> dict:
    return kubectl_json(kube, "lease", "pipeops-agent")["spec"]


def checks(agent) -> dict:
    return agent.get("/ready").json()["checks"]


def registered_cluster(agent) -> str:
    """The cluster ID once the agent is registered (its /ready check says `cluster <id>`)."""
    check = wait_for(lambda: (lambda c: c if c["ok"] else None)(checks(agent)["registered"]), timeout=40,
                     what="registered; last log lines:\n" + "\n".join(agent.lines[-15:]))
    return check["detail"].removeprefix("cluster ")


def micro_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def secret_calls(kube) -> list[tuple[str, int]]:
    return [(r["method"], r["status"]) for r in kube.control_get("requests")
            if r["path"].startswith(f"/api/v1/namespaces/{NAMESPACE}/secrets")]


def test_a_new_pod_resumes_with_the_agent_and_cluster_id_in_the_secret(cp, kube, agents):
    first = pod_agent(agents, cp, kube, "agent-7d9f-aaaaa")
    first.wait_log(lambda l: l.get("msg") == "agent starting", what="startup log")
    started = next(l for l in first.logs() if l.get("msg") == "agent starting")
    assert started["state"].startswith(f"secret {NAMESPACE}/pipeops-agent-state"), started
    cluster = registered_cluster(first)
    reg = cp.requests_for("register")[0]["body"]
    assert reg["metadata"]["registration_mode"] == "fresh"
    agent_id = reg["agent_id"]
    wait_for(lambda: secret_state(kube).get("cluster_id") == cluster, what="the cluster ID in the Secret")
    assert secret_state(kube)["agent_id"] == agent_id
    assert first.stop() == 0
    # Nothing was kept on the pod's own disk: a new pod has only the Secret.
    assert not os.path.exists(first.state_path)

    since = cp.get("/_test/requests")[-1]["seq"]
    second = pod_agent(agents, cp, kube, "agent-7d9f-bbbbb")
    # The first pod's Lease runs out (it stopped without releasing it), then the new pod registers.
    reg = cp.wait_requests("register", since=since, timeout=LEASE_SECONDS + 25)[0]["body"]
    assert (reg["agent_id"], reg.get("cluster_id"), reg["metadata"]["registration_mode"]) == (agent_id, cluster, "resume")
    assert registered_cluster(second) == cluster
    assert lease_spec(kube)["holderIdentity"] == f"agent-7d9f-bbbbb_{agent_id}"
    assert not os.path.exists(second.state_path)
    assert cp.violations() == []


def test_a_conflicting_write_is_read_again_and_retried(cp, kube, agents):
    # Another writer updates the Secret just before the agent's first update (after registering),
    # so that update carries a stale resourceVersion and gets 409 Conflict.
    kube.control("interfere", {"resource": "secrets", "count": 1})
    agent = pod_agent(agents, cp, kube, "agent-5c4b-ccccc")
    cluster = registered_cluster(agent)
    wait_for(lambda: secret_state(kube).get("cluster_id") == cluster, what="the cluster ID in the Secret")
    calls = secret_calls(kube)
    assert ("PUT", 409) in calls, calls
    conflict = calls.index(("PUT", 409))
    assert calls[conflict + 1:conflict + 3] == [("GET", 200), ("PUT", 200)], calls
    # The other writer's change is kept: the agent wrote on top of the Secret as re-read.
    annotations = kubectl_json(kube, "secret", "pipeops-agent-state")["metadata"].get("annotations", {})
    assert "test.pipeops.io/concurrent-writer" in annotations
    assert agent.wait_log(lambda l: l.get("msg") == "the state Secret changed under us; reading it again",
                          what="the conflict in the log")["reason"] == "Conflict"


def test_a_second_agent_stands_by_and_takes_over_after_the_first_is_killed(cp, kube, agents):
    first = pod_agent(agents, cp, kube, "agent-1111-first")
    registered_cluster(first)
    agent_id = secret_state(kube)["agent_id"]
    assert checks(first)["leader"]["ok"] is True
    registers = len(cp.requests_for("register"))

    second = pod_agent(agents, cp, kube, "agent-2222-second")
    standby = wait_for(lambda: (lambda c: c if c["detail"].startswith("standby:") else None)(checks(second)["leader"]),
                       what="the second agent standing by")
    assert standby["ok"] is False
    assert standby["detail"].startswith(f"standby: lease held by agent-1111-first_{agent_id} until ")
    assert second.get("/ready").status_code == 503
    assert second.get("/health").status_code == 200
    # The first keeps renewing (two renewals seen) while the second stays standby and never registers.
    renewed = [lease_spec(kube)["renewTime"]]
    for _ in range(2):
        renewed.append(wait_for(lambda: (lambda t: t if t != renewed[-1] else None)(lease_spec(kube)["renewTime"]),
                                what="a renewal of the Lease"))
    assert lease_spec(kube)["holderIdentity"] == f"agent-1111-first_{agent_id}"
    assert checks(second)["leader"]["detail"].startswith("standby:")
    assert len(cp.requests_for("register")) == registers

    since = cp.get("/_test/requests")[-1]["seq"]
    first.proc.kill()
    first.proc.wait(10)
    last_renewal = micro_time(lease_spec(kube)["renewTime"])
    # Expiry is counted from when the standby saw the last renewal (client-go's scheme), which
    # it polls every retry period: one lease duration plus at most two retry periods.
    leader = wait_for(lambda: (lambda c: c if c["ok"] else None)(checks(second)["leader"]),
                      timeout=LEASE_SECONDS + 2 * RETRY_SECONDS + 2, what="the second agent leading")
    assert leader["detail"].endswith(f"held by agent-2222-second_{agent_id}")
    spec = lease_spec(kube)
    assert spec["holderIdentity"] == f"agent-2222-second_{agent_id}"
    assert spec["leaseTransitions"] == 1 and spec["leaseDurationSeconds"] == LEASE_SECONDS
    # Never two leaders: the takeover came a full lease duration after the last renewal.
    assert micro_time(spec["acquireTime"]) - last_renewal >= datetime.timedelta(seconds=LEASE_SECONDS)
    reg = cp.wait_requests("register", since=since)[0]["body"]
    assert (reg["agent_id"], reg["metadata"]["registration_mode"]) == (agent_id, "resume")


def test_a_leader_that_cannot_renew_stops_its_work_and_resumes_when_it_can(cp, kube, agents):
    agent = pod_agent(agents, cp, kube, "agent-3333-alone")
    registered_cluster(agent)
    # Every API call fails from now on: the Lease cannot be renewed.
    kube.control("fail", {"status": 503, "count": 100_000})
    stopped = agent.wait_log(lambda l: l.get("msg", "").startswith("leader election: no longer leading"),
                             timeout=LEASE_SECONDS + 10, what="the leader giving up")
    assert "not renewed" in stopped["reason"]
    since = cp.get("/_test/requests")[-1]["seq"]
    assert checks(agent)["leader"]["ok"] is False
    assert checks(agent)["registered"]["detail"].startswith("not started:")
    wait_for(lambda: checks(agent)["leader"]["detail"].startswith("waiting for the Lease"), what="waiting for the Lease")
    kube.control("fail", {"clear": True})
    # The Lease is still its own: it leads again, re-reads the state and resumes the registration.
    reg = cp.wait_requests("register", since=since, timeout=30)[0]
    assert reg["body"]["metadata"]["registration_mode"] == "resume"
    # Nothing was sent to the control plane while it was not leading.
    assert [r for r in cp.get("/_test/requests", since=since) if r["seq"] < reg["seq"]] == []
    registered_cluster(agent)
