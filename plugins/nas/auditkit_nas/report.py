"""After the search: nas.json, the Pareto models, the chosen model's scorecard, nas_report.html."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from auditkit.render import svg
from auditkit.render.figures import render_figure
from auditkit.render.fmt import format_number
from auditkit_nas.objectives import Objective
from auditkit_nas.search import (
    SearchData,
    Settings,
    log,
    make_child,
    mark_interrupted,
    metadata_for,
    open_study,
    prepare_data,
    weights_path,
)
from auditkit_nas.space import build
from auditkit_nas.summary import summarize, write_json

NAS_JSON = "nas.json"
REPORT = "nas_report.html"
PARETO_DIR = "pareto"
SCORECARD_DIR = "chosen"


# --- models ----------------------------------------------------------------------------------


def trained_child(trial: Mapping[str, Any], data: SearchData, settings: Settings, out: Path) -> Any:
    """A finished child with its trained weights (retrained from its seed if another machine
    trained it and its weights are not here: the recipe is deterministic)."""
    arch = trial["architecture"]
    weights = weights_path(out, trial["number"])
    if weights.is_file():
        from safetensors.torch import load_file

        model = build(arch)
        model.load_state_dict(load_file(str(weights)))
        return model.eval()
    return make_child(arch, data, settings, trial["number"])


def save_pareto_models(document: dict[str, Any], data: SearchData, settings: Settings, out: Path) -> dict[str, str]:
    """Each front model as a self-describing torch.export file (architecture in its metadata)."""
    from auditkit.loading import save_model

    folder = out / PARETO_DIR
    folder.mkdir(parents=True, exist_ok=True)
    by_number = {t["number"]: t for t in document["trials"]}
    wanted = {n: folder / f"trial-{n:04d}.pt2" for n in document["pareto_front"]}
    for stale in folder.glob("trial-*.pt2"):
        if stale not in wanted.values():
            stale.unlink()  # no longer on the front
    for number, path in wanted.items():
        if path.is_file():
            continue
        trial = by_number[number]
        extra = {"nas": {
            "architecture": trial["architecture"],
            "factory": "auditkit_nas.space:nas_network",
            "trial": number,
            "metrics": trial["metrics"],
            "objectives": [o["name"] for o in document["objectives"]],
        }}
        model = trained_child(trial, data, settings, out)
        metadata = metadata_for(data.audit, extra)
        save_model(model, path, example_input=data.valid.x[:2], metadata=metadata)
        save_architecture_file(model, path.with_suffix(".safetensors"), trial["architecture"], metadata)
    for stale in folder.glob("trial-*.safetensors"):
        if stale.with_suffix(".pt2") not in wanted.values():
            stale.unlink()
    return {str(n): f"{PARETO_DIR}/{p.name}" for n, p in wanted.items()}


def save_architecture_file(model: Any, path: Path, arch: Mapping[str, Any], metadata: Any) -> Path | None:
    """Also save the model as a core "architecture file" (safetensors weights + the recipe
    ``nas_network(**architecture)``, no pickle, no code) where the core has that format."""
    try:
        from auditkit.loading.archfile import save_arch_model
    except ImportError:  # a core without architecture files: the torch.export file is enough
        return None
    return save_arch_model(model, path, architecture="nas_network", params=dict(arch), metadata=metadata)


def write_scorecard(document: dict[str, Any], previous: Mapping[str, Any], data: SearchData,
                    settings: Settings, out: Path) -> dict[str, Any] | None:
    """The chosen model's full audit (core report) on the held-out audit data, in ``chosen/``."""
    number = document["chosen"]
    if number is None:
        return None
    old = previous.get("scorecard") or {}
    probes = list(settings.final_probes) if settings.final_probes else None
    same = (old.get("trial"), old.get("budget"), old.get("probes")) == (number, settings.final_budget, probes)
    if same and (out / SCORECARD_DIR / "audit.json").is_file():
        return dict(old)  # a rerun that changed nothing does not audit the same model again
    import auditkit

    trial = next(t for t in document["trials"] if t["number"] == number)
    model = trained_child(trial, data, settings, out)
    extra = {"nas": {"architecture": trial["architecture"], "trial": number}}
    result = auditkit.scan(
        model, data.audit, probes=probes,
        budget=settings.final_budget, seed=settings.seed, device="cpu",
        metadata=metadata_for(data.audit, extra), train_data=data.pool,
    )
    auditkit.write_outputs(result, out / SCORECARD_DIR)
    return {"trial": number, "report": f"{SCORECARD_DIR}/report.html",
            "audit": f"{SCORECARD_DIR}/audit.json", "verdict": result.verdict,
            "verdict_text": chosen_verdict(result),
            "budget": settings.final_budget, "probes": probes}


