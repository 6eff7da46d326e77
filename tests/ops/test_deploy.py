"""deploy/: Kubernetes manifests valid against the Kubernetes schemas (offline), CRDs and cross
references checked structurally, the shipped agent configs accepted by mqwatch itself, and the
image's HEALTHCHECK command proven against a running agent."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
KUBERNETES_VERSIONS = ("1.28.0", "1.33.0")
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("kustomize.config.k8s.io/v1beta1", "Kustomization")}


def _docs():
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def _of_kind(kind):
    return [d for _, d in _docs() if d["kind"] == kind]


def _pod_specs():
    return [(d["metadata"]["name"], d["spec"]["template"]) for d in _of_kind("Deployment")]


def _validate_schema(doc: dict, version: str, where: str) -> bool:
    """Validate one manifest against Kubernetes `version`'s schema, failing the test with where it
    came from; False for a custom resource, which that schema does not know."""
    if (doc["apiVersion"], doc["kind"]) in CRDS:
        return False
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")
    return True


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_manifests_validate_against_the_kubernetes_schema(version):
    checked = {doc["kind"] for name, doc in _docs() if _validate_schema(doc, version, name)}
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= checked


def test_kustomization_lists_existing_files():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), resource


def test_servicemonitor_selects_every_mqwatch_service_on_a_named_port():
    sm, = _of_kind("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    selector = sm["spec"]["selector"]["matchLabels"]
    services = [s for s in _of_kind("Service") if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in services} == {"mqwatch", "orders-consumer-mqwatch"}
    for endpoint in sm["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        for svc in services:
            assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}, svc["metadata"]["name"]
    # the job label the alert rules' target_selector expects
    job = {svc["metadata"]["labels"][sm["spec"]["jobLabel"]] for svc in services}
    from mqwatch.alerts.generate import load_config
    pattern = re.fullmatch(r'job=~"(.*)"', load_config()["target_selector"]).group(1)
    assert all(re.fullmatch(pattern, j) for j in job), job


def test_prometheusrule_is_structurally_a_prometheus_operator_rule():
    pr, = _of_kind("PrometheusRule")
    assert pr["apiVersion"] == "monitoring.coreos.com/v1" and pr["metadata"]["name"]
    for group in pr["spec"]["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            # keep_firing_for: Prometheus >= 2.42, Prometheus Operator >= 0.66 (prometheus-operator#5651)
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert isinstance(rule["expr"], str) and rule["labels"]["severity"]


def test_services_reach_the_agent_port_and_probes_use_health_endpoints():
    pods = _pod_specs()
    for svc in _of_kind("Service"):
        selector = svc["spec"]["selector"]
        matching = [t for _, t in pods if selector.items() <= t["metadata"]["labels"].items()]
        assert matching, f"Service {svc['metadata']['name']} selects no pod"
        ports = {p["name"]: p["containerPort"] for t in matching for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports and ports[port["targetPort"]] == 9325, svc["metadata"]["name"]
    agents = [(name, c) for name, t in pods for c in t["spec"]["containers"] if c["image"].startswith("mqwatch:")]
    assert {name for name, _ in agents} == {"mqwatch", "orders-consumer"}  # standalone and sidecar
    for name, c in agents:
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name


def test_agent_containers_run_as_non_root_with_config_and_secrets_mounted_as_files():
    config_maps = {d["metadata"]["name"] for d in _of_kind("ConfigMap")}
    for name, template in _pod_specs():
        spec = template["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            if not c["image"].startswith("mqwatch:"):
                continue
            sc = {**spec.get("securityContext", {}), **c.get("securityContext", {})}
            assert sc["runAsNonRoot"] is True and sc.get("runAsUser", 10001) != 0, name
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["name"]: m for m in c["volumeMounts"]}
            assert set(mounts) <= set(volumes), name
            kinds = {next(k for k in ("configMap", "secret", "emptyDir") if k in volumes[m]) for m in mounts}
            assert {"configMap", "secret"} <= kinds, name
            for m in mounts.values():
                volume = volumes[m["name"]]
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in config_maps, name
                    assert c["args"][-1].startswith(m["mountPath"]), "the agent reads its config from the ConfigMap"
                if "secret" in volume:
                    assert m["readOnly"] is True and volume["secret"]["defaultMode"] & 0o077 <= 0o040, name
            assert not any("value" in e and re.search("pass|token|secret", e["name"], re.I) for e in c.get("env", [])), \
                "secrets come from files, not env values"


def _agent_configs(tmp_path):
    """The mqwatch.yaml of every ConfigMap, with secret file paths pointed at temporary files."""
    configs = []
    for cm in _of_kind("ConfigMap"):
        text = cm["data"]["mqwatch.yaml"]
        for secret_path in set(re.findall(r"_file: (/\S+)", text)):
            local = tmp_path / secret_path.strip("/").replace("/", "_")
            local.write_text("not-a-real-password\n")
            text = text.replace(secret_path, str(local))
        path = tmp_path / f"{cm['metadata']['name']}.yaml"
        path.write_text(text)
        configs.append(path)
    return configs


def _mqwatch():
    return [sys.executable, "-m", "mqwatch.agent"]


def test_shipped_agent_configs_pass_mqwatch_validate(tmp_path):
    configs = _agent_configs(tmp_path)
    assert len(configs) == 2
    env = {**os.environ, "KAFKA_BOOTSTRAP": "kafka-0.kafka:9092"}
    for path in configs:
        result = subprocess.run([*_mqwatch(), "validate", "-c", str(path)], capture_output=True, text=True,
                                env=env, timeout=60, cwd=ROOT)
        assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_healthz_healthcheck():
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, re.M)
    assert len(stages) >= 2 and stages[0][1], "a named build stage and a runtime stage"
    final = text[text.rindex("\nFROM"):]
    assert re.search(rf"COPY --from={stages[0][1]} ", final)
    user = re.search(r"^USER\s+(\S+)", final, re.M).group(1)
    assert user.split(":")[0] not in {"root", "0"}
    assert "pip wheel" in text.split("\nFROM")[1], "the build stage builds wheels; the runtime stage installs only them"
    assert "/healthz" in re.search(r"^HEALTHCHECK .*$", final, re.M).group(0)
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in dockerignore and ".git" in dockerignore


def _healthcheck_command() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    cmd = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.M).group(1)
    argv = json.loads(cmd)
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


@pytest.mark.timeout(150)
def test_image_healthcheck_and_shipped_config_work_against_a_real_broker(tmp_path, kafka_bootstrap):
    """The standalone ConfigMap's config, run as the image would run it (PLAINTEXT against tansu
    instead of SASL), collects; the HEALTHCHECK command passes while the agent serves and fails
    once it is gone."""
    config = next(p for p in _agent_configs(tmp_path) if p.name == "mqwatch-config.yaml")
    port = _free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
           "MQWATCH_PORT": str(port)}
    log = open(tmp_path / "agent.log", "w")
    agent = subprocess.Popen([*_mqwatch(), "run", "-c", str(config), "--listen", f"127.0.0.1:{port}"],
                             env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/readyz") is not None, 30, message="agent ready")
        seen = {}

        def collected():
            seen["metrics"] = _get(f"http://127.0.0.1:{port}/metrics") or ""
            return 'mqwatch_up{cluster="shop",system="kafka"} 1.0' in seen["metrics"]

        # The shipped interval is 30 s: under a loaded CI the first collection may miss its
        # timeout on a broker full of other tests' topics; the next one must succeed.
        try:
            wait_until(collected, 75, interval=1, message="a successful collection")
        except AssertionError:
            errors = re.findall(r'mqwatch_(?:up|collect_errors_total)\{[^}]*\} \S+', seen["metrics"])
            raise AssertionError((errors, (tmp_path / "agent.log").read_text()[-3000:])) from None
        check = subprocess.run(_healthcheck_command(), env=env, capture_output=True, timeout=10)
        assert check.returncode == 0, check.stderr
    finally:
        agent.terminate()
        agent.wait(timeout=15)
        log.close()
    check = subprocess.run(_healthcheck_command(), env=env, capture_output=True, timeout=10)
    assert check.returncode != 0


def _docker_context(tmp_path) -> Path:
    """The build context `docker build .` sends: the checkout minus .dockerignore's patterns
    (all of them are names or **/names, matched on every path component)."""
    import fnmatch
    import shutil

    patterns = [p.removeprefix("**/") for p in (ROOT / ".dockerignore").read_text().split() if not p.startswith("#")]

    def ignore(directory, names):
        return {n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)}

    context = tmp_path / "context"
    shutil.copytree(ROOT, context, ignore=ignore)
    return context


@pytest.mark.timeout(180)
def test_image_build_stage_makes_a_wheel_with_the_console_script_and_no_tests(tmp_path):
    """What the Dockerfile's build stage runs, on the context docker would send."""
    import zipfile

    context = _docker_context(tmp_path)
    assert not (context / "tests").exists() and not (context / ".venv").exists()
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", ".", "-w", str(tmp_path / "wheels")],
                            cwd=context, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheel, = (tmp_path / "wheels").glob("mqwatch-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mqwatch = mqwatch.agent.cli:main" in entry_points  # the image's ENTRYPOINT
    assert "kafka = mqwatch.checks.kafka.check:KafkaCheck" in entry_points
    assert "mqwatch/agent/server.py" in names and not any(n.startswith("tests/") for n in names)


SECURE = K8S / "secure"


def _secure_docs(name):
    return [d for d in yaml.safe_load_all((SECURE / name).read_text()) if d]


def test_secure_component_scrapes_over_tls_with_basic_auth_that_matches_the_web_config(tmp_path, pki):
    """deploy/kubernetes/secure: every reference resolves, and the example credentials work."""
    import bcrypt

    from mqwatch.agent.webconfig import load_web_config

    component = yaml.safe_load((SECURE / "kustomization.yaml").read_text())
    assert component["kind"] == "Component" and "# components: [secure]" in (K8S / "kustomization.yaml").read_text()
    secrets = {s["metadata"]["name"]: s for s in _secure_docs("web-secret.example.yaml")}
    for s in secrets.values():
        kubernetes_validate.validate(s, KUBERNETES_VERSIONS[-1], strict=True)
    sm, = _secure_docs("servicemonitor-patch.yaml")
    base_sm, = _of_kind("ServiceMonitor")
    assert sm["metadata"]["name"] == base_sm["metadata"]["name"]
    endpoint, = sm["spec"]["endpoints"]
    assert endpoint["scheme"] == "https" and endpoint["path"] == "/metrics" and endpoint["port"] == "http-metrics"
    auth = endpoint["basicAuth"]
    scrape = secrets[auth["username"]["name"]]["stringData"]
    user, password = scrape[auth["username"]["key"]], scrape[auth["password"]["key"]]
    assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": "mqwatch-tls", "key": "ca.crt"}

    patch, = _secure_docs("deployment-patch.yaml")
    container, = patch["spec"]["template"]["spec"]["containers"]
    base = dict(_pod_specs())[patch["metadata"]["name"]]["spec"]["containers"][0]
    assert container["name"] == base["name"]
    args = container["args"]
    assert args[: len(base["args"])] == base["args"]  # the base command, plus the web config
    web_path = args[args.index("--web.config.file") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v["secret"]["secretName"] for v in patch["spec"]["template"]["spec"]["volumes"]}
    web_secret = volumes[mounts[str(Path(web_path).parent)]]
    web_yml = secrets[web_secret]["stringData"][Path(web_path).name]
    tls_mount = next(m for m, n in mounts.items() if volumes[n] == "mqwatch-tls")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS" and container[probe]["httpGet"]["path"] in ("/healthz", "/readyz")

    # The web config as mounted: its files live in the TLS Secret's mount, it loads (with a
    # real key pair in place of the cert-manager one), and the scrape password matches its hash.
    assert f"{tls_mount}/tls.crt" in web_yml and f"{tls_mount}/tls.key" in web_yml
    local = tmp_path / "web.yml"
    local.write_text(web_yml.replace(f"{tls_mount}/tls.crt", pki.server_cert)
                     .replace(f"{tls_mount}/tls.key", pki.server_key))
    web = load_web_config(str(local))
    assert web.tls is not None and bcrypt.checkpw(password.encode(), web.users[user])


def test_secure_component_builds_with_kustomize(tmp_path):
    import shutil

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the component's references are checked by the test above")
    tree = tmp_path / "kubernetes"
    shutil.copytree(K8S, tree)
    k = tree / "kustomization.yaml"
    k.write_text(k.read_text().replace("# components: [secure]", "components: [secure]"))
    out = subprocess.run([kubectl, "kustomize", str(tree)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mqwatch")
    kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--web.config.file" in c["args"] and c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]} >= {"config", "secrets", "web", "tls"}
    sm = next(d for d in docs if d["kind"] == "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["scheme"] == "https" and sm["spec"]["selector"]  # patched, selector kept


def test_image_healthcheck_speaks_tls_with_mqwatch_scheme_https(tmp_path, pki):
    """With a TLS + basic-auth web config the HEALTHCHECK (MQWATCH_SCHEME=https) still passes:
    /healthz needs no credentials, and plain HTTP would be refused."""
    import bcrypt

    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pw-123456", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"tls_server_config: {{cert_file: {pki.server_cert}, key_file: {pki.server_key}}}\n"
                   f"basic_auth_users: {{prometheus: '{hashed}'}}\n")
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text("agent: {interval: 1s}\nchecks: []\n")
    port = _free_port()
    agent = subprocess.Popen([*_mqwatch(), "run", "-c", str(cfg), "--listen", f"127.0.0.1:{port}",
                              "--web.config.file", str(web)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        env = {**os.environ, "MQWATCH_PORT": str(port), "MQWATCH_SCHEME": "https"}

        def healthy():
            return subprocess.run(_healthcheck_command(), env=env, capture_output=True, timeout=10).returncode == 0
        wait_until(healthy, 30, message="TLS health check passes")
        plain = subprocess.run(_healthcheck_command(), env={**env, "MQWATCH_SCHEME": "http"}, capture_output=True,
                               timeout=10)
        assert plain.returncode != 0 and b"400" in plain.stderr
    finally:
        agent.terminate()
        agent.wait(timeout=15)


# ---- deploy/sharded: the kustomize overlay running the agent as a StatefulSet of shards ----

SHARDED = ROOT / "deploy" / "sharded"


def _merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in patch.items()}}
    return patch


def _kustomize(directory: Path) -> list[dict]:
    """What `kubectl kustomize` renders, for the forms deploy/ uses: resources (files or other
    kustomizations) and strategic-merge patches by path (`$patch: delete`, or maps merged)."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs = []
    for resource in k["resources"]:
        path = directory / resource
        docs += _kustomize(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in k.get("patches", []):
        p = yaml.safe_load((directory / patch["path"]).read_text())
        at = [i for i, d in enumerate(docs) if (d["kind"], d["metadata"]["name"]) == (p["kind"], p["metadata"]["name"])]
        assert len(at) == 1, f"{patch['path']} patches {p['kind']}/{p['metadata']['name']}: {len(at)} matches"
        if p.get("$patch") == "delete":
            del docs[at[0]]
        else:
            docs[at[0]] = _merge(docs[at[0]], p)
    return docs


def test_sharded_overlay_validates_against_the_kubernetes_schema_and_kubectl_renders_the_same():
    docs = _kustomize(SHARDED)
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            _validate_schema(doc, version, f"sharded overlay ({version})")
    import shutil

    if shutil.which("kubectl"):  # the real renderer where installed; the reading above everywhere
        out = subprocess.run(["kubectl", "kustomize", str(SHARDED)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
        key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
        assert sorted(map(key, rendered)) == sorted(map(key, docs))
        assert {key(d): d for d in rendered} == {key(d): d for d in docs}


def test_sharded_overlay_runs_n_shards_each_scraped_once():
    docs = _kustomize(SHARDED)
    kinds = [d["kind"] for d in docs]
    assert "Deployment" not in kinds and kinds.count("StatefulSet") == 1
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]
    container, = [c for c in pod["spec"]["containers"] if c["image"].startswith("mqwatch:")]
    args = container["args"]
    n = int(re.fullmatch(r"auto/(\d+)", args[args.index("--shard") + 1]).group(1))
    assert sts["spec"]["replicas"] == n > 1, "one pod per shard"
    hostname, = [e for e in container["env"] if e["name"] == "HOSTNAME"]
    assert hostname["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # mqwatch-<ordinal>
    # the pods are behind exactly one Service, the headless one the StatefulSet names
    selecting = [s for s in docs if s["kind"] == "Service"
                 and s["spec"]["selector"].items() <= pod["metadata"]["labels"].items()]
    svc, = selecting
    assert svc["metadata"]["name"] == sts["spec"]["serviceName"] and svc["spec"]["clusterIP"] == "None"
    # the ServiceMonitor picks it up and scrapes a port the pods serve: every pod, once
    sm, = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ports = {p["name"] for p in container["ports"]}
    for endpoint in sm["spec"]["endpoints"]:
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]} and endpoint["port"] in ports
    # the pod is the base Deployment's, plus only the shard argument and HOSTNAME (no drift)
    base, = [t for name, t in _pod_specs() if name == "mqwatch"]
    base_container = base["spec"]["containers"][0]
    assert {**container, "args": args[:-2], "env": [e for e in container["env"] if e["name"] != "HOSTNAME"]} == base_container
    assert {**pod["spec"], "containers": [base_container]} == base["spec"] and pod["metadata"] == base["metadata"]
    # and the pod's config is the base's, which `mqwatch validate` accepts (test above)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] in {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
