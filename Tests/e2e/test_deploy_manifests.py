"""The Kubernetes manifests (deployments/kubernetes/): valid against the API's schemas in strict
mode (kubernetes-validate), no failed checkov check and every skip justified, accepted by
kubectl's client-side dry run, least privilege (the roles grant exactly what the agent's
Kubernetes client calls, permissions.txt), the settings the issue asks for, a config that
loads in a pod, and the single-file rendering deployments/agent.yaml up to date."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import threading

import pytest
import yaml

from harness import ROOT, agent_binary

MANIFESTS = os.path.join(ROOT, "deployments", "kubernetes")
RENDERED = os.path.join(ROOT, "deployments", "agent.yaml")
PERMISSIONS = os.path.join(MANIFESTS, "permissions.txt")
KUBERNETES_SOURCES = os.path.join(ROOT, "Sources", "Agent", "Kubernetes")
# Where `make deps` puts checkov (scripts/deps.sh: its own virtualenv, it pins old versions of
# libraries other tools share).
CHECKOV = os.environ.get("CHECKOV", "/opt/pipeops/checkov/bin/checkov")


def manifest_files() -> list[str]:
    return sorted(os.path.join(MANIFESTS, f) for f in os.listdir(MANIFESTS)
                  if f.endswith(".yaml") and f != "kustomization.yaml")


def objects() -> list[dict]:
    out = []
    for path in manifest_files():
        out += [d for d in yaml.safe_load_all(open(path)) if d]
    return out


def one(kind: str) -> dict:
    found = [o for o in objects() if o["kind"] == kind]
    assert len(found) == 1, f"one {kind} expected, found {len(found)}"
    return found[0]


def kustomize() -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", MANIFESTS], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load(open(os.path.join(MANIFESTS, "kustomization.yaml")))["resources"]
    assert sorted(os.path.join(MANIFESTS, r) for r in listed) == manifest_files()


# ---- schemas, checkov, kubectl ----

def test_manifests_are_valid_against_the_schemas_in_strict_mode(tmp_path):
    proc = subprocess.run(["kubernetes-validate", "--strict", "--quiet", *manifest_files(), RENDERED],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The control: strict mode rejects a misspelled field (without --strict it would pass).
    bad = tmp_path / "deployment.yaml"
    bad.write_text(open(os.path.join(MANIFESTS, "deployment.yaml")).read()
                   .replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"))
    proc = subprocess.run(["kubernetes-validate", "--strict", "--quiet", str(bad)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and "readOnlyRootFileSystem" in proc.stdout + proc.stderr


def test_checkov_finds_no_failed_check_and_every_skip_is_justified():
    assert os.access(CHECKOV, os.X_OK), f"{CHECKOV} is missing: `make deps` installs checkov there"
    proc = subprocess.run([CHECKOV, "--framework", "kubernetes", "--skip-download", "--output", "json",
                           "--directory", MANIFESTS], capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and failed == [], failed
    assert summary["passed"] > 50
    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        comment = check["check_result"].get("suppress_comment", "")
        assert comment and comment != "No comment provided", f"{check['check_id']} is skipped without a reason"
    # Each skip is explained by a comment beside it, in the file.
    text = open(os.path.join(MANIFESTS, "deployment.yaml")).read()
    for check in skipped:
        annotation = re.search(rf"^(\s*#.*\n)+\s*checkov\.io/skip\d+: \"{check['check_id']}=", text, re.M)
        assert annotation, f"{check['check_id']}: no comment above its skip annotation"
    print(f"checkov: {summary['passed']} passed, {summary['failed']} failed, "
          f"{summary['skipped']} skipped ({', '.join(sorted(c['check_id'] for c in skipped))})")


class DiscoveryServer:
    """Answers kubectl's API discovery for the kinds the manifests use, and 404 for every object,
    so `kubectl apply --dry-run=client` maps each kind to its resource and creates nothing.
    Contract: the Kubernetes API's discovery documents (legacy, unaggregated: APIVersions at /api,
    APIGroupList at /apis, APIResourceList per group version) and `kind: Status` errors. The
    resource table is the real API's, cut to what the manifests hold."""

    GROUPS = {
        "v1": [("namespaces", "Namespace", False), ("serviceaccounts", "ServiceAccount", True),
               ("secrets", "Secret", True), ("configmaps", "ConfigMap", True), ("services", "Service", True)],
        "apps/v1": [("deployments", "Deployment", True)],
        "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                         ("clusterrolebindings", "ClusterRoleBinding", False),
                                         ("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
        "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
        "coordination.k8s.io/v1": [("leases", "Lease", True)],
    }
    VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]

    def __init__(self) -> None:
        self.paths: list[str] = []
        server = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                code, body = server.answer(self.path.split("?")[0])
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[int, dict]:
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = []
            for gv in self.GROUPS:
                if "/" in gv:
                    name, version = gv.split("/")
                    entry = {"groupVersion": gv, "version": version}
                    groups.append({"name": name, "versions": [entry], "preferredVersion": entry})
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if path == "/version":
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0"}
        gv = path.removeprefix("/api/") if path.startswith("/api/") else path.removeprefix("/apis/")
        if gv in self.GROUPS:
            resources = [{"name": n, "singularName": k.lower(), "namespaced": ns, "kind": k, "verbs": self.VERBS}
                         for n, k, ns in self.GROUPS[gv]]
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
        return 404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": f"{path} not found", "reason": "NotFound", "code": 404}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def discovery():
    s = DiscoveryServer()
    yield s
    s.stop()


