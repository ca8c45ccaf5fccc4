"""``make bench``: run every benchmark and write ONE report, ``bench-report/README.md`` with PNG charts.

Each benchmark runs as its own process (so each starts and stops its own servers), in the
production configuration when DATABASE_URL and REDIS_URL are set, on the embedded defaults
otherwise. Its printed output is kept beside the report (``bench-report/<name>.txt``) and its
figures (``--json``) are charted beside a fair baseline and LINE's published ceilings.

Run: ``python -m tests.perf.report [--only NAME ...] [--out DIR] [--from-json]``
(``--from-json`` rebuilds the report from the JSON files already in DIR without re-running).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from tests.perf import support

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = [
    "faq_matching",
    "webhook_ingest",
    "portal_scale",
    "send_pipeline",
    "send_chunk_instructions",
    "webhook_replies",
    "step_scan",
    "segment_counts",
]
PORTAL_P50_MS, PORTAL_P99_MS, SEGMENT_MS, INGEST_PER_S, INGEST_P99_MS = 100, 300, 50, 1_000, 100


def _accepts_json(name: str) -> bool:
    helptext = subprocess.run(
        [sys.executable, "-m", f"tests.perf.{name}", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    return "--json" in helptext.stdout


def run_benchmark(name: str, out: Path) -> dict | None:
    """Run one benchmark; its output goes to ``<name>.txt``, its figures (when it writes them) returned."""
    target = out / f"{name}.json"
    target.unlink(missing_ok=True)
    command = [sys.executable, "-m", f"tests.perf.{name}"] + (["--json", str(target)] if _accepts_json(name) else [])
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    with open(out / f"{name}.txt", "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    print(f"   exit {status} after {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(target.read_text()) if target.exists() else None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(
    path: Path, title: str, labels: list[str], series: dict[str, list[float]], unit: str, lines=(), log=False
) -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.8))
    height = 0.8 / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        axis.barh([n + index * height for n in range(len(labels))], values, height=height, label=name)
    for value, label in lines:
        axis.axvline(value, color="red", linestyle="--", linewidth=1)
        axis.text(value, -0.9, f" {label}", color="red", fontsize=8)
    axis.set_yticks([n + height * (len(series) - 1) / 2 for n in range(len(labels))], labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel(unit)
    if log:
        axis.set_xscale("log")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def faq_section(data: dict, out: Path) -> str:
    rows = data["rows"]
    chart = _bars(
        out / "faq.png",
        "FAQ matching: µs per message (log scale)",
        [f"{r['rules']:,} rules" for r in rows],
        {
            "Aho-Corasick automaton (product)": [r["automaton_us"] for r in rows],
            "loop of compiled regexes (baseline)": [r["regex_loop_us"] for r in rows],
        },
        "µs per message",
        log=True,
    )
    table = _table(
        ["rules", "product µs/message", "regex loop µs/message", "compile ms"],
        [
            [f"{r['rules']:,}", f"{r['automaton_us']:.1f}", f"{r['regex_loop_us']:.1f}", f"{r['compile_ms']:.0f}"]
            for r in rows
        ],
    )
    return f"## FAQ matching\n\n{table}\n\n![faq]({chart})\n"


def webhook_section(data: dict, out: Path) -> str:
    modes = data["modes"]
    chart = _bars(
        out / "webhooks.png",
        f"Webhook ingest ({data['configuration']})",
        list(modes),
        {"events/s": [m["events_per_s"] for m in modes.values()]},
        "events per second",
        lines=[(INGEST_PER_S, "goal 1,000/s")],
    )
    table = _table(
        ["mode", "events/s", "p50 ms", "p99 ms", "errors", "load from"],
        [
            [
                name,
                f"{m['events_per_s']:.0f}",
                f"{m['p50_ms']:.1f}",
                f"{m['p99_ms']:.1f}",
                m["errors"],
                m.get("client", ""),
            ]
            for name, m in modes.items()
        ],
    )
    return (
        f"## Webhook ingest\n\n{table}\n\nGoal: ≥ {INGEST_PER_S:,} events/s with p99 < {INGEST_P99_MS} ms; "
        f"LINE waits about {support.LINE_WEBHOOK_ANSWER_S} s for an answer. LINE latency in the naive mode: "
        f"{data['line_latency_ms']} ms per call.\n\n![webhooks]({chart})\n"
    )


def portal_section(data: dict, out: Path) -> str:
    pages, scale = data["pages"], data["scale"]
    chart = _bars(
        out / "portal.png",
        "Portal pages (ms)",
        list(pages),
        {"p50": [p["p50_ms"] for p in pages.values()], "p99": [p["p99_ms"] for p in pages.values()]},
        "ms",
        lines=[(PORTAL_P50_MS, "p50 goal"), (PORTAL_P99_MS, "p99 goal")],
    )
    table = _table(
        ["page", "p50 ms", "p99 ms", "SQL statements", "of which in SQL, ms"],
        [
            [name, f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}", f"{p['queries']:.0f}", f"{p.get('sql_ms', 0):.1f}"]
            for name, p in pages.items()
        ],
    )
    baseline = _table(
        ["query the pages used before", "p50 ms", "p99 ms"],
        [[name, f"{b['p50_ms']:.1f}", f"{b['p99_ms']:.1f}"] for name, b in data["baseline"].items()],
    )
    segments = data["segments"]
    seg_chart = _bars(
        out / "segments.png",
        "Segment count (the composer's live count), ms",
        list(segments),
        {"p50": [s["p50_ms"] for s in segments.values()], "p99": [s["p99_ms"] for s in segments.values()]},
        "ms",
        lines=[(SEGMENT_MS, "goal 50 ms")],
    )
    seg_table = _table(
        ["segment", "p50 ms", "p99 ms", "friends matched"],
        [[name, f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", f"{s['matched']:,}"] for name, s in segments.items()],
    )
    return (
        f"## Portal pages\n\nScale: {scale['friends']:,} friends, {scale['messages']:,} messages and "
        f"{scale['audit']:,} audit events in the clinic; {scale['other_clinics']:,} other clinics × "
        f"{scale['other_friends']:,} friends. Goal: p50 < {PORTAL_P50_MS} ms, p99 < {PORTAL_P99_MS} ms.\n\n{table}\n\n"
        f"![portal]({chart})\n\nBaseline, same data:\n\n{baseline}\n\n## Segment counts\n\n{seg_table}\n\n![segments]({seg_chart})\n"
    )


def send_section(data: dict | None, out: Path) -> str:
    ceiling = support.LINE_MULTICAST_REQUESTS_PER_S * support.LINE_MULTICAST_RECIPIENTS
    text = (out / "send_pipeline.txt").read_text() if (out / "send_pipeline.txt").exists() else "(not run)"
    chart = ""
    if data:
        pipeline = data["pipeline"]
        per_chunk = pipeline["worker_cpu_s"] / max(pipeline["sent"] / 500, 1)
        rates = {
            f"pipeline, {data['workers']} worker(s), wall clock": pipeline["rate"],
            "pipeline, per worker on a core of its own (CPU)": 500 / per_chunk if per_chunk else 0.0,
            "baseline: line-bot-sdk multicast loop": data["baseline"]["rate"],
            "sandbox's own ceiling": data["sandbox_multicasts_per_s"] * support.LINE_MULTICAST_RECIPIENTS,
        }
        name = _bars(out / "send.png", "Broadcast: recipients/s", list(rates), {"recipients/s": list(rates.values())},
                     "recipients per second", lines=[(ceiling, "LINE 100,000/s"), (20_000, "goal 20,000/s")])  # fmt: skip
        chart = f"![send]({name})\n\n"
    return (
        f"## Send pipeline\n\nLINE's multicast ceiling per channel: {support.LINE_MULTICAST_REQUESTS_PER_S} "
        f"requests/s × {support.LINE_MULTICAST_RECIPIENTS} = {ceiling:,} recipients/s. {chart}The benchmark's own output:\n\n"
        f"```\n{text.strip()[-6000:]}\n```\n"
    )


def write_report(out: Path, figures: dict[str, dict | None]) -> Path:
    sections = [
        f"# Benchmark report\n\nConfiguration: {support.configuration()}. Machine: {support.machine()} "
        "(load average at the end; the machine may be shared, so read figures against it).\n"
    ]
    builders = {"faq_matching": faq_section, "webhook_ingest": webhook_section, "portal_scale": portal_section}
    for name in BENCHMARKS:
        data = figures.get(name)
        if name == "send_pipeline":
            sections.append(send_section(data, out))
        elif name not in builders:
            text = (out / f"{name}.txt").read_text().strip()[-6000:] if (out / f"{name}.txt").exists() else "(not run)"
            sections.append(f"## {name}\n\n```\n{text}\n```\n")
        elif data:
            sections.append(builders[name](data, out))
        elif name in figures:
            sections.append(f"## {name}\n\nNo figures: see `{name}.txt`.\n")
    report = out / "README.md"
    report.write_text("\n".join(sections))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=BENCHMARKS, choices=BENCHMARKS)
    parser.add_argument("--out", default=str(ROOT / "bench-report"))
    parser.add_argument("--from-json", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    for name in args.only:
        path = out / f"{name}.json"
        if args.from_json:
            figures[name] = json.loads(path.read_text()) if path.exists() else None
        else:
            figures[name] = run_benchmark(name, out)
    print(f"report: {write_report(out, figures)}")


if __name__ == "__main__":
    main()