def chosen_verdict(result: Any) -> str:
    """The verdict as the chosen model's own scorecard words it ("passed with warnings")."""
    from auditkit.verdict import verdict_reasons, verdict_text

    audit = json.loads(result.to_json())
    reasons = verdict_reasons(audit["probes"], audit.get("gates") or [], str(audit.get("fail_on") or "never"))
    return verdict_text(str(audit.get("verdict")), reasons)


def finish(settings: Settings, objectives: Sequence[Objective], search_seconds: float) -> dict[str, Any]:
    """Write every output of the search from the study alone (safe to run again)."""
    out = Path(settings.out)
    study = open_study(settings, objectives)
    mark_interrupted(study, settings)
    recorded = {**asdict(settings), "storage": settings.storage_url()}
    recorded.pop("quiet", None)
    document = summarize(study, objectives, recorded)
    document["search_seconds"] = search_seconds
    previous_path = out / NAS_JSON
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else {}
    data = prepare_data(settings)
    document["models"] = save_pareto_models(document, data, settings, out) if document["pareto_front"] else {}
    document["scorecard"] = write_scorecard(document, previous, data, settings, out)
    write_json(previous_path, document)
    (out / REPORT).write_text(render_report(document), encoding="utf-8")
    counts = document["counts"]
    log(settings, f"{counts['complete']} complete, {counts['failed']} failed, "
                  f"{counts['interrupted']} interrupted; Pareto front: trials {document['pareto_front']}")
    return document


# --- the HTML report -------------------------------------------------------------------------


def scatter(points: Sequence[dict[str, Any]], x_name: str, y_name: str, uid: str) -> Markup:
    """Trials as points of two objectives; Pareto trials drawn as larger diamonds."""
    pts = [p for p in points if _num(p["x"]) and _num(p["y"])]
    xs, ys = [p["x"] for p in pts] or [0.0, 1.0], [p["y"] for p in pts] or [0.0, 1.0]
    x_ticks = svg.nice_ticks(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1e-3)
    y_ticks = svg.nice_ticks(min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1e-3)
    x_lo, x_hi = _padded(min(x_ticks[0], min(xs)), max(x_ticks[-1], max(xs)))
    y_lo, y_hi = _padded(min(y_ticks[0], min(ys)), max(y_ticks[-1], max(ys)))
    x_ticks = [t for t in x_ticks if x_lo <= t <= x_hi]
    y_ticks = [t for t in y_ticks if y_lo <= t <= y_hi]
    # The core charts' width, so it fits a phone's card with its text at 10 px or more.
    width = svg.WIDTH
    left, right, top, bottom, height = 64.0, width - 16.0, 14.0, 250.0, 318

    def px(v: float) -> float:
        return left + (v - x_lo) / ((x_hi - x_lo) or 1.0) * (right - left)

    def py(v: float) -> float:
        return bottom - (v - y_lo) / ((y_hi - y_lo) or 1.0) * (bottom - top)

    desc = f"{len(pts)} trials; {sum(p['front'] for p in pts)} on the Pareto front"
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'style="min-width: {math.ceil(width * svg.MIN_TEXT_PX / svg.SMALLEST_FONT_PX)}px" '
        f'role="img" aria-labelledby="{uid}-t {uid}-d">',
        f'<title id="{uid}-t">{escape(y_name)} against {escape(x_name)}</title>',
        f'<desc id="{uid}-d">{escape(desc)}</desc>',
    ]
    for t in y_ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{escape(format_number(t, 3))}</text>')
    for t in x_ticks:
        parts.append(f'<line class="grid" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{bottom}"/>')
        parts.append(f'<text class="tick" x="{px(t):.1f}" y="{bottom + 16}" text-anchor="middle">{escape(format_number(t, 3))}</text>')
    parts.append(f'<path class="axis" d="M{left},{top} V{bottom} H{right}"/>')
    parts.append(f'<text class="label" x="{(left + right) / 2:.1f}" y="{bottom + 34}" text-anchor="middle">{escape(x_name)}</text>')
    cy = (top + bottom) / 2
    parts.append(f'<text class="label" x="14" y="{cy:.1f}" text-anchor="middle" transform="rotate(-90 14 {cy:.1f})">{escape(y_name)}</text>')
    for front in (False, True):  # front points drawn last, on top
        group = "series s0" if front else "series s7"
        parts.append(f'<g class="{group}">')
        for p in (p for p in pts if p["front"] == front):
            shape = svg.marker("diamond" if front else "circle", px(p["x"]), py(p["y"]), 5.0 if front else 3.2)
            label = f"trial {p['number']}{' (Pareto)' if front else ''}: {x_name} = {format_number(p['x'])}, {y_name} = {format_number(p['y'])}"
            parts.append(f"<g>{shape}<title>{escape(label)}</title></g>")
        parts.append("</g>")
    parts.append(f'<g class="series s0">{svg.marker("diamond", 80, height - 12, 5.0)}</g>')
    parts.append(f'<text class="legend" x="92" y="{height - 8}">Pareto front</text>')
    parts.append(f'<g class="series s7">{svg.marker("circle", 200, height - 12, 3.2)}</g>')
    parts.append(f'<text class="legend" x="210" y="{height - 8}">other trials</text>')
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _padded(lo: float, hi: float) -> tuple[float, float]:
    """A little room around the points so none sits on the frame."""
    pad = 0.04 * ((hi - lo) or 1.0)
    return lo - pad, hi + pad


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def report_view(document: Mapping[str, Any]) -> dict[str, Any]:
    objectives = [o["name"] for o in document["objectives"]]
    arrow = {"higher": "↑", "lower": "↓"}
    label = {o["name"]: f"{o['name']} ({arrow[o['direction']]} better)" for o in document["objectives"]}
    front = set(document["pareto_front"])
    complete = [t for t in document["trials"] if t["state"] == "complete"]
    scatters = []
    pairs = [(objectives[0], y) for y in objectives[1:]] or [(objectives[0], None)]
    for index, (x_name, y_name) in enumerate(pairs):
        if y_name is None:  # one objective: plot it against the trial number
            points = [{"number": t["number"], "x": t["number"], "y": t["metrics"][x_name],
                       "front": t["number"] in front} for t in complete]
            scatters.append(scatter(points, "trial", label[x_name], f"pareto{index}"))
            continue
        points = [{"number": t["number"], "x": t["metrics"][x_name], "y": t["metrics"][y_name],
                   "front": t["number"] in front} for t in complete]
        scatters.append(scatter(points, label[x_name], label[y_name], f"pareto{index}"))
    reward = document["reward"]
    reward_figure = {
        "kind": "line",
        "title": "Scalarized reward over trials",
        "x_label": "trial",
        "y_label": "reward",
        "series": [
            {"name": "reward", "x": reward["trials"], "y": reward["values"]},
            {"name": "moving average (controller baseline)", "x": reward["trials"], "y": reward["moving_average"]},
        ],
        "caption": f"Reward = {reward['definition']}. The controller learns from reward minus the "
                   "moving average.",
    }
    rows = []
    for t in document["trials"]:
        arch = t["architecture"] or {}
        rows.append([
            t["number"],
            "yes" if t["number"] in front else "",
            t["state"] if t["state"] != "complete" else "passed",
            describe(arch),
            t["parameters"],
            *[t["metrics"].get(name) for name in objectives],
            t["reward"],
            t["seconds"],
            t["error"] or "",
        ])
    table = {
        "kind": "table",
        "title": "Every trial",
        "columns": ["trial", "Pareto", "state", "architecture", "parameters", *objectives,
                    "reward", "seconds", "error"],
        "rows": rows,
    }
    return {
        "document": document,
        "objectives": document["objectives"],
        "scatters": scatters,
        "reward_figure": render_figure(reward_figure, "reward") if reward["values"] else None,
        "trials_table": render_figure(table, "trials"),
        "style": core_style(),
    }


