"""From an evaluation's merged sums to what a person reads: `metrics.json`, the table printed
and written as `report.md`, and a self-contained `report.html` (tables, the rate-distortion
plot and the modality's pictures, inlined)."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from tokcore.eval.state import EvalState
from tokcore.metrics.frechet import frechet_distance
from tokcore.runtime.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from tokcore.tokens.store import TokenStore

TOKENIZER = "tokenizer"


def versions() -> dict[str, str]:
    """tokcore's version and every installed plugin's."""
    from tokcore import registry
    from tokcore._version import __version__

    return {"tokcore": __version__, **{p.dist: p.version for p in registry.plugins() if p.dist not in ("tokcore", "<local>")}}


def _column_kind(name: str, plan: Any) -> str:
    if name == TOKENIZER:
        return "tokenizer"
    if name in {c["name"] for c in plan.compare}:
        return "compare"
    return "baseline"


def summarize(plan: Any, state: EvalState, store: TokenStore, seconds: float) -> dict[str, Any]:
    """The machine-readable result (`metrics.json`)."""
    from tokcore import registry
    from tokcore.tokenizer import build_modality

    modality = build_modality(_plan_modality(plan))
    units = {u: n / max(state.samples, 1) for u, n in state.units.items()}  # per sample
    columns: dict[str, Any] = {}
    order = [TOKENIZER, *(c["name"] for c in plan.compare), *plan.baselines]
    rank = lambda n: (order.index(n.split("@")[0]) if n.split("@")[0] in order else len(order), n)  # noqa: E731
    for name, col in sorted(state.columns.items(), key=lambda item: rank(item[0])):
        bits = col.bits / max(col.samples, 1)
        entry: dict[str, Any] = {
            "kind": _column_kind(name, plan), "samples": col.samples, "bits_per_sample": bits,
            **{f"bits_per_{u}": bits / n for u, n in units.items() if n},
            "metrics": modality.metrics_from_totals(col.totals)}
        base = name.split("@")[0]
        if base in plan.baselines:
            entry["baseline"] = base
            entry["label"] = registry.get("baseline", base).label or base
            entry["rate_multiple"] = float(name.split("@")[1].rstrip("x")) if "@" in name else 1.0
            entry["settings"] = dict(col.settings)
        if col.codes is not None:
            entry["codebook"] = {"size": col.codes.codebook_size, **col.codes.stats()}
        if len(col.lengths) > 1:
            lengths = sorted(col.lengths.elements())
            entry["lengths"] = {"min": lengths[0], "max": lengths[-1], "mean": sum(lengths) / len(lengths),
                                "histogram": {str(k): v for k, v in sorted(col.lengths.items())}}
        elif col.lengths:
            entry["tokens_per_sample"] = next(iter(col.lengths))
        if col.lengths:
            mean_tokens = sum(k * v for k, v in col.lengths.items()) / sum(col.lengths.values())
            entry.update({f"tokens_per_{u}": mean_tokens / n for u, n in units.items() if n})
        columns[name] = entry
    distribution: dict[str, dict[str, float]] = {}
    for key, stats in state.features.items():
        network, column = key.split("/", 1)
        if column != "input" and stats.n >= 2:
            distribution.setdefault(network, {})[column] = frechet_distance(state.features[f"{network}/input"], stats)
    return {
        "checkpoint": plan.checkpoint, "weights_sha256": plan.weights_sha256, "split": plan.split,
        "modality": plan.modality, "data": plan.data, "samples": state.samples, "failed": state.failed,
        "tokenize_failed": store.failed, "seed": plan.seed, "versions": versions(),
        "compare": plan.compare, "baselines": plan.baselines, "features": plan.features, "curve": plan.curve,
        "units_per_sample": units, "columns": columns, "distribution": distribution,
        # metrics.json sorts its keys; the tables keep these orders
        "order": {"columns": list(columns), "metrics": list(columns[TOKENIZER]["metrics"]) if TOKENIZER in columns else []},
        "seconds": seconds,
    }


def _plan_modality(plan: Any) -> dict[str, Any]:
    from tokcore.run import Checkpoint

    return Checkpoint(plan.checkpoint).meta()["modality"]


# -- text ----------------------------------------------------------------------------------------------------
def table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main table: one row per codec at the tokenizer's rate (curve points left out)."""
    order = result["order"]
    cols = {n: result["columns"][n] for n in order["columns"] if result["columns"][n].get("rate_multiple", 1.0) == 1.0}
    metric_names = order["metrics"]
    units = list(result["units_per_sample"])
    fd = sorted(result["distribution"])
    head = ["codec", "bits/sample", *[f"bits/{u}" for u in units], *metric_names, *fd]
    rows = []
    for name, c in cols.items():
        label = name if c["kind"] != "baseline" else f"{c['label']} ({', '.join(c['settings'])})"
        if len(label) > 48:
            label = c.get("label", name) + " (several settings)"
        rows.append([label, f"{c['bits_per_sample']:.1f}", *[f"{c.get(f'bits_per_{u}', float('nan')):.4g}" for u in units],
                     *[f"{c['metrics'].get(m, float('nan')):.4g}" for m in metric_names],
                     *[f"{result['distribution'][f].get(name, float('nan')):.4g}" for f in fd]])
    return head, rows


