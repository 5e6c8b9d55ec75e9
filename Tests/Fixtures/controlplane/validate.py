"""Field-by-field checks of the agent's requests against docs/control-plane-api.md.

Each check returns a list of (field, message) problems; the API records them as violations.
"""

from __future__ import annotations

import re
from typing import Any

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$")
USER_AGENT = re.compile(r"^pipeops-agent/[^\s/]+$")
CAMEL = re.compile(r"[a-z][A-Z]")

Problems = list[tuple[str, str]]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_fields(obj: dict, where: str, spec: dict[str, tuple[str, bool]], out: Problems) -> None:
    """spec: name -> (kind, required). kind: str, nestr (non-empty str), int, uint, num, obj,
    list, bool."""
    for name, (kind, required) in spec.items():
        path = f"{where}{name}"
        if name not in obj:
            if required:
                out.append((path, "required field missing"))
            continue
        v = obj[name]
        ok = {"str": isinstance(v, str),
              "nestr": isinstance(v, str) and v != "",
              "int": _is_int(v),
              "uint": _is_int(v) and v >= 0,
              "num": _is_num(v) and v >= 0,
              "obj": isinstance(v, dict),
              "list": isinstance(v, list),
              "bool": isinstance(v, bool)}[kind]
        if not ok:
            out.append((path, f"expected {kind}, got {type(v).__name__} {str(v)[:60]!r}"))
    for name in obj:
        if name not in spec:
            hint = " (camelCase; names are snake_case)" if CAMEL.search(name) else ""
            out.append((f"{where}{name}", "unknown field" + hint))


def check_headers(method: str, headers: Any, has_body: bool) -> Problems:
    out: Problems = []
    auth = headers.get("Authorization")
    if auth is None:
        out.append(("header Authorization", "missing"))
    elif not auth.startswith("Bearer ") or not auth[7:].strip():
        out.append(("header Authorization", "expected 'Bearer <token>'"))
    ua = headers.get("User-Agent")
    if ua is None or not USER_AGENT.match(ua):
        out.append(("header User-Agent", f"expected 'pipeops-agent/<version>', got {ua!r}"))
    accept = headers.get("Accept")
    if accept is None or "application/json" not in accept:
        out.append(("header Accept", f"expected 'application/json', got {accept!r}"))
    ctype = headers.get("Content-Type")
    if has_body:
        if ctype is None or ctype.split(";")[0].strip().lower() != "application/json":
            out.append(("header Content-Type", f"expected 'application/json', got {ctype!r}"))
    elif ctype is not None:
        out.append(("header Content-Type", "sent without a body"))
    if method == "POST" and not has_body:
        out.append(("body", "POST without a body"))
    if method == "GET" and has_body:
        out.append(("body", "GET with a body"))
    return out


REGISTER_SPEC = {
    "agent_id": ("nestr", True), "name": ("nestr", True), "cluster_id": ("nestr", False),
    "hostname": ("nestr", True), "agent_version": ("nestr", True),
    "k8s_version": ("nestr", False), "k8s_service_token": ("nestr", False),
    "labels": ("obj", True), "tunnel_port_config": ("obj", True),
    "server_specs": ("obj", True), "metadata": ("obj", True),
}
SPECS_SPEC = {"cpu_cores": ("uint", True), "memory_gb": ("num", True),
              "disk_gb": ("num", True), "os": ("nestr", True)}
REG_META_SPEC = {"agent_mode": ("nestr", True), "registration_mode": ("nestr", True)}


def check_register(body: Any) -> Problems:
    out: Problems = []
    if not isinstance(body, dict):
        return [("body", "expected a JSON object")]
    _check_fields(body, "", REGISTER_SPEC, out)
    labels = body.get("labels")
    if isinstance(labels, dict):
        for k, v in labels.items():
            if not isinstance(v, str):
                out.append((f"labels.{k}", "label values must be strings"))
        for k in ("hostname", "agent.pipeops.io/version"):
            if k not in labels:
                out.append((f"labels.{k}", "required label missing"))
    tpc = body.get("tunnel_port_config")
    if isinstance(tpc, dict):
        for k, v in tpc.items():
            if not (_is_int(v) and 1 <= v <= 65535):
                out.append((f"tunnel_port_config.{k}", f"expected a port number, got {v!r}"))
    specs = body.get("server_specs")
    if isinstance(specs, dict):
        _check_fields(specs, "server_specs.", SPECS_SPEC, out)
    meta = body.get("metadata")
    if isinstance(meta, dict):
        _check_fields(meta, "metadata.", REG_META_SPEC, out)
        if "agent_mode" in meta and meta["agent_mode"] != "vm-agent":
            out.append(("metadata.agent_mode", f"expected 'vm-agent', got {meta['agent_mode']!r}"))
        mode = meta.get("registration_mode")
        want = "resume" if "cluster_id" in body else "fresh"
        if "registration_mode" in meta and mode != want:
            out.append(("metadata.registration_mode", f"expected {want!r}, got {mode!r}"))
    return out


HEARTBEAT_SPEC = {
    "cluster_id": ("nestr", True), "agent_id": ("nestr", True), "status": ("nestr", True),
    "tunnel_status": ("nestr", True), "timestamp": ("nestr", True), "metadata": ("obj", True),
}
HB_META_SPEC = {"version": ("nestr", True), "uptime_seconds": ("uint", True),
                "k8s_nodes": ("uint", False), "k8s_pods": ("uint", False),
                "forwards": ("list", False)}
HB_FORWARD_SPEC = {"name": ("nestr", True), "remote_port": ("uint", True),
                   "active_connections": ("uint", True), "bytes_in": ("uint", True),
                   "bytes_out": ("uint", True)}


def check_heartbeat(body: Any, path_cluster_id: str, expected_agent: str | None) -> Problems:
    out: Problems = []
    if not isinstance(body, dict):
        return [("body", "expected a JSON object")]
    _check_fields(body, "", HEARTBEAT_SPEC, out)
    if isinstance(body.get("cluster_id"), str) and body["cluster_id"] != path_cluster_id:
        out.append(("cluster_id", f"{body['cluster_id']!r} differs from the path's "
                                  f"{path_cluster_id!r}"))
    if expected_agent and isinstance(body.get("agent_id"), str) and \
            body["agent_id"] != expected_agent:
        out.append(("agent_id", f"{body['agent_id']!r} is not the registered {expected_agent!r}"))
    if body.get("status") not in (None, "healthy", "degraded"):
        out.append(("status", f"expected healthy|degraded, got {body['status']!r}"))
    if body.get("tunnel_status") not in (None, "connected", "connecting", "disconnected", "idle"):
        out.append(("tunnel_status", f"expected connected|connecting|disconnected|idle, "
                                     f"got {body['tunnel_status']!r}"))
    ts = body.get("timestamp")
    if isinstance(ts, str) and not RFC3339_UTC.match(ts):
        out.append(("timestamp", f"expected RFC 3339 UTC, got {ts!r}"))
    meta = body.get("metadata")
    if isinstance(meta, dict):
        _check_fields(meta, "metadata.", HB_META_SPEC, out)
        forwards = meta.get("forwards")
        if isinstance(forwards, list):
            for i, fwd in enumerate(forwards):
                if not isinstance(fwd, dict):
                    out.append((f"metadata.forwards[{i}]", "expected an object"))
                else:
                    _check_fields(fwd, f"metadata.forwards[{i}].", HB_FORWARD_SPEC, out)
    return out