def describe(arch: Mapping[str, Any]) -> str:
    """One line for a table cell: ``conv16k3max → conv32k3 · fc64 · relu, bn, dropout 0.25``."""
    if not arch:
        return ""
    if arch.get("kind") == "cnn":
        body = " → ".join(
            f"conv{b['width']}k{b['kernel']}{'' if b['pool'] == 'none' else b['pool']}" for b in arch["blocks"]
        )
        if arch.get("classifier"):
            body += f" · fc{arch['classifier']}"
    else:
        body = " → ".join(f"fc{w}" for w in arch.get("widths", []))
    extras = [str(arch.get("activation"))]
    if arch.get("batch_norm"):
        extras.append("bn")
    if arch.get("dropout"):
        extras.append(f"dropout {arch['dropout']}")
    return f"{body} · {', '.join(extras)}"


def core_style() -> Markup:
    """The core report's style sheet (same colours, charts and tables); a plain one if it moved."""
    try:
        from auditkit.render.html import PALETTES, environment

        css = environment().get_template("_style.css.j2").render(
            view={"palettes": PALETTES, "series_styles": svg.SERIES_STYLES}
        )
        return Markup(css)
    except Exception:  # the core's template is its own business; never fail the NAS report
        return Markup("body{font-family:sans-serif;max-width:1180px;margin:auto;padding:1em}"
                      "svg .grid{stroke:#ddd}svg .axis{stroke:#333;fill:none}")


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("auditkit_nas", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(document: Mapping[str, Any]) -> str:
    """nas_report.html, a pure function of nas.json."""
    env = environment()
    env.filters["fmt"] = format_number
    return env.get_template("nas_report.html.j2").render(view=report_view(document))
