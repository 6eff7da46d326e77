"""What ships with mqwatch besides the agent: alert rules and dashboards, as commands.

`pip install mqwatch` alone gives a user everything: `mqwatch alerts > rules.yml` prints the rules
generated from the packaged thresholds (and the user's overrides), `mqwatch dashboards DIR`
writes the Grafana dashboards. Both read package data, so they work the same from a wheel and
from a clone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"  # a sibling package, in a clone and installed


def add_commands(sub) -> dict:
    """Register the subcommands; returns {name: handler}."""
    al = sub.add_parser("alerts", help="print the Prometheus alert rules (generated from the shipped thresholds)")
    al.add_argument("--thresholds", metavar="FILE",
                    help="YAML with only the thresholds you change (see alerts/thresholds.yaml and alerts/README.md)")
    al.add_argument("--prometheusrule", action="store_true", help="print a Prometheus Operator PrometheusRule instead")
    da = sub.add_parser("dashboards", help="write the Grafana dashboards (JSON) into a directory")
    da.add_argument("directory", help="where to write them (created if missing)")
    return {"alerts": cmd_alerts, "dashboards": cmd_dashboards}


def cmd_alerts(args) -> int:
    from mqwatch.alerts import generate

    try:
        overrides = yaml.safe_load(Path(args.thresholds).read_text()) if args.thresholds else None
        config = generate.load_config(overrides)
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"mqwatch alerts: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(generate.render_prometheusrule(config) if args.prometheusrule else generate.render_rules(config))
    return 0


def cmd_dashboards(args) -> int:
    out = Path(args.directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for source in sorted(DASHBOARDS.glob("*.json")):
            (out / source.name).write_bytes(source.read_bytes())
            written.append(source.name)
    except OSError as e:
        print(f"mqwatch dashboards: {e}", file=sys.stderr)
        return 2
    if not written:
        print(f"mqwatch dashboards: no dashboards found in {DASHBOARDS} (a broken install?)", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} dashboards to {out}: {', '.join(written)}")
    return 0
