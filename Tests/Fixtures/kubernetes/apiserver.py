"""A Kubernetes API test server: HTTPS on 127.0.0.1, bearer-token or client-certificate auth,
the core/v1 resources the agent watches (nodes, pods, services, events, namespaces), pod logs,
and the two objects the agent keeps its own state in: core/v1 Secrets and coordination.k8s.io/v1
Leases.

It is not kube-apiserver. It follows the Kubernetes API concepts documentation on the points a
watching client depends on, and the tests check it with two clients we did not write (kubectl and
the official Python client, see selftest.py):

* "Resource versions": one cluster-wide counter; every write gets the next value in
  `metadata.resourceVersion`; a list carries the version it was taken at.
* "Retrieving large results sets in chunks": `limit` and `continue`; the pages of one list come
  from a snapshot taken at its first page; a continue token older than the compaction point
  answers `410 Gone` with reason `Expired`.
* "Efficient detection of changes": `watch=1` from `resourceVersion` replays the changes after it
  and follows new ones; no version (or "0") starts with a synthetic ADDED per object;
  `allowWatchBookmarks` brings `BOOKMARK` events; `timeoutSeconds` ends the watch normally; a
  version older than the compaction point gets an `ERROR` event carrying a `410 Expired` Status
  (as kube-apiserver does) and the end of the stream.
* Errors are `kind: Status` objects with `reason`, `message` and `code`.
* "Concurrency control and consistency": an update (PUT) whose `metadata.resourceVersion` is not
  the stored one answers `409 Conflict` ("the object has been modified; please apply your
  changes to the latest version and try again"); an update without one is unconditional; a
  create of an existing name answers `409 AlreadyExists`.
* Secrets (core/v1, namespaced): `type` defaults to `Opaque`; `data` values must be base64
  (kube-apiserver decodes them into bytes; anything else is a `400 BadRequest`).
* Leases (`/apis/coordination.k8s.io/v1/namespaces/{ns}/leases`, the object client-go's leader
  election uses): `spec.holderIdentity` (string), `leaseDurationSeconds` (integer > 0),
  `leaseTransitions` (integer >= 0), `acquireTime`/`renewTime` as MicroTime
  (`2006-01-02T15:04:05.000000Z`, six fraction digits); anything else is a `400 BadRequest`.
* `GET /api/v1/namespaces/{ns}/pods/{pod}/log?follow=true&tailLines=N&container=C` streams the
  pod's lines (fed through /_test/logs) until the pod ends (its log is closed, it reaches
  Succeeded/Failed, or it is deleted).
* kubectl's table view (`Accept: ...;as=Table;g=meta.k8s.io`) for lists and objects.

Why not kmock (PyPI), which the issue proposed: its KubernetesEmulator (0.8) answers lists with
the placeholder resourceVersion "...", stores objects without resourceVersions, ignores
`resourceVersion` on watches (every watch replays everything: no resume, no 410, no bookmarks),
has no pagination, announces `groupVersion: "/v1"` in /api/v1 discovery (kubectl rejects it),
answers a missing object with a 500 instead of a 404 Status, and has no pod logs. Those are
exactly the behaviours under test, so a layer over it would have replaced all of it.

Test-only controls under /_test/ (no auth): logs, end-watches, compact, restart, fail, token,
requests (each with the status answered), fail (or clear the failures to come), seed, churn, interfere (another writer updates the
object just before each of the next `count` updates of `resource`, so they carry a stale
resourceVersion), object (GET one stored object). Started as
  apiserver.py --cert server.pem --key server.key [--client-ca ca.pem] [--token T | --token-file F]
it prints one JSON line {"url","port"} when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import datetime
import json
import os
import random
import ssl
import sys
import time
import uuid
from typing import Any, Optional

from aiohttp import web

RESOURCES = {
    # name: (kind, namespaced)
    "pods": ("Pod", True),
    "services": ("Service", True),
    "events": ("Event", True),
    "nodes": ("Node", False),
    "namespaces": ("Namespace", False),
    "secrets": ("Secret", True),
    "leases": ("Lease", True),
}
# The API group and version of each resource outside core/v1.
GROUPS = {"leases": "coordination.k8s.io/v1"}


def api_version(resource: str) -> str:
    return GROUPS.get(resource, "v1")
VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.2-pipeops-test", "gitCommit": "0" * 40,
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22",
           "compiler": "gc", "platform": "linux/amd64"}
HISTORY_LIMIT = 50_000


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    return web.json_response(body, status=code)


def status_object(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def merge(target: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7386)."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


class Watch:
    def __init__(self, resource: str, namespace: Optional[str]):
        self.resource = resource
        self.namespace = namespace
        self.queue: asyncio.Queue = asyncio.Queue()

    def matches(self, resource: str, obj: dict) -> bool:
        return resource == self.resource and (self.namespace is None or obj["metadata"].get("namespace") == self.namespace)


class PodLog:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ended = False
        self.changed = asyncio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class Cluster:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rv = 1
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.history: list[tuple[int, str, str, dict]] = []   # (rv, resource, type, object)
        self.compacted = 0          # versions at or below this are gone
        self.watches: set[Watch] = set()
        self.snapshots: dict[str, tuple[int, list[dict]]] = {}
        self.logs: dict[tuple[str, str], PodLog] = {}
        self.requests: list[dict] = []
        self.failures: list[tuple[int, Optional[int]]] = []
        self.interference: dict[str, int] = {}   # resource -> updates still to interfere with
        self.token = args.token

    # -- store ------------------------------------------------------------------------------

    def write(self, resource: str, kind: str, obj: dict) -> dict:
        """Stores a create or update and tells the watches; returns the stored object."""
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "") if RESOURCES[resource][1] else ""
        key = (resource, ns, meta["name"])
        typ = "MODIFIED" if key in self.objects else "ADDED"
        if typ == "ADDED":
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
        obj["apiVersion"] = api_version(resource)
        obj["kind"] = RESOURCES[resource][0]
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        self.record(resource, typ, obj)
        if resource == "pods" and obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            self.end_log(ns, meta["name"])
        return obj

    def delete(self, resource: str, ns: str, name: str) -> Optional[dict]:
        obj = self.objects.pop((resource, ns, name), None)
        if obj is None:
            return None
        obj = copy.deepcopy(obj)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.record(resource, "DELETED", obj)
        if resource == "pods":
            self.end_log(ns, name)
        return obj

    def record(self, resource: str, typ: str, obj: dict) -> None:
        self.history.append((self.rv, resource, typ, obj))
        if len(self.history) > HISTORY_LIMIT:
            dropped = self.history[: len(self.history) - HISTORY_LIMIT]
            self.history = self.history[len(dropped):]
            self.compacted = max(self.compacted, dropped[-1][0])
        for w in list(self.watches):
            if w.matches(resource, obj):
                w.queue.put_nowait({"type": typ, "object": obj})

    def items(self, resource: str, ns: Optional[str]) -> list[dict]:
        out = [o for (r, n, _), o in self.objects.items() if r == resource and (ns is None or n == ns)]
        out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return out

    def log(self, ns: str, pod: str) -> PodLog:
        return self.logs.setdefault((ns, pod), PodLog())

    def end_log(self, ns: str, pod: str) -> None:
        lg = self.log(ns, pod)
        lg.ended = True
        lg.notify()


def table(resource: str, items: list[dict], rv: str, cont: str = "") -> dict:
    """kubectl's server-side printing (meta.k8s.io/v1 Table)."""
    if resource == "pods":
        cols = [("Name", "string"), ("Ready", "string"), ("Status", "string"), ("Restarts", "integer"), ("Node", "string")]

        def cells(o: dict) -> list:
            cs = o.get("status", {}).get("containerStatuses", [])
            total = len(cs) or len(o.get("spec", {}).get("containers", []))
            ready = sum(1 for c in cs if c.get("ready"))
            return [o["metadata"]["name"], f"{ready}/{total}", o.get("status", {}).get("phase", "Pending"),
                    sum(c.get("restartCount", 0) for c in cs), o.get("spec", {}).get("nodeName", "<none>")]
    elif resource == "nodes":
        cols = [("Name", "string"), ("Status", "string"), ("Version", "string")]

        def cells(o: dict) -> list:
            conds = {c.get("type"): c.get("status") for c in o.get("status", {}).get("conditions", [])}
            return [o["metadata"]["name"], "Ready" if conds.get("Ready") == "True" else "NotReady",
                    o.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")]
    else:
        cols = [("Name", "string")]

        def cells(o: dict) -> list:
            return [o["metadata"]["name"]]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv, "continue": cont},
            "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n,
                                   "priority": 0} for n, t in cols],
            "rows": [{"cells": cells(o), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                     "metadata": o["metadata"]}} for o in items]}


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