@pytest.mark.parametrize("source", [["-k", MANIFESTS], ["-f", RENDERED]], ids=["kustomize", "single-file"])
def test_kubectl_client_dry_run_accepts_the_manifests(discovery, tmp_path, source):
    assert shutil.which("kubectl"), "kubectl is missing: `make deps` installs it"
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "none"), HOME=str(tmp_path))
    proc = subprocess.run(["kubectl", "--server", discovery.url, "apply", "--dry-run=client", "--validate=false",
                           *source], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    created = [l for l in proc.stdout.splitlines() if l.endswith("created (dry run)")]
    assert len(created) == len(objects()), proc.stdout
    assert any(p.startswith("/apis/apps/v1") for p in discovery.paths)


def test_single_file_rendering_is_up_to_date():
    rendered = [d for d in yaml.safe_load_all(open(RENDERED)) if d]
    assert rendered == kustomize(), "deployments/agent.yaml is stale: run scripts/render-manifests.sh"


# ---- least privilege ----

def permissions() -> list[dict]:
    out = []
    for line in open(PERMISSIONS):
        if not line.strip() or line.startswith("#"):
            continue
        verb, resource, group, scope, name, evidence = line.split(None, 5)
        out.append({"verb": verb, "resource": resource, "group": "" if group == "core" else group,
                    "scope": scope, "name": None if name == "-" else name, "evidence": evidence.strip()})
    return out


def granted(role: dict, scope: str) -> set[tuple]:
    out = set()
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        names = rule.get("resourceNames") or [None]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in names:
                        assert "*" not in (group, resource, verb), f"wildcard in {role['kind']}: {rule}"
                        out.add((verb, resource, group, scope, name))
    return out


def kubernetes_sources() -> str:
    assert os.path.isdir(KUBERNETES_SOURCES), \
        "Sources/Agent/Kubernetes is missing: the roles' permissions are checked against the client's code"
    return "".join(open(os.path.join(KUBERNETES_SOURCES, f)).read()
                   for f in sorted(os.listdir(KUBERNETES_SOURCES)) if f.endswith(".swift"))


def test_roles_grant_exactly_what_the_client_calls():
    wanted = {(p["verb"], p["resource"], p["group"], p["scope"], p["name"]) for p in permissions()}
    have = granted(one("ClusterRole"), "cluster") | granted(one("Role"), "namespace")
    assert have == wanted, f"granted but not listed: {sorted(have - wanted, key=str)}; " \
                           f"listed but not granted: {sorted(wanted - have, key=str)}"
    code = kubernetes_sources()
    for p in permissions():
        if p["evidence"].startswith("planned:"):
            assert p["scope"] == "namespace", f"only the Role may hold planned permissions: {p}"
        else:
            assert p["evidence"] in code, f"{p['verb']} {p['resource']}: the client no longer calls it " \
                                          f"(no {p['evidence']!r} in Sources/Agent/Kubernetes)"
    # Read-only across the cluster; the only writes are to the agent's own Secret and Lease.
    assert {v for v, *_ in granted(one("ClusterRole"), "cluster")} <= {"get", "list", "watch"}
    role = one("Role")
    assert role["metadata"]["namespace"] == one("Namespace")["metadata"]["name"]
    for verb, resource, group, _, name in granted(role, "namespace"):
        assert verb == "create" or name is not None, f"{verb} {resource} is not limited to one object"


def test_bindings_give_the_roles_to_the_agents_service_account_only():
    account = one("ServiceAccount")["metadata"]
    for kind, role in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(kind)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role,
                                      "name": one(role)["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                        "namespace": account["namespace"]}]


# ---- the pod ----

def test_deployment_runs_one_locked_down_non_root_replica():
    d = one("Deployment")
    spec, pod = d["spec"], d["spec"]["template"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert pod["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    [c] = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsUser"] == 1000
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["resources"]["requests"] and c["resources"]["limits"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    assert env["NODE_IP"] == "status.hostIP" and env["NODE_NAME"] == "spec.nodeName"
    token = next(e for e in c["env"] if e["name"] == "PIPEOPS_TOKEN")["valueFrom"]["secretKeyRef"]
    secret = next(o for o in objects() if o["kind"] == "Secret" and o["metadata"]["name"] == token["name"])
    assert token["key"] in secret["stringData"]
    # The image make image builds (scripts/image.sh's default name and this version).
    version = subprocess.run([os.path.join(ROOT, "scripts", "build-identity.sh")], capture_output=True,
                             text=True, check=True).stdout.split("VERSION=")[1].split()[0]
    assert c["image"] == f"pipeops/agent-swift:{version}"
    # Every volume is mounted, the state one where the config keeps the state.
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert set(mounts) == {v["name"] for v in pod["volumes"]}
    config = yaml.safe_load(one("ConfigMap")["data"]["config.yaml"])
    assert os.path.dirname(config["state"]["path"]) == mounts["state"]


def test_service_and_network_policy_admit_only_the_agents_port():
    d = one("Deployment")
    labels = d["spec"]["template"]["metadata"]["labels"]
    service = one("Service")["spec"]
    assert service["selector"].items() <= labels.items()
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(8080, "http")]
    policy = one("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": one("Namespace")["metadata"]["name"]}}}]


def test_the_configmaps_config_sends_the_forwards_to_the_api_server_and_the_nodes_kubelet(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(one("ConfigMap")["data"]["config.yaml"])
    pod_env = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443",
               "NODE_IP": "192.168.1.20", "PIPEOPS_TOKEN": "t", "PATH": os.environ["PATH"]}
    proc = subprocess.run([agent_binary(), "config", "print", "--config", str(config)], capture_output=True,
                          text=True, timeout=30, env=pod_env)
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert [(f["name"], f["local_addr"]) for f in printed["tunnel"]["forwards"]] == [
        ("kubernetes-api", "10.43.0.1:443"), ("kubelet-metrics", "192.168.1.20:10250"), ("agent-http", "localhost:8080")]
    # Without NODE_IP (a manifest that forgot the downward API) the agent refuses to start.
    del pod_env["NODE_IP"]
    proc = subprocess.run([agent_binary(), "config", "print", "--config", str(config)], capture_output=True,
                          text=True, timeout=30, env=pod_env)
    assert proc.returncode == 2 and "NODE_IP is not set" in proc.stderr
