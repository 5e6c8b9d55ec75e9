"""The image `make image` builds (scripts/image.sh): its layout as skopeo and umoci read it, that
two builds are byte-identical, that the Dockerfile describes the same image, and that it really
runs: unpacked with umoci and started with runc (read-only root, no capabilities, its own network
namespace), it answers /health from inside that namespace as a non-root user that cannot write
to /. The runc part needs root and runc and is skipped, saying so, without them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile

import pytest

from harness import ROOT, free_port, wait_for

MAX_LAYER_BYTES = 20 * 1000 * 1000
AGENT = "/usr/local/bin/pipeops-agent"
# Everything the image may hold: the agent, the CA bundle and the agent's user. No shell.
EXPECTED_FILES = {
    "etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/pipeops-agent",
}


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kwargs)


def build_image(out_dir: str) -> None:
    env = dict(os.environ, OUT_DIR=out_dir)
    proc = subprocess.run([os.path.join(ROOT, "scripts", "image.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"scripts/image.sh failed:\n{proc.stdout}\n{proc.stderr}"


def build_identity() -> dict[str, str]:
    """VERSION, COMMIT and BUILD_DATE as scripts/build-identity.sh gives them to the build."""
    out = run(os.path.join(ROOT, "scripts", "build-identity.sh")).stdout
    return dict(line.split("=", 1) for line in out.split())


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Image:
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.layout = os.path.join(out_dir, "oci")
        self.archive = os.path.join(out_dir, "pipeops-agent-image.tar")
        index = json.load(open(os.path.join(self.layout, "index.json")))
        tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
        assert len(tags) == 1, f"one tag expected in the layout, got {tags}"
        self.tag = tags[0]
        self.ref = f"oci:{self.layout}:{self.tag}"  # skopeo's transport:name
        self.umoci_ref = f"{self.layout}:{self.tag}"

    def blob(self, digest: str) -> str:
        return os.path.join(self.layout, "blobs", *digest.split(":"))

    def manifest(self) -> dict:
        return json.loads(run("skopeo", "inspect", "--raw", self.ref).stdout)

    def config(self) -> dict:
        return json.loads(run("skopeo", "inspect", "--config", self.ref).stdout)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Image:
    for tool in ("umoci", "skopeo"):
        assert shutil.which(tool), f"{tool} is missing: `make deps` installs it (scripts/apt-packages.txt)"
    out = str(tmp_path_factory.mktemp("image"))
    build_image(out)
    return Image(out)


def agent_version_line(image: Image) -> str:
    """`--version` of the binary inside the image (static: it runs on the host as it is)."""
    layer = image.manifest()["layers"][0]
    with tarfile.open(image.blob(layer["digest"]), "r:gz") as tar:
        data = tar.extractfile("./usr/local/bin/pipeops-agent").read()
    path = os.path.join(image.out_dir, "agent-from-image")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755)
    return run(path, "--version").stdout.strip()


def test_image_is_one_small_layer_with_only_the_agent_its_certificates_and_its_user(image):
    manifest = image.manifest()
    assert len(manifest["layers"]) == 1, manifest["layers"]
    layer = manifest["layers"][0]
    assert layer["mediaType"].endswith("tar+gzip")
    with tarfile.open(image.blob(layer["digest"]), "r:gz") as tar:
        members = tar.getmembers()
    files = {m.name.removeprefix("./") for m in members if not m.isdir()}
    assert files == EXPECTED_FILES
    uncompressed = sum(m.size for m in members)
    assert uncompressed <= MAX_LAYER_BYTES, f"layer holds {uncompressed} bytes"
    # Name order, time 0 and root ownership: what makes two builds the same bytes.
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    tree = run("umoci", "stat", "--image", image.umoci_ref).stdout
    assert tree.count("scripts/image.sh") == 1, tree

    with tarfile.open(image.blob(layer["digest"]), "r:gz") as tar:
        passwd = tar.extractfile("./etc/passwd").read().decode()
        agent = tar.getmember("./usr/local/bin/pipeops-agent")
    assert passwd.splitlines() == ["pipeops:x:1000:1000:PipeOps agent:/nonexistent:/usr/sbin/nologin"]
    assert agent.mode & 0o777 == 0o755
    print(f"image layer: {uncompressed} bytes uncompressed, {layer['size']} bytes gzip")


def test_image_config_runs_the_agent_as_uid_1000_with_oci_annotations(image):
    config = image.config()
    assert config["config"]["User"] == "1000:1000"
    assert config["config"]["Entrypoint"] == [AGENT]
    assert "8080/tcp" in config["config"]["ExposedPorts"]
    assert len(config["rootfs"]["diff_ids"]) == 1

    identity = build_identity()
    annotations = image.manifest()["annotations"]
    assert annotations["org.opencontainers.image.revision"] == identity["COMMIT"]
    assert annotations["org.opencontainers.image.version"] == identity["VERSION"]
    assert annotations["org.opencontainers.image.created"] == identity["BUILD_DATE"] == config["created"]
    assert annotations["org.opencontainers.image.source"].startswith(("https://", "git@", "/"))
    assert config["config"]["Labels"]["org.opencontainers.image.revision"] == identity["COMMIT"]
    head = run("git", "rev-parse", "HEAD", cwd=ROOT).stdout.strip()
    assert identity["COMMIT"].removesuffix("-dirty") == head

    # The binary was stamped with the same identity (`/version` shows it; test_deploy_version checks).
    line = agent_version_line(image)
    assert f"pipeops-agent {identity['VERSION']} (commit {identity['COMMIT']}, built {identity['BUILD_DATE']}," in line


def test_docker_archive_holds_the_same_image_under_its_name(image):
    with tarfile.open(image.archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert len(manifest) == 1 and len(manifest[0]["Layers"]) == 1
    assert manifest[0]["RepoTags"] == [f"docker.io/pipeops/agent-swift:{image.tag}"]
    archived = json.loads(run("skopeo", "inspect", "--config", f"docker-archive:{image.archive}").stdout)
    assert archived["rootfs"]["diff_ids"] == image.config()["rootfs"]["diff_ids"]


def test_two_builds_are_byte_identical(image, tmp_path):
    again = str(tmp_path / "again")
    build_image(again)
    assert sha256(os.path.join(again, "pipeops-agent-image.tar")) == sha256(image.archive)
    assert Image(again).manifest() == image.manifest()


def test_dockerfile_describes_the_same_image(image):
    """No Docker engine here: the Dockerfile's runtime stage is read and compared with the config."""
    text = open(os.path.join(ROOT, "deployments", "Dockerfile")).read()
    runtime = text[text.rindex("\nFROM "):]
    assert runtime.startswith("\nFROM scratch\n")
    assert "scripts/image-rootfs.sh" in text  # the same tree as scripts/image.sh
    config = image.config()["config"]
    assert re.search(r"^USER (\S+)$", runtime, re.M).group(1) == config["User"]
    assert json.loads(re.search(r"^ENTRYPOINT (.+)$", runtime, re.M).group(1)) == config["Entrypoint"]
    assert re.findall(r"^ENV (\S+)$", runtime, re.M) == config["Env"]
    assert re.search(r"^EXPOSE (\S+)$", runtime, re.M).group(1) in config["ExposedPorts"]
    assert re.search(r"^STOPSIGNAL (\S+)$", runtime, re.M).group(1) == config["StopSignal"]


