"""The Kubernetes API test server (Tests/Fixtures/kubernetes/apiserver.py) checked with two
clients we did not write: the official Python `kubernetes` client and kubectl. Our agent's
assumptions about the API (resourceVersions, paging with limit/continue, watch bookmarks,
410 Gone, Status objects) are tested against the server; this file checks the server itself
against clients that the real API server satisfies."""

import json

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from harness import KUBE_TOKEN


def api(kube):
    cfg = client.Configuration()
    cfg.host = kube.url
    cfg.ssl_ca_cert = kube.ca
    cfg.api_key = {"authorization": KUBE_TOKEN}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return client.CoreV1Api(client.ApiClient(cfg)), client.VersionApi(client.ApiClient(cfg))


def test_the_python_client_pages_watches_with_bookmarks_and_reads_version(kube):
    core, version = api(kube)
    assert version.get_code().git_version == "v1.30.2-pipeops-test"
    # Paging: limit/continue across the whole list, every page at the same resourceVersion.
    first = core.list_pod_for_all_namespaces(limit=3)
    assert len(first.items) == 3 and first.metadata._continue
    rest = core.list_pod_for_all_namespaces(limit=3, _continue=first.metadata._continue)
    names = sorted(p.metadata.name for p in first.items + rest.items)
    assert names == ["app-0", "app-1", "app-2", "app-3"] and not rest.metadata._continue
    rv = first.metadata.resource_version
    assert rv and rv.isdigit()
    # A watch from that resourceVersion sees a change made after it, then a bookmark.
    kube.kubectl("label", "pod", "app-0", "-n", "default", "tier=web")
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_pod_for_all_namespaces, resource_version=rv, allow_watch_bookmarks=True,
                       timeout_seconds=5, _request_timeout=15):
        seen.append((ev["type"], ev["object"].metadata.name if ev["type"] != "BOOKMARK" else None))
        if ev["type"] == "MODIFIED" and ev["object"].metadata.labels.get("tier") == "web":
            w.stop()
    assert ("MODIFIED", "app-0") in seen
    # A Status object for a missing pod, as the client library parses it.
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404
    body = json.loads(missing.value.body)
    assert body["kind"] == "Status" and body["reason"] == "NotFound"


def test_a_compacted_resource_version_answers_410_to_the_python_client(kube):
    core, _ = api(kube)
    rv = core.list_node().metadata.resource_version
    kube.control("compact", {})
    with pytest.raises(ApiException) as gone:
        for _ in watch.Watch().stream(core.list_node, resource_version=rv, timeout_seconds=3, _request_timeout=10):
            pass
    assert gone.value.status == 410, gone.value
