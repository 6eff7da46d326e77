"""The Prometheus text exposition (format 0.0.4), written directly from snapshots.

It produces exactly the bytes prometheus-client's `generate_latest` would for the same
families (a test compares them), at a fraction of the cost: no Metric/Sample objects per
series, label strings built once per series, and each check's samples rendered once per
snapshot rather than on every publish of any check.

Text is produced in pieces of at most snapshot.PIECE series, never as one string: joining,
encoding or copying a 13 MB exposition is one C call that keeps the interpreter lock for
milliseconds, and a scrape waiting for the lock waits that long (benchmark 4). Between
pieces the collecting thread can hand the lock over.
"""

from __future__ import annotations

import math
import zlib

from mqwatch.agent.metrics import COUNTER, HISTOGRAM
from mqwatch.agent.snapshot import slices

_NEG_INF = float("-inf")


def format_value(v: float) -> str:
    # repr is what floatToGoString returns for everything below 1e6 except -Inf and NaN
    # (which fail the comparison); the rare rest takes the exact slow path.
    if _NEG_INF < v < 1e6:
        return repr(v)
    return float_to_go_string(v)


def float_to_go_string(v: float) -> str:
    """prometheus_client.utils.floatToGoString, which the text format's values follow (Go's
    formatting: exponents from 1e+07 on). Here so that the agent does not import
    prometheus-client at all (agent/process.py says why); tests compare the two."""
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if math.isnan(v):
        return "NaN"
    s = repr(v)
    dot = s.find(".")
    if v > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def escape_label_value(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return v


def label_string(labels) -> str:
    """`{a="1",b="2"}` from (name, value) pairs already sorted by name; "" when there are none."""
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels) + "}"


def header(name: str, typ: str, help: str) -> str:
    doc = help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {typ}\n"


def family_type(typ: str) -> str:
    return typ if typ in (COUNTER, HISTOGRAM) else "gauge"


def render_samples(name: str, typ: str, series) -> list[bytes]:
    """The sample lines of one family, UTF-8, as pieces of at most snapshot.PIECE series each (~270 KB
    of Kafka-shaped text, ~0.1 ms of the lock to join; joined, they are the family's lines):
    `series` is a sequence of ((sorted label pairs), value) as in a Snapshot. Bytes, because
    the body of /metrics is made of these very pieces (gather_pieces), not of a copy."""
    return [_render_piece(name, typ, piece).encode() for piece in slices(series)]


def _render_piece(name: str, typ: str, series) -> str:
    if typ == HISTOGRAM:
        return "".join(_histogram_lines(name, labels, h) for labels, h in series)
    # The hot loop of a render (100k series: 0.2 s): inlined, no call per label or value.
    lines = []
    append = lines.append
    for labels, value in series:
        pairs = []
        for k, v in labels:
            if "\\" in v or "\n" in v or '"' in v:
                v = escape_label_value(v)
            pairs.append(f'{k}="{v}"')
        value = float(value)
        shown = repr(value) if _NEG_INF < value < 1e6 else float_to_go_string(value)
        append(f"{name}{{{','.join(pairs)}}} {shown}\n" if pairs else f"{name} {shown}\n")
    return "".join(lines)


def _histogram_lines(name: str, labels, h) -> str:
    lines = []
    for le, count in h.buckets:
        bound = "+Inf" if le == math.inf else repr(float(le))
        with_le = tuple(sorted((*labels, ("le", bound))))
        lines.append(f"{name}_bucket{label_string(with_le)} {format_value(float(count))}\n")
    lbl = label_string(labels)
    lines.append(f"{name}_count{lbl} {format_value(float(h.count))}\n")
    lines.append(f"{name}_sum{lbl} {format_value(float(h.sum))}\n")
    return "".join(lines)


def render_snapshot(snapshot, metric_def) -> dict[str, list[bytes]]:
    """Metric name -> its rendered sample lines in pieces, for one snapshot (done once per snapshot).

    `metric_def(name)` gives the MetricDef of a name (its type decides the layout)."""
    return {name: render_samples(name, metric_def(name).type, series) for name, series in snapshot.families.items()}


# Encoded pieces of /metrics are about this many bytes: each join/encode holds the lock ~0.1 ms.
PIECE_BYTES = 256 * 1024
GZIP_LEVEL = 5


def gather_pieces(parts) -> list[bytes]:
    """The body of /metrics from `parts` in order: the rendered pieces of a check's families
    (bytes of PIECE_BYTES / 4 or more) as they are, shared with the check's rendering rather
    than copied (a copy would hold 13 MB more at 100k series); the small
    parts between them (str or bytes: family headers, the agent's own series) UTF-8 encoded
    and joined into pieces of about PIECE_BYTES."""
    out, pending, size = [], [], 0
    for part in parts:
        if isinstance(part, bytes) and len(part) >= PIECE_BYTES // 4:
            if pending:
                out.append(b"".join(pending))
                pending, size = [], 0
            out.append(part)
            continue
        pending.append(part.encode() if isinstance(part, str) else part)
        size += len(part)
        if size >= PIECE_BYTES:
            out.append(b"".join(pending))
            pending, size = [], 0
    if pending:
        out.append(b"".join(pending))
    return out


def gzip_pieces(pieces) -> bytes:
    """One gzip member of the concatenated pieces. zlib lets go of the interpreter lock while it
    deflates each piece, so scrapes are served during the compression of a large exposition."""
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
    out = [z.compress(p) for p in pieces]
    out.append(z.flush())
    return b"".join(out)