# ---- the image really runs (runc) ----

def runc_missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "runc needs root to start a container with its own namespaces; run the tests as root"
    if not shutil.which("runc"):
        return "runc is missing: `make deps` installs it (scripts/apt-packages.txt)"
    return None


class Container:
    """One runc container from the image, with a state directory of its own (not /run/runc)."""

    def __init__(self, image: Image, work: str, port: int):
        self.work = work
        self.state_root = os.path.join(work, "runc-state")
        self.bundle = os.path.join(work, "bundle")
        self.id = f"pipeops-agent-test-{os.getpid()}-{port}"
        self.port = port
        run("umoci", "unpack", "--image", image.umoci_ref, self.bundle)
        self.configure()
        self.log = open(os.path.join(work, "agent.log"), "w+")
        self.pid: int | None = None

    def configure(self) -> None:
        path = os.path.join(self.bundle, "config.json")
        spec = json.load(open(path))
        process = spec["process"]
        process["terminal"] = False
        process["args"] = [AGENT, "--port", str(self.port), "--set", "pipeops.api_url=",
                           "--set", "tunnel.enabled=false", "--log-format", "console"]
        process["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
        process["noNewPrivileges"] = True
        spec["root"]["readonly"] = True
        namespaces = {ns["type"] for ns in spec["linux"]["namespaces"]}
        assert "network" in namespaces, "umoci's config should give the container its own network namespace"
        # The state volume (an emptyDir in the pod) is the only writable place.
        spec["mounts"].append({"destination": "/var/lib/pipeops", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "noexec", "mode=0700", "uid=1000", "gid=1000", "size=1m"]})
        json.dump(spec, open(path, "w"), indent=1)

    def runc(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["runc", "--root", self.state_root, *args], capture_output=True, text=True,
                              timeout=60, **kwargs)

    def start(self) -> None:
        pid_file = os.path.join(self.work, "container.pid")
        proc = subprocess.run(["runc", "--root", self.state_root, "run", "--detach", "--pid-file", pid_file,
                               "--bundle", self.bundle, self.id],
                              stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, timeout=60)
        assert proc.returncode == 0, f"runc run failed: {self.output()}"
        self.pid = int(open(pid_file).read())

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def curl_inside(self, path: str) -> subprocess.CompletedProcess:
        """curl from the host's binaries, but in the container's network namespace."""
        return subprocess.run(["nsenter", "--target", str(self.pid), "--net", "curl", "-sS", "--max-time", "5",
                               f"http://127.0.0.1:{self.port}{path}"], capture_output=True, text=True, timeout=30)

    def stop(self) -> None:
        self.runc("kill", self.id, "KILL")
        self.runc("delete", "--force", self.id)
        self.log.close()