class APIServer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cluster = Cluster(args)
        self.runner: Optional[web.AppRunner] = None
        self.port = args.port
        self.open_streams: set[web.StreamResponse] = set()
        self.watch_ends: set[asyncio.Event] = set()

    # -- plumbing ---------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.args.cert, self.args.key)
        if self.args.client_ca:
            ctx.load_verify_locations(self.args.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        app.router.add_route("*", "/_test/{action}", self.control)
        app.router.add_route("*", "/{tail:.*}", self.api)
        return app

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ssl_context(), reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for e in list(self.watch_ends):
            e.set()
        if self.runner:
            await self.runner.cleanup()
            self.runner = None

    def authenticated(self, request: web.Request) -> str:
        """'token', 'cert', or '' when neither is acceptable."""
        auth = request.headers.get("Authorization", "")
        token = self.current_token()
        if auth.startswith("Bearer ") and token and auth[7:] == token:
            return "token"
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        if ssl_obj is not None and ssl_obj.getpeercert():
            return "cert"
        return ""

    def current_token(self) -> Optional[str]:
        if self.args.token_file:
            try:
                with open(self.args.token_file) as f:
                    return f.read().strip()
            except OSError:
                return None
        return self.cluster.token

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_test/"):
            return await handler(request)
        c = self.cluster
        auth = self.authenticated(request)
        entry = {"seq": len(c.requests) + 1, "method": request.method, "path": request.path,
                 "query": dict(request.query), "auth": auth, "time": time.time(),
                 "user_agent": request.headers.get("User-Agent", ""), "status": None}
        c.requests.append(entry)
        if not auth:
            return status(401, "Unauthorized", "Unauthorized")
        if c.failures:
            code, retry_after = c.failures.pop(0)
            resp = status(code, "TooManyRequests" if code == 429 else "InternalError", f"injected failure {code}")
            if retry_after is not None:
                resp.headers["Retry-After"] = str(retry_after)
            entry["status"] = resp.status
            return resp
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            entry["status"] = e.status
            raise
        entry["status"] = resp.status
        return resp

    # -- API --------------------------------------------------------------------------------

    async def api(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        if path == "/version":
            return web.json_response(VERSION)
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                      "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]})
        if path == "/apis":
            groups = sorted({gv.split("/")[0]: gv for gv in GROUPS.values()}.items())
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                 "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}} for g, gv in groups]})
        if path == "/api/v1" or path.removeprefix("/apis/") in GROUPS.values():
            gv = "v1" if path == "/api/v1" else path.removeprefix("/apis/")
            extra = [{"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]}] \
                if gv == "v1" else []
            return web.json_response({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": name, "singularName": kind.lower(), "namespaced": ns, "kind": kind,
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                for name, (kind, ns) in RESOURCES.items() if api_version(name) == gv] + extra})
        parts, gv = None, "v1"
        if path.startswith("/api/v1/"):
            parts = path.split("/")[3:]
        elif path.startswith("/apis/"):
            gv = "/".join(path.split("/")[2:4])
            parts = path.split("/")[4:] if gv in GROUPS.values() else None
        if not parts:
            return status(404, "NotFound", f"the server could not find the requested resource ({request.path})")
        ns: Optional[str] = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            ns, parts = parts[1], parts[2:]
        resource, rest = parts[0], parts[1:]
        if resource not in RESOURCES or api_version(resource) != gv:
            return status(404, "NotFound", f"the server could not find the requested resource ({resource})")
        if RESOURCES[resource][1] is False and ns is not None:
            return status(404, "NotFound", f"{resource} is not namespaced")
        if not rest:
            if request.method == "GET":
                if request.query.get("watch") in ("1", "true"):
                    return await self.watch(request, resource, ns)
                return self.list(request, resource, ns)
            if request.method == "POST":
                return await self.create(request, resource, ns)
            return status(405, "MethodNotAllowed", f"{request.method} is not allowed on a collection")
        name = rest[0]
        if len(rest) == 2 and resource == "pods" and rest[1] == "log" and request.method == "GET":
            return await self.pod_log(request, ns or "", name)
        if len(rest) == 2 and rest[1] == "status" and request.method in ("PUT", "PATCH"):
            return await self.update(request, resource, ns or "", name)
        if len(rest) != 1:
            return status(404, "NotFound", f"no such subresource {'/'.join(rest[1:])}")
        key = (resource, ns or "" if RESOURCES[resource][1] else "", name)
        if request.method == "GET":
            obj = self.cluster.objects.get(key)
            if obj is None:
                return status(404, "NotFound", f'{resource} "{name}" not found')
            if wants_table(request):
                return web.json_response(table(resource, [obj], obj["metadata"]["resourceVersion"]))
            return web.json_response(obj)
        if request.method in ("PUT", "PATCH"):
            return await self.update(request, resource, key[1], name)
        if request.method == "DELETE":
            gone = self.cluster.delete(resource, key[1], name)
            if gone is None:
                return status(404, "NotFound", f'{resource} "{name}" not found')
            return web.json_response(gone)
        return status(405, "MethodNotAllowed", f"{request.method} is not allowed")

    def list(self, request: web.Request, resource: str, ns: Optional[str]) -> web.StreamResponse:
        c = self.cluster
        limit = int(request.query.get("limit", "0") or 0)
        token = request.query.get("continue")
        if token:
            snap = c.snapshots.get(token)
            if snap is None or snap[0] < c.compacted:
                return status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. "
                                              "You can start a new list without the continue parameter.")
            rv, items = snap
        else:
            rv, items = c.rv, [copy.deepcopy(o) for o in c.items(resource, ns)]
        page, rest = (items[:limit], items[limit:]) if limit > 0 else (items, [])
        cont = ""
        if rest:
            cont = base64.urlsafe_b64encode(os.urandom(12)).decode()
            c.snapshots[cont] = (rv, rest)
            if len(c.snapshots) > 1000:
                c.snapshots.pop(next(iter(c.snapshots)))
        if wants_table(request):
            return web.json_response(table(resource, page, str(rv), cont))
        meta: dict = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = len(rest)
        kind = RESOURCES[resource][0] + "List"
        return web.json_response({"kind": kind, "apiVersion": "v1", "metadata": meta, "items": page})

    async def body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError as e:
            raise web.HTTPBadRequest(text=json.dumps(status_object(400, "BadRequest", f"bad JSON: {e}")),
                                     content_type="application/json")

    async def create(self, request: web.Request, resource: str, ns: Optional[str]) -> web.StreamResponse:
        obj = await self.body(request)
        meta = obj.setdefault("metadata", {})
        if "name" not in meta and "generateName" in meta:
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            return status(422, "Invalid", "metadata.name: Required value")
        if RESOURCES[resource][1]:
            meta["namespace"] = ns or meta.get("namespace") or "default"
        key = (resource, meta.get("namespace", ""), meta["name"])
        if key in self.cluster.objects:
            return status(409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists')
        invalid = validate(resource, obj)
        if invalid:
            return status(400, "BadRequest", invalid)
        return web.json_response(self.cluster.write(resource, RESOURCES[resource][0], obj), status=201)

    async def update(self, request: web.Request, resource: str, ns: str, name: str) -> web.StreamResponse:
        key = (resource, ns, name)
        current = self.cluster.objects.get(key)
        if current is None:
            return status(404, "NotFound", f'{resource} "{name}" not found')
        body = await self.body(request)
        if request.method == "PUT" and self.cluster.interference.get(resource, 0) > 0:
            # Another writer got there first: the stored object moves on, the body's version is stale.
            self.cluster.interference[resource] -= 1
            other = copy.deepcopy(current)
            other["metadata"].setdefault("annotations", {})["test.pipeops.io/concurrent-writer"] = str(self.cluster.rv)
            current = self.cluster.write(resource, RESOURCES[resource][0], other)
        if request.method == "PATCH":
            new = merge(copy.deepcopy(current), body)
        else:
            new = body
            sent = (new.get("metadata") or {}).get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                return status(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
                                               "modified; please apply your changes to the latest version and try again")
        invalid = validate(resource, new)
        if invalid:
            return status(400, "BadRequest", invalid)
        new.setdefault("metadata", {}).update({"name": name, "uid": current["metadata"]["uid"],
                                               "creationTimestamp": current["metadata"]["creationTimestamp"]})
        if ns:
            new["metadata"]["namespace"] = ns
        return web.json_response(self.cluster.write(resource, RESOURCES[resource][0], new))

    async def watch(self, request: web.Request, resource: str, ns: Optional[str]) -> web.StreamResponse:
        c = self.cluster
        rv_text = request.query.get("resourceVersion", "")
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(request.query.get("timeoutSeconds", "0") or 0) or 1800.0
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self.open_streams.add(resp)
        end = asyncio.Event()
        self.watch_ends.add(end)
        w = Watch(resource, ns)

        async def send(event: dict) -> None:
            await resp.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

        try:
            if rv_text not in ("", "0"):
                try:
                    rv = int(rv_text)
                except ValueError:
                    await send({"type": "ERROR", "object": status_object(400, "BadRequest", f"invalid resourceVersion {rv_text!r}")})
                    return resp
                if rv < c.compacted:
                    await send({"type": "ERROR", "object": status_object(
                        410, "Expired", f"too old resource version: {rv} ({c.compacted + 1})")})
                    return resp
                backlog = [{"type": t, "object": o} for (v, r, t, o) in c.history
                           if v > rv and r == resource and (ns is None or o["metadata"].get("namespace") == ns)]
            else:
                backlog = [{"type": "ADDED", "object": o} for o in c.items(resource, ns)]
            c.watches.add(w)
            for e in backlog:
                await send(e)
            deadline = time.monotonic() + timeout
            interval = self.args.bookmark_interval
            while not end.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                get = asyncio.ensure_future(w.queue.get())
                stop = asyncio.ensure_future(end.wait())
                done, _ = await asyncio.wait({get, stop}, timeout=min(left, interval), return_when=asyncio.FIRST_COMPLETED)
                if end.is_set():
                    get.cancel()
                    break
                if get in done:
                    stop.cancel()
                    await send(get.result())
                    while not w.queue.empty():
                        await send(w.queue.get_nowait())
                    continue
                get.cancel()
                stop.cancel()
                if end.is_set():
                    break
                if bookmarks:
                    await send({"type": "BOOKMARK", "object": {"kind": RESOURCES[resource][0], "apiVersion": "v1",
                                                                "metadata": {"resourceVersion": str(c.rv)}}})
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            c.watches.discard(w)
            self.watch_ends.discard(end)
            self.open_streams.discard(resp)
        return resp

    async def pod_log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        c = self.cluster
        pod = c.objects.get(("pods", ns, name))
        if pod is None:
            return status(404, "NotFound", f'pods "{name}" not found')
        containers = [x.get("name") for x in pod.get("spec", {}).get("containers", [])]
        container = request.query.get("container")
        if container and container not in containers:
            return status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if not container and len(containers) > 1:
            return status(400, "BadRequest", f"a container name must be specified for pod {name}, choose one of: {containers}")
        lg = c.log(ns, name)
        follow = request.query.get("follow") in ("true", "1")
        tail = request.query.get("tailLines")
        start = max(0, len(lg.lines) - int(tail)) if tail is not None else 0
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        end = asyncio.Event()
        self.watch_ends.add(end)
        i = start
        try:
            while True:
                while i < len(lg.lines):
                    await resp.write((lg.lines[i] + "\n").encode())
                    i += 1
                if not follow or lg.ended or end.is_set():
                    break
                changed = lg.changed
                waiter = asyncio.ensure_future(changed.wait())
                stopper = asyncio.ensure_future(end.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.watch_ends.discard(end)
        return resp

    # -- test controls ----------------------------------------------------------------------

    async def control(self, request: web.Request) -> web.StreamResponse:
        c = self.cluster
        action = request.match_info["action"]
        body: dict = {}
        if request.can_read_body:
            body = await request.json()
        if action == "logs":
            lg = c.log(body["namespace"], body["pod"])
            lg.lines.extend(body.get("lines", []))
            if body.get("end"):
                lg.ended = True
            lg.notify()
        elif action == "end-watches":
            n = len(self.watch_ends)
            for e in list(self.watch_ends):
                e.set()
            return web.json_response({"ended": n})
        elif action == "compact":
            # Like etcd compaction after unrelated writes: every version a client holds is now
            # too old. `writes` are applied first, `end_watches` ends the watches in the same
            # step, so those changes reach a client only through its relist.
            for op in body.get("writes", []):
                if op["op"] == "delete":
                    c.delete(op["resource"], op.get("namespace", ""), op["name"])
                else:
                    c.write(op["resource"], RESOURCES[op["resource"]][0], op["object"])
            if body.get("end_watches"):
                for e in list(self.watch_ends):
                    e.set()
            c.rv += 1
            c.compacted = c.rv
            c.history = []
            c.snapshots.clear()
            return web.json_response({"compacted": c.compacted})
        elif action == "restart":
            asyncio.get_running_loop().create_task(self.restart(float(body.get("down_seconds", 1))))
        elif action == "fail":
            if body.get("clear"):
                c.failures = []
            else:
                c.failures += [(int(body["status"]), body.get("retry_after"))] * int(body.get("count", 1))
        elif action == "interfere":
            c.interference[body["resource"]] = c.interference.get(body["resource"], 0) + int(body.get("count", 1))
        elif action == "object":
            obj = c.objects.get((body["resource"], body.get("namespace", ""), body["name"]))
            return web.json_response(obj, status=200 if obj is not None else 404)
        elif action == "token":
            c.token = body["token"]
        elif action == "requests":
            since = int(request.query.get("since", "0"))
            return web.json_response([r for r in c.requests if r["seq"] > since])
        elif action == "state":
            return web.json_response({"rv": c.rv, "compacted": c.compacted, "watches": len(c.watches),
                                      "objects": {r: len(c.items(r, None)) for r in RESOURCES}})
        elif action == "seed":
            seed(c, int(body.get("nodes", 0)), int(body.get("pods", 0)), body.get("namespaces", ["default"]))
        elif action == "churn":
            asyncio.get_running_loop().create_task(churn(c, float(body["rate"]), float(body["seconds"])))
        else:
            return web.json_response({"error": f"unknown control {action}"}, status=404)
        return web.json_response({"ok": True, "rv": c.rv})

    async def restart(self, down: float) -> None:
        """Like an API server restart: every connection drops, the port refuses for `down`
        seconds, the state (etcd) survives."""
        await self.stop()
        await asyncio.sleep(down)
        await self.start()


def validate(resource: str, obj: dict) -> Optional[str]:
    """What kube-apiserver's decoding and validation would refuse in a Secret or a Lease."""
    if resource == "secrets":
        obj.setdefault("type", "Opaque")
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            return "Secret.data: expected an object"
        for k, v in data.items():
            try:
                base64.b64decode(v, validate=True)
            except (ValueError, TypeError):
                return f"Secret.data.{k}: illegal base64 data"
    if resource == "leases":
        spec = obj.get("spec") or {}
        checks = {"holderIdentity": lambda v: isinstance(v, str),
                  "leaseDurationSeconds": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
                  "leaseTransitions": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                  "acquireTime": is_micro_time, "renewTime": is_micro_time}
        for field, ok in checks.items():
            if field in spec and spec[field] is not None and not ok(spec[field]):
                return f"Lease.spec.{field}: invalid value {spec[field]!r}"
        unknown = set(spec) - set(checks) - {"preferredHolder", "strategy"}
        if unknown:
            return f"Lease.spec: unknown fields {sorted(unknown)}"
    return None


def is_micro_time(v: Any) -> bool:
    """metav1.MicroTime on the wire: RFC 3339 in UTC with exactly six fraction digits."""
    try:
        return isinstance(v, str) and len(v) == 27 and v.endswith("Z") and \
            datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ") is not None
    except ValueError:
        return False


def make_pod(ns: str, name: str, node: str, phase: str = "Running") -> dict:
    return {"metadata": {"name": name, "namespace": ns, "labels": {"app": name.rsplit("-", 1)[0]}},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.local/app:1"}]},
            "status": {"phase": phase, "containerStatuses": [container_status("main", phase)]}}


def container_status(name: str, phase: str) -> dict:
    """The fields the official clients require of a V1ContainerStatus."""
    state = {"running": {"startedAt": now_rfc3339()}} if phase == "Running" else {"waiting": {"reason": "ContainerCreating"}}
    return {"name": name, "ready": phase == "Running", "restartCount": 0, "started": phase == "Running",
            "image": "registry.local/app:1", "imageID": "registry.local/app@sha256:" + "0" * 64, "state": state}


def make_node(name: str) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       # Every field of core/v1 NodeSystemInfo that the API marks required (the
                       # official Python client refuses a node without them).
                       "nodeInfo": {"kubeletVersion": VERSION["gitVersion"], "kubeProxyVersion": VERSION["gitVersion"],
                                    "architecture": "amd64", "operatingSystem": "linux",
                                    "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0",
                                    "containerRuntimeVersion": "containerd://1.7.0", "bootID": f"boot-{name}",
                                    "machineID": f"machine-{name}", "systemUUID": f"uuid-{name}"}}}


def seed(c: Cluster, nodes: int, pods: int, namespaces: list[str]) -> None:
    for i in range(nodes):
        c.write("nodes", "Node", make_node(f"node-{i}"))
    for ns in namespaces:
        if ("namespaces", "", ns) not in c.objects:
            c.write("namespaces", "Namespace", {"metadata": {"name": ns}, "status": {"phase": "Active"}})
    for i in range(pods):
        ns = namespaces[i % len(namespaces)]
        c.write("pods", "Pod", make_pod(ns, f"app-{i}", f"node-{i % max(1, nodes)}"))


async def churn(c: Cluster, rate: float, seconds: float) -> None:
    """Flips pods between Running and Pending at `rate` changes per second."""
    pods = [k for k in c.objects if k[0] == "pods"]
    if not pods:
        return
    end = time.monotonic() + seconds
    n = 0
    start = time.monotonic()
    while time.monotonic() < end:
        key = random.choice(pods)
        obj = c.objects.get(key)
        if obj is not None:
            new = copy.deepcopy(obj)
            running = new["status"]["phase"] == "Running"
            new["status"]["phase"] = "Pending" if running else "Running"
            new["status"]["containerStatuses"] = [container_status("main", new["status"]["phase"])]
            c.write("pods", "Pod", new)
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))


