"""The command line as a user types it: `check` output read by a person or a pipe, and the
README's commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import redis

from mqwatch.agent.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def mqwatch(*args, **kw):
    return subprocess.run([sys.executable, "-m", "mqwatch.agent", *args], capture_output=True, text=True, timeout=60, cwd=ROOT, **kw)


def test_check_table_prints_values_in_full_and_a_failure_once(tmp_path, redis_server):
    r = redis.Redis(host="127.0.0.1", port=redis_server.port, db=11)
    r.flushdb()
    for _ in range(25):  # 1,250,000 entries: a count the old `%g` printed as 1.25e+06
        r.lpush("jobs:bulk", *["x"] * 50_000)
    failed_at = 1796135066.25  # Sidekiq's dead set scores jobs by when they died
    r.sadd("queues", "mailers")
    r.zadd("dead", {json.dumps({"class": "Mailer", "queue": "mailers", "jid": "j1", "error_class": "Boom",
                                "failed_at": failed_at}): failed_at})
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text("agent: {timeout: 3s}\nchecks:\n"
                   f"  - {{kind: redis, name: jobs, url: 'redis://127.0.0.1:{redis_server.port}/11'}}\n"
                   f"  - {{kind: redis, name: gone, url: 'redis://127.0.0.1:{free_port()}/0'}}\n")
    try:
        run = mqwatch("check", "-c", str(cfg))
    finally:
        r.flushdb()
    assert run.returncode == 1
    assert re.search(r'mqwatch_queue_messages\{[^}]*queue="jobs:bulk"\} 1250000$', run.stdout, re.M), run.stdout
    assert re.search(r'mqwatch_dlq_last_message_timestamp_seconds\{dlq="dead",[^}]*\} 1796135066\.25$', run.stdout, re.M)
    assert "e+0" not in run.stdout
    failure = re.search(r"^== redis/gone: FAILED \[(\w+)\]: (.+) \(", run.stdout, re.M)
    assert failure, run.stdout
    # said once: not again as an error line, not again on stderr
    assert (run.stdout + run.stderr).count(failure.group(2)) == 1, run.stdout + run.stderr


def test_check_json_into_head_ends_quietly(tmp_path, redis_server):
    r = redis.Redis(host="127.0.0.1", port=redis_server.port, db=10)
    r.flushdb()
    pipe = r.pipeline(transaction=False)
    for i in range(3000):  # far more JSON than a pipe holds, so `head` closes it mid-write
        pipe.lpush(f"jobs:q{i}", "x")
    pipe.execute()
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text(f"checks:\n  - {{kind: redis, name: jobs, url: 'redis://127.0.0.1:{redis_server.port}/10', "
                   "max_keys: 5000}\n")
    try:
        run = subprocess.run(["bash", "-c", f'"{sys.executable}" -m mqwatch.agent check -c "{cfg}" --format json | head -c 200; '
                              'echo "exit=${PIPESTATUS[0]}" >&2'], capture_output=True, text=True, timeout=60, cwd=ROOT)
    finally:
        r.flushdb()
    assert run.stdout.startswith("[")
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run.stderr
    assert run.stderr.strip() == "exit=0"


def test_every_command_and_option_in_the_readme_exists():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `\./mqw ([a-z-]+)([^`]*)` \|", readme, re.M)
    assert {c for c, _ in rows} >= {"run", "check", "validate", "metrics", "demo", "--version"}
    for command, rest in rows:
        if command.startswith("--"):
            assert mqwatch(command).returncode == 0
            continue
        helptext = mqwatch(command, "--help").stdout
        for option in re.findall(r"--[a-z-]+", rest):
            assert option in helptext, f"./mqw {command}: README names {option}, --help does not"
    usage = subprocess.run([str(ROOT / "mqw"), "--help"], capture_output=True, text=True, timeout=10).stdout
    assert usage.splitlines()[1].strip().startswith("./mqw demo") and "set -euo" not in usage and "#" not in usage
    # and the README's prose uses what a clone has (./mqw), naming `mqwatch` as what pip installs
    assert "after\n`pip install mqwatch` the same commands are `mqwatch COMMAND`" in readme
