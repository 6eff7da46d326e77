"""The core is a plug-in host: it names no broker, built-in checks and their demo parts come
through the entry points a third-party package would use, and nothing imports in a circle."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

from mqwatch.agent.demo import DEMO_ENTRY_POINT_GROUP
from mqwatch.agent.registry import ENTRY_POINT_GROUP, get_check_class, known_kinds

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> dict[str, Path]:
    """Installed module name (`mqwatch.<folder>...`) -> file, for a top-level folder of the repository."""
    return {"mqwatch." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (ROOT / package).rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file, at any depth (function-level ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def test_the_core_imports_no_check():
    offenders = [f"{mod} imports {imp}" for mod, path in _modules("agent").items()
                 for imp, _ in _imports(path) if imp == "mqwatch.checks" or imp.startswith("mqwatch.checks.")]
    assert not offenders, offenders


def test_checks_use_only_the_cores_public_names():
    offenders = [f"{mod} imports {imp}.{name}" for mod, path in _modules("checks").items()
                 for imp, names in _imports(path) if imp.startswith("mqwatch.agent") for name in names if name.startswith("_")]
    assert not offenders, offenders


def test_no_import_cycles_between_modules():
    modules = {**_modules("agent"), **_modules("checks")}
    graph = {mod: {imp for imp, _ in _imports(path) if imp in modules and imp != mod} for mod, path in modules.items()}
    # also `from mqwatch.agent import metrics`: the submodule is the dependency
    for mod, path in modules.items():
        for imp, names in _imports(path):
            graph[mod] |= {f"{imp}.{n}" for n in names if f"{imp}.{n}" in modules}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert not cycles, cycles


def test_built_in_checks_and_their_demo_parts_come_from_entry_points():
    checks = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    demos = {ep.name for ep in entry_points(group=DEMO_ENTRY_POINT_GROUP)}
    assert {"kafka", "redis", "pulsar"} <= set(checks) and set(checks) <= set(known_kinds())
    assert {"kafka", "redis", "pulsar"} <= demos
    for kind in ("kafka", "redis", "pulsar"):
        assert get_check_class(kind).kind == kind
        assert (ROOT / "checks" / kind / "embedded.py").exists(), f"{kind} brings its own broker launcher"
    source = (ROOT / "agent" / "registry.py").read_text() + (ROOT / "agent" / "demo.py").read_text()
    for name in ("KafkaCheck", "RedisCheck", "PulsarCheck", "mqwatch.checks.kafka", "mqwatch.checks.redis", "mqwatch.checks.pulsar"):
        assert name not in source


def _plugin(tmp_path: Path) -> dict:
    """A third-party package installed the way pip would: a dist-info with entry points."""
    pkg = tmp_path / "mqwatch_echo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from mqwatch.agent.check import Check
        from mqwatch.agent.metrics import GAUGE, MetricDef
        from mqwatch.agent.schema import Field, Schema, Str

        class EchoCheck(Check):
            kind = "echo"
            config_schema = Schema({"url": Field(Str())})
            metrics = (MetricDef("mqwatch_echo_up", GAUGE, "Whether the echo server answered.", ()),)

            def collect(self, out):
                import urllib.request
                with urllib.request.urlopen(self.options.url, timeout=self.timeout):
                    out.add("mqwatch_echo_up", 1)

        class Impostor(EchoCheck):
            kind = "kafka"
    """))
    (pkg / "demo.py").write_text(textwrap.dedent("""
        import sys, tempfile
        from mqwatch.agent.demo import DemoPart
        from mqwatch.agent.embedded import free_port, spawn

        def start_broker():
            port = free_port()
            return spawn("echo", [sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1"], port,
                         tempfile.mkdtemp(prefix="mqwatch-echo-"))

        def start_workload(broker):
            return DemoPart(name=f"echo at {broker.address}", describe=["an HTTP server answering"],
                            checks=[{"kind": "echo", "name": "e", "url": f"http://{broker.address}/"}], stop=lambda: None)
    """))
    dist = tmp_path / "mqwatch_echo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mqwatch-echo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[mqwatch.checks]\necho = mqwatch_echo:EchoCheck\nkafka = mqwatch_echo:Impostor\n\n"
        "[mqwatch.demo]\necho = mqwatch_echo.demo\n")
    # the plugin's dist-info after the installed mqwatch on the path, as a later install would be
    return {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT.as_posix(), *sys.path[1:], tmp_path.as_posix()])}


def test_a_third_party_demo_part_joins_the_demo_and_cannot_take_over_a_kind(tmp_path):
    script = textwrap.dedent("""
        import logging, socket
        logging.basicConfig(level=logging.WARNING)
        from mqwatch.agent.demo import start_parts, stop_parts
        from mqwatch.agent.registry import get_check_class
        from tests.helpers import collect_once
        print("kafka is", get_check_class("kafka").__name__)
        parts = start_parts(only=["echo"])
        port = int(parts[0].name.rpartition(":")[2])
        snap = collect_once(parts[0].checks[0])
        print("echo up", snap.value("mqwatch_echo_up"))
        stop_parts(parts)
        with socket.socket() as s:
            print("after stop", "closed" if s.connect_ex(("127.0.0.1", port)) else "open")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_plugin(tmp_path),
                         cwd=ROOT, timeout=90)
    assert run.returncode == 0, run.stderr
    assert "kafka is KafkaCheck" in run.stdout
    assert "plugin_ignored" in run.stderr and "mqwatch_echo:Impostor" in run.stderr
    assert "echo up 1" in run.stdout
    assert "after stop closed" in run.stdout


def test_code_imports_the_packages_by_their_installed_names():
    """From a clone the folders are importable as `agent`, `checks`... too (pytest puts the repository on
    sys.path); a module imported under both names would exist twice, with two copies of its state."""
    bare = {"agent", "checks", "alerts", "dashboards"}
    offenders = [f"{path.relative_to(ROOT)} imports {imp}"
                 for folder in ("agent", "checks", "alerts", "dashboards", "tests", "benchmarks")
                 for path in (ROOT / folder).rglob("*.py")
                 for imp, _ in _imports(path) if imp.split(".")[0] in bare]
    assert not offenders, offenders