@pytest.fixture
def container(image, tmp_path):
    reason = runc_missing_reason()
    if reason:
        pytest.skip(reason)
    c = Container(image, str(tmp_path), free_port())
    yield c
    c.stop()


def proc_status(pid: int) -> dict[str, str]:
    lines = open(f"/proc/{pid}/status").read().splitlines()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}


def test_image_runs_under_runc_as_non_root_without_capabilities_and_answers_health(container):
    container.start()
    health = wait_for(lambda: (r := container.curl_inside("/health")).returncode == 0 and r.stdout,
                      what=f"/health inside the container; agent output:\n{container.output()}")
    assert json.loads(health)["status"] == "healthy"
    version = json.loads(container.curl_inside("/version").stdout)
    identity = build_identity()
    assert (version["version"], version["git_commit"], version["build_date"]) == \
        (identity["VERSION"], identity["COMMIT"], identity["BUILD_DATE"])

    status = proc_status(container.pid)
    assert status["Uid"].split() == ["1000"] * 4 and status["Gid"].split() == ["1000"] * 4
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    print(f"agent in the container: VmRSS {status['VmRSS']}, VmHWM {status['VmHWM']}")
    assert os.readlink(f"/proc/{container.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    root = next(line.split() for line in open(f"/proc/{container.pid}/mountinfo") if line.split()[4] == "/")
    assert "ro" in root[5].split(","), f"root is mounted {root[5]}"
    # The state was written to its volume (the only writable place).
    assert os.path.getsize(f"/proc/{container.pid}/root/var/lib/pipeops/state.json") > 0


def test_agent_in_the_image_cannot_write_to_the_root_filesystem(container):
    """A second agent in the same container, told to keep its state at /, fails to start."""
    container.start()
    wait_for(lambda: container.curl_inside("/health").returncode == 0,
             what=f"/health inside the container; agent output:\n{container.output()}")
    probe = container.runc("exec", "--user", "1000:1000", container.id, AGENT, "--port", "0",
                           "--set", "pipeops.api_url=", "--set", "tunnel.enabled=false",
                           "--set", "state.path=/pipeops-probe.json", "--log-format", "console")
    assert probe.returncode != 0, f"an agent could write its state to /:\n{probe.stdout}{probe.stderr}"
    assert "Read-only file system" in probe.stdout + probe.stderr, probe.stdout + probe.stderr
    assert not os.path.exists(os.path.join(container.bundle, "rootfs", "pipeops-probe.json"))