def format_text(result: dict[str, Any]) -> str:
    head, rows = table_rows(result)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    tok = result["columns"][TOKENIZER]
    out = [f"{result['modality']}: {result['samples']} samples of split '{result['split']}' "
           f"({len(result['failed']) + len(result['tokenize_failed'])} failed)", line(head), *map(line, rows)]
    for name in result.get("baselines", []):
        if name not in result["columns"]:
            curve = sorted(c["bits_per_sample"] for c in result["columns"].values() if c.get("baseline") == name)
            lowest = f"; its lowest point on the curve spends {curve[0]:.0f}" if curve else ""
            out.append(f"{name}: no setting fits the tokenizer's {tok['bits_per_sample']:.0f} bits per sample{lowest}")
    for name in result["order"]["columns"]:
        c = result["columns"][name]
        if "codebook" in c:
            cb = c["codebook"]
            per = cb["used_per_codebook"]
            used = f"{per[0]}/{cb['size']}" if len(per) == 1 else f"per stage {' '.join(map(str, per))} of {cb['size']}"
            out.append(f"{name}: codebook usage {100 * cb['usage']:.1f}% ({used}), perplexity {cb['perplexity']:.1f}, "
                       f"dead codes {cb['dead_codes']:.0f}")
        if "lengths" in c:
            ln = c["lengths"]
            out.append(f"{name}: tokens per sample {ln['min']}-{ln['max']} (mean {ln['mean']:.1f})")
    if "tokens_per_sample" in tok:
        n = tok["tokens_per_sample"]
        out.append(f"tokenizer: {n} token{'s' if n != 1 else ''} per sample")
    return "\n".join(out)


def format_markdown(result: dict[str, Any]) -> str:
    head, rows = table_rows(result)
    md = [f"# Evaluation of `{result['checkpoint']}`", "",
          f"Split `{result['split']}`: {result['samples']} samples; seed {result['seed']}; "
          f"weights sha256 `{result['weights_sha256'][:16]}`; "
          + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", "```", format_text(result), "```", ""]
    return "\n".join(md)


# -- pictures ----------------------------------------------------------------------------------------------
def rd_plot(result: dict[str, Any]) -> bytes | None:
    """Metric against bits per sample: a point per tokenizer, a curve per baseline; None
    without matplotlib (an optional dependency of core: `pip install matplotlib`)."""
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = result["columns"]
    metric = next(iter(result["order"]["metrics"]), None)
    if metric is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    curves: dict[str, list[tuple[float, float]]] = {}
    for name, c in cols.items():
        value = c["metrics"].get(metric)
        if value is None or not math.isfinite(value):
            continue
        if c["kind"] == "baseline":
            curves.setdefault(c["label"], []).append((c["bits_per_sample"], value))
        else:
            ax.scatter([c["bits_per_sample"]], [value], s=50, zorder=3, label=name)
    for label, pts in curves.items():
        pts.sort()
        ax.plot(*zip(*pts), marker=".", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bits per sample")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_pictures(out: Path, state: EvalState, modality: Any, order: list[str]) -> list[Path]:
    """The modality's pictures of the picked samples, the codecs in `order` (the table's)."""
    import torch

    if not state.pictures:
        return []
    picked = [state.pictures[p] for p in sorted(state.pictures)]
    names = [n for n in order if n in picked[0]]
    stack = lambda xs: torch.stack(xs) if isinstance(xs[0], torch.Tensor) else list(xs)  # noqa: E731
    inputs = stack([p["input"] for p in picked])
    columns = {n: stack([p[n] for p in picked]) for n in names if all(n in p for p in picked)}
    return modality.eval_pictures(inputs, columns, out / "samples")


def _inline(path: Path) -> str:
    if path.suffix == ".txt":
        return f"<h3>{html.escape(path.name)}</h3><pre>{html.escape(path.read_text(encoding='utf-8'))}</pre>"
    mime = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}.get(path.suffix)
    if mime is None:
        return f"<p>{html.escape(path.name)}</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(path.name)}"><figcaption>' \
           f"{html.escape(path.name)}</figcaption></figure>"


def format_html(result: dict[str, Any], plot: bytes | None, pictures: list[Path]) -> str:
    head, rows = table_rows(result)
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows) + "</table>"
    plot_html = (f'<img src="data:image/png;base64,{base64.b64encode(plot).decode()}" alt="rate-distortion">'
                 if plot else "<p>(matplotlib is not installed: pip install matplotlib for the plot)</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>tokcore eval</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} td:first-child,th:first-child{{text-align:left}}
img{{max-width:100%}} pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>
<h1>Evaluation of {html.escape(result['checkpoint'])}</h1>
<p>Split <b>{html.escape(result['split'])}</b>, {result['samples']} samples, seed {result['seed']},
weights sha256 <code>{result['weights_sha256'][:16]}</code>; {html.escape(', '.join(f'{k} {v}' for k, v in result['versions'].items()))}</p>
<h2>At the tokenizer's rate</h2>{table}
<h2>Rate and distortion</h2>{plot_html}
<h2>Samples</h2>{''.join(_inline(p) for p in pictures)}
<h2>Details</h2><pre>{html.escape(format_text(result))}</pre>
</body></html>
"""


def write_reports(out: Path, result: dict[str, Any], state: EvalState | None = None, print_only: bool = False) -> None:
    """Print the table; unless `print_only`, write metrics.json, report.md and report.html."""
    text = format_text(result)
    if not print_only:
        from tokcore.run import Checkpoint
        from tokcore.tokenizer import build_modality

        modality = build_modality(Checkpoint(result["checkpoint"]).meta()["modality"])
        pictures = write_pictures(out, state, modality, result["order"]["columns"]) if state is not None else []
        plot = rd_plot(result)
        if plot:
            atomic_write_bytes(out / "rate_distortion.png", plot)
        atomic_write_text(out / "report.md", format_markdown(result))
        atomic_write_text(out / "report.html", format_html(result, plot, pictures))
        atomic_write_json(out / "metrics.json", result)  # last: its presence marks a finished evaluation
    print(text)
    print(f"report: {out / 'report.html'}\nmetrics: {out / 'metrics.json'}")
