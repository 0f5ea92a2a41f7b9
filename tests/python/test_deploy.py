"""The deployment files (Dockerfile, deploy/kubernetes/*.yaml) as far as this
machine can check them without Docker or Kubernetes: the YAML parses into the
objects docs/deploy.md describes, every `strata` flag they pass is one that
`strata serve --help` lists, the environment they refer to is defined, and the
image is built with the README's build command."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy" / "kubernetes"


def _serve_flags() -> set[str]:
    bin_path = Path(os.environ.get("STRATA_BIN", REPO_ROOT / "target" / "debug" / "strata"))
    out = subprocess.run([str(bin_path), "serve", "--help"], capture_output=True, text=True,
                         check=True).stdout
    return set(re.findall(r"--[a-z][a-z0-9-]*", out))


def _docs() -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
            for p in sorted(DEPLOY.glob("*.yaml"))}


def test_manifests_parse_into_the_documented_objects():
    docs = _docs()
    kinds = {(name, d["kind"], d["metadata"]["name"]) for name, ds in docs.items() for d in ds}
    assert ("etcd.yaml", "StatefulSet", "strata-etcd") in kinds
    assert ("etcd.yaml", "Service", "strata-etcd") in kinds
    assert ("strata.yaml", "Deployment", "strata") in kinds
    assert ("strata.yaml", "Service", "strata") in kinds
    assert ("strata.yaml", "ConfigMap", "strata") in kinds
    for ds in docs.values():
        for d in ds:
            if d["kind"] in ("Deployment", "StatefulSet"):
                labels = d["spec"]["template"]["metadata"]["labels"]
                assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_servers_flags_and_environment_exist():
    flags = _serve_flags()
    docs = _docs()
    [deployment] = [d for d in docs["strata.yaml"] if d["kind"] == "Deployment"]
    [config] = [d for d in docs["strata.yaml"] if d["kind"] == "ConfigMap"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "serve"
    for a in args[1:]:
        flag = a.split("=", 1)[0]
        assert flag in flags, f"{flag} is not a flag of `strata serve`"
    defined = set(config["data"]) | {e["name"] for e in container.get("env", [])}
    for a in args:
        for var in re.findall(r"\$\(([A-Z_]+)\)", a):
            assert var in defined, f"{a}: ${var} is not defined"
    for flag in ("--etcd", "--storage", "--advertise", "--server-id"):
        assert any(a.startswith(flag + "=") for a in args), f"{flag} missing"
    # The probes ask the HTTP listener (docs/observability.md).
    http_port = int(next(a for a in args if a.startswith("--http-listen=")).rsplit(":", 1)[1])
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": http_port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": http_port}
    [svc] = [d for d in docs["strata.yaml"] if d["kind"] == "Service"]
    assert svc["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]


def test_the_dockerfile_builds_as_the_readme_says_and_runs_a_real_command():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    assert "cargo run --release -p strata -- serve" in readme
    assert "RUN cargo build --release -p strata " in dockerfile
    cmd = re.search(r'^CMD \[(.*)\]$', dockerfile, re.M)
    assert cmd, "the Dockerfile has a CMD"
    args = [a.strip().strip('"') for a in cmd.group(1).split(",")]
    assert args[0] == "serve"
    flags = _serve_flags()
    for a in args[1:]:
        if a.startswith("--"):
            assert a in flags, f"{a} is not a flag of `strata serve`"