def write_kubeconfig(path: str, url: str, ca: str, token: str) -> None:
    with open(ca, "rb") as f:
        ca_data = base64.b64encode(f.read()).decode()
    text = f"""apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: {url}
    certificate-authority-data: {ca_data}
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
users:
- name: test
  user:
    token: {token}
"""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca", help="trust client certificates signed by this CA")
    p.add_argument("--token", default="test-k8s-token")
    p.add_argument("--token-file", help="accept the token in this file (re-read per request) instead of --token")
    p.add_argument("--bookmark-interval", type=float, default=5.0)
    p.add_argument("--seed-nodes", type=int, default=0)
    p.add_argument("--seed-pods", type=int, default=0)
    p.add_argument("--write-kubeconfig", help="write a kubeconfig for this server (CA data, token) here")
    p.add_argument("--ca", help="the CA that signed --cert, for --write-kubeconfig")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    server = APIServer(args)
    if args.seed_nodes or args.seed_pods:
        seed(server.cluster, args.seed_nodes, args.seed_pods, ["default", "kube-system"])
    await server.start()
    url = f"https://127.0.0.1:{server.port}"
    if args.write_kubeconfig:
        write_kubeconfig(args.write_kubeconfig, url, args.ca or args.cert, server.current_token() or "")
    print(json.dumps({"url": url, "port": server.port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    await server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
