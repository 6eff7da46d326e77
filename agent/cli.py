"""mqwatch command line: run, check, validate, metrics, demo."""

from __future__ import annotations

import argparse
import json
import os
import logging
import signal
import sys
import threading

from mqwatch.agent import __version__
from mqwatch.agent.assets import add_commands
from mqwatch.agent.logs import setup_logging
from mqwatch.agent.redact import redact
from mqwatch.agent.memtrim import tune_malloc

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("mqwatch.cli")

SHARD_HELP = ("collect only this replica's share: I/N (0 <= I < N) or auto/N (I from the number at the end of "
              "HOSTNAME, a StatefulSet pod's ordinal); wins over MQWATCH_SHARD and agent.shard")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mqwatch", description="Observability agent for Kafka, Pulsar and Redis.")
    p.add_argument("--version", action="version", version=f"mqwatch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="serve the agent")
    run.add_argument("-c", "--config", required=True, help="config file (YAML)")
    run.add_argument("--listen", help="override agent.listen, e.g. 127.0.0.1:9325")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override agent.log_level")
    run.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                     help="TLS and basic auth for every endpoint (exporter-toolkit format); overrides agent.web_config_file")
    run.add_argument("--web.enable-lifecycle", dest="enable_lifecycle", action="store_true",
                     help="serve POST /-/reload (SIGHUP reloads either way)")
    run.add_argument("--shard", metavar="I/N", help=SHARD_HELP)

    check = sub.add_parser("check", help="collect every check once and print the result")
    check.add_argument("-c", "--config", required=True, help="config file (YAML)")
    check.add_argument("--format", choices=["table", "json", "prom"], default="table")
    check.add_argument("--shard", metavar="I/N", help=SHARD_HELP)

    val = sub.add_parser("validate", help="validate a config file and list every error")
    val.add_argument("-c", "--config", required=True, help="config file (YAML)")

    met = sub.add_parser("metrics", help="print the catalog of every metric mqwatch can export")
    met.add_argument("--format", choices=["table", "markdown"], default="table")

    p.set_defaults(extra_handlers=add_commands(sub))

    demo = sub.add_parser("demo", help="start embedded brokers with an e-commerce workload and run the agent on them")
    demo.add_argument("--listen", default="127.0.0.1:9325", help="where the agent listens (default 127.0.0.1:9325)")
    demo.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: run until Ctrl-C)")
    demo.add_argument("--no-prometheus", action="store_true",
                      help="do not start Prometheus and Alertmanager (started by default when installed)")
    demo.add_argument("--with-prometheus", action="store_true", help="the default; kept for older scripts")
    demo.add_argument("--log-file", help="where client and agent logs go (default: a new file, named in the banner)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors and 0 on --help/--version
        return int(e.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    tune_malloc()  # before any thread (and its arena) exists
    handler = {"run": cmd_run, "check": cmd_check, "validate": cmd_validate, "metrics": cmd_metrics, "demo": cmd_demo,
               **args.extra_handlers}
    try:
        return handler[args.command](args)
    except BrokenPipeError:  # `mqwatch metrics | head`: the reader has all it wanted
        _silence_stdout()
        return EXIT_OK


def _silence_stdout() -> None:
    """After the reader closed the pipe, point stdout at /dev/null so that the interpreter's
    final flush does not raise again (the recipe in Python's signal module docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _write(text: str) -> None:
    """Write to stdout; a closed pipe (`| head`) ends the output quietly."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _load(path: str, loader=None):
    """The loaded file, or None after printing every error as file:line: key: problem."""
    from mqwatch.agent.config import load_config
    from mqwatch.agent.schema import ConfigErrors

    try:
        return (loader or load_config)(path)
    except ConfigErrors as e:
        for err in e.errors:
            print(str(err), file=sys.stderr)
        print(f"{path}: {len(e.errors)} error(s)", file=sys.stderr)
        return None


def _load_web(path: str):
    """(ok, WebConfig or None): `validate` and start-up fail on a broken web config, not the first scrape."""
    if not path:
        return True, None  # webconfig (bcrypt, yaml schema) is not even imported: 1.7 MB of RSS
    from mqwatch.agent.webconfig import load_web_config

    web = _load(path, load_web_config)
    return web is not None, web


def cmd_validate(args) -> int:
    cfg = _load(args.config)
    if cfg is None or not _load_web(cfg.agent.web_config_file)[0]:
        return EXIT_USAGE
    print(f"{args.config}: ok ({len(cfg.checks)} checks: {', '.join(c.key for c in cfg.checks)})")
    return EXIT_OK


def cmd_metrics(args) -> int:
    from mqwatch.agent.metrics import catalog, render_markdown, render_table

    entries = catalog()
    _write(render_markdown(entries) if args.format == "markdown" else render_table(entries))
    return EXIT_OK


def _shard(args, cfg):
    """The shard to run as (flag > MQWATCH_SHARD > agent.shard), or None after saying why not."""
    from mqwatch.agent import sharding

    try:
        return sharding.resolve(getattr(args, "shard", None), os.environ, cfg.agent.shard)
    except sharding.ShardError as e:
        print(f"mqwatch: {e}", file=sys.stderr)
        return None


def cmd_check(args) -> int:
    from mqwatch.agent.app import build_check
    from mqwatch.agent.exporter import Exporter
    from mqwatch.agent.scheduler import close_check, collect_all

    setup_logging("warning")
    cfg = _load(args.config)
    if cfg is None:
        return EXIT_USAGE
    shard = _shard(args, cfg)
    if shard is None:
        return EXIT_USAGE
    pairs = [(c, build_check(c, shard)) for c in cfg.checks]
    try:
        snaps = collect_all(pairs)
    finally:
        for _, check in pairs:
            close_check(check)
    exporter = Exporter(shard=shard)
    for (c, _), snap in zip(pairs, snaps):
        exporter.publish(snap, c.kind)
    if args.format == "prom":
        text = exporter.body().decode()
    elif args.format == "json":
        text = json.dumps([_snapshot_json(c.kind, s) for (c, _), s in zip(pairs, snaps)], indent=2) + "\n"
    else:
        text = _snapshot_table([(c.kind, s) for (c, _), s in zip(pairs, snaps)])
    _write(redact(text))  # label values and errors may quote what a broker echoed
    if args.format != "table":  # the table says it itself; JSON and exposition text are for machines
        for (c, _), s in zip(pairs, snaps):
            if not s.ok:
                print(redact(f"check {c.key} failed: {s.error}"), file=sys.stderr)
    return EXIT_OK if all(s.ok for s in snaps) else EXIT_CHECK_FAILED


def _value_json(v):
    from mqwatch.agent.snapshot import Histogram

    if isinstance(v, Histogram):
        return {"buckets": [["+Inf" if le == float("inf") else le, c] for le, c in v.buckets], "sum": v.sum, "count": v.count}
    return v


def _snapshot_json(kind, s) -> dict:
    return {
        "kind": kind, "name": s.cluster, "ok": s.ok, "error": s.error, "duration_seconds": round(s.duration, 6),
        "errors": [{"reason": r, "message": m} for r, m in s.errors],
        "series": [
            {"metric": name, "labels": {k: v for k, v in labels if k not in ("system", "cluster")}, "value": _value_json(value)}
            for name, series in sorted(s.families.items()) for labels, value in series
        ],
    }


def number(v: float) -> str:
    """A value in full: timestamps and large counts exactly, fractions as the shortest text
    that reads back as the same float (never `1.79613e+09`)."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer() and abs(v) < 2**63:
        return str(int(v))
    return repr(float(v))


def _snapshot_table(items) -> str:
    out = []
    for kind, s in items:
        partial = list(s.errors)
        if s.ok:
            state = "ok"
        else:
            # the fatal error is the last of s.errors (scheduler.Collector): print it once, here
            reason = partial.pop()[0] if partial and partial[-1][1] == s.error else ""
            state = f"FAILED{f' [{reason}]' if reason else ''}: {s.error}"
        out.append(f"== {kind}/{s.cluster}: {state} ({s.duration:.3f}s, {s.series} series)")
        for reason, message in partial:
            out.append(f"   error[{reason}]: {message}")
        for name, series in sorted(s.families.items()):
            for labels, value in sorted(series):
                lbl = ",".join(f'{k}="{v}"' for k, v in labels if k not in ("system", "cluster"))
                shown = number(value) if isinstance(value, float | int) else \
                    f"count={number(value.count)} sum={number(value.sum)}"
                out.append(f"   {name}{{{lbl}}} {shown}")
    return "\n".join(out) + "\n"


def cmd_run(args) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return EXIT_USAGE
    shard = _shard(args, cfg)
    if shard is None:
        return EXIT_USAGE
    ok, web = _load_web(args.web_config_file or cfg.agent.web_config_file)
    if not ok:
        return EXIT_USAGE
    setup_logging(args.log_level or cfg.agent.log_level)
    return serve(cfg, args.listen or cfg.agent.listen, web=web, lifecycle=args.enable_lifecycle, shard=shard)


def serve(cfg, listen: str, stop_event: threading.Event | None = None, on_ready=None, web=None,
          lifecycle: bool = False, shard=None) -> int:
    from mqwatch.agent import front
    from mqwatch.agent.app import Agent
    from mqwatch.agent.backend import AgentBackend
    from mqwatch.agent.logs import destination
    from mqwatch.agent.sharding import WHOLE
    from mqwatch.agent.sockio import listen_socket, split_listen

    agent = Agent(cfg, shard=shard or WHOLE)
    host, port = split_listen(listen)
    try:
        sock = listen_socket(host, port)
    except OSError as e:
        log.error("listen_failed address=%s error=%s", listen, e.strerror)
        print(f"mqwatch: cannot listen on {listen}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    backend = AgentBackend(agent)
    if front.supported():  # the HTTP server in a child process: scrapes never wait for a collection
        level, log_file = destination()
        server = front.Front(backend, sock, web=web, lifecycle=lifecycle, log_level=level, log_file=log_file)
    else:
        from mqwatch.agent.server import HTTPServer

        server = HTTPServer(backend, web=web, lifecycle=lifecycle, sock=sock)
    stop = stop_event or threading.Event()
    _install_signals(agent, stop)
    # The checks first: a client queued on the socket is answered as soon as the server runs,
    # and /status must list every configured check by then.
    agent.start(freeze=True)
    try:
        server.start()
    except RuntimeError as e:
        log.error("serving_failed error=%s", e)
        print(f"mqwatch: {e}", file=sys.stderr)
        agent.stop()
        sock.close()
        return EXIT_CHECK_FAILED
    log.info("agent_started listen=%s port=%d tls=%s basic_auth=%s lifecycle=%s checks=%d version=%s shard=%s", host,
             server.port, bool(web and web.tls), bool(web and web.users), lifecycle, len(cfg.checks), __version__,
             agent.shard)
    if on_ready:
        on_ready(server.port)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    log.info("agent_stopping")
    server.stop()
    agent.stop()
    return EXIT_OK


def _install_signals(agent, stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=agent.reload, daemon=True).start())


def cmd_demo(args) -> int:
    from mqwatch.agent import demo
    from mqwatch.agent.config import load_config

    log_path = args.log_file or demo.default_log_path()
    setup_logging("info", file=log_path)  # the console is for the banner and changes of state
    session = demo.start(args, log_path)
    if session is None:
        return EXIT_CHECK_FAILED
    try:
        return serve(load_config(session.config_path), args.listen, stop_event=session.stop_event,
                     on_ready=session.announce)
    finally:
        session.close()


if __name__ == "__main__":
    raise SystemExit(main())
