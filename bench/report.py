"""Markdown tables from a results dict."""

from __future__ import annotations

from typing import Any


def _ms(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _pair(series: dict[str, Any]) -> str:
    if not series or not series.get("n"):
        return "–"
    return f"{_ms(series['p50_ms'])} / {_ms(series['p95_ms'])}"


def _ratio(value: Any) -> str:
    return "–" if value is None else f"{value:g}×"


def markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    lines = [
        f"# Benchmark results ({results.get('mode')}, {results.get('started_at')})",
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, "
        f"Python {machine.get('python')}. Elapsed {results.get('elapsed_s', '?')} s.",
        "",
        "Latencies in ms, p50 / p95; `seq` = one request at a time, `c8` = 8 concurrent connections;"
        " ratio = original p50 / service p50.",
        "",
    ]
    for run in results.get("postgresql", []):
        lines += [
            f"## PostgreSQL, {run['dataset']} (clients × logs)",
            "",
            "| endpoint | original seq | service seq | ratio seq | original c8 | service c8 | ratio c8 |"
            " original c8 req/s | service c8 req/s | body (service) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, peer_result in run["peer"].items():
            service_result = run["service"][name]
            ratio = run["ratios"].get(name, {})
            lines.append(
                f"| {name} | {_pair(peer_result['sequential'])} | {_pair(service_result['sequential'])} | "
                f"{_ratio(ratio.get('sequential'))} | {_pair(peer_result['concurrent'])} | "
                f"{_pair(service_result['concurrent'])} | {_ratio(ratio.get('concurrent'))} | "
                f"{peer_result['concurrent'].get('req_per_s', '–')} | "
                f"{service_result['concurrent'].get('req_per_s', '–')}"
                f" | {service_result['sequential'].get('body_bytes', 0) / 1024:.0f} KB |"
            )
        source = f" Measured in `{run['source']}`." if run.get("source") else ""
        lines += [
            "",
            f"Service peak RSS: {run['service_peak_rss_mb']} MB. Data: {_prepared(run['prepare'])}{source}",
            "",
        ]
    for run in results.get("sqlite", []):
        lines += [
            f"## SQLite (service only), {run['dataset']}",
            "",
            "| endpoint | service seq | service c8 | c8 req/s |",
            "| --- | --- | --- | --- |",
        ]
        for name, result in run["service"].items():
            lines.append(
                f"| {name} | {_pair(result['sequential'])} | {_pair(result['concurrent'])} | "
                f"{result['concurrent'].get('req_per_s', '–')} |"
            )
        lines += ["", f"Service peak RSS: {run['service_peak_rss_mb']} MB. Data: {_prepared(run['prepare'])}", ""]
    lines += ["## Targets (issue #4)", "", targets(results)]
    ingest = results.get("ingest")
    if ingest:
        lines += ["## Ingest through Mosquitto", ""]
        if ingest.get("skipped"):
            lines += [f"Skipped: {ingest['skipped']}", ""]
        else:
            lines += [
                "| scenario | messages | service msg/s | bare consumer msg/s | service / bare | stored | lost |"
                " duplicated |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for row in ingest.get("scenarios", []):
                lines.append(
                    f"| {row['name']} | {row['messages']} | {row.get('service_rate', '–')} | "
                    f"{row.get('bare_rate', '–')} | {row.get('service_vs_bare', '–')} | {row.get('stored', '–')} | "
                    f"{row.get('lost', '–')} | {row.get('duplicated', '–')} |"
                )
            lines += ["", f"Service peak RSS during ingest: {ingest.get('service_peak_rss_mb', '–')} MB.", ""]
            for note in ingest.get("notes", []):
                lines.append(f"- {note}")
            lines.append("")
    return "\n".join(lines) + "\n"


def _prepared(info: dict[str, Any]) -> str:
    if info.get("reused"):
        return f"reused (loaded at {info.get('load_anchor')})."
    parts = []
    if "service_load_s" in info:
        parts.append(f"service load {info['service_load_s']} s")
    elif "service_load" in info:
        parts.append(f"service load {info['service_load'].get('total_s', 0):.1f} s")
    if "peer_load_s" in info:
        parts.append(f"original's load.py {info['peer_load_s']} s")
    return ", ".join(parts) + "." if parts else "loaded."


def _find(runs: list[dict[str, Any]], dataset: str) -> dict[str, Any] | None:
    return next((run for run in runs if run["dataset"] == dataset), None)


def targets(results: dict[str, Any]) -> str:
    """Every target of issue #4 with the measured value beside it (from one results file)."""
    rows: list[tuple[str, str, str]] = []

    def seq(run: dict[str, Any] | None, system: str, endpoint: str) -> float | None:
        return run[system][endpoint]["sequential"].get("p50_ms") if run else None

    def verdict(ok: bool | None) -> str:
        return "–" if ok is None else ("met" if ok else "**missed**")

    pg = results.get("postgresql", [])
    mid, large = _find(pg, "2000x500"), _find(pg, "10000x500")
    overview_mid = seq(mid, "service", "monitoring-overview")
    ratio = mid["ratios"]["monitoring-overview"]["sequential"] if mid else None
    rows.append(
        ("overview 2,000 × 500 p50 ≤ 100 ms", f"{_ms(overview_mid)} ms", verdict(overview_mid and overview_mid <= 100))
    )
    rows.append(("overview 2,000 × 500 ≥ 50× the original", _ratio(ratio), verdict(ratio and ratio >= 50)))
    overview_large = seq(large, "service", "monitoring-overview")
    rows.append(
        (
            "overview 10,000 × 500 p50 ≤ 500 ms",
            f"{_ms(overview_large)} ms",
            verdict(overview_large and overview_large <= 500),
        )
    )
    summary_ratio = mid["ratios"]["summary"]["sequential"] if mid else None
    rows.append(
        (
            "summary 2,000 × 500 ≥ 10× the original",
            _ratio(summary_ratio),
            verdict(summary_ratio and summary_ratio >= 10),
        )
    )
    for endpoint in ("client-logs", "recent-errors", "test"):
        value = seq(mid, "service", endpoint)
        rows.append((f"{endpoint} p50 ≤ 5 ms (2,000 × 500)", f"{_ms(value)} ms", verdict(value and value <= 5)))
        value = seq(large, "service", endpoint)
        rows.append((f"{endpoint} p50 ≤ 5 ms (10,000 × 500)", f"{_ms(value)} ms", verdict(value and value <= 5)))
    sqlite_mid = _find(results.get("sqlite", []), "2000x500")
    sqlite_overview = seq(sqlite_mid, "service", "monitoring-overview")
    rows.append(
        (
            "SQLite overview 2,000 × 500 p50 ≤ 300 ms",
            f"{_ms(sqlite_overview)} ms",
            verdict(sqlite_overview and sqlite_overview <= 300),
        )
    )
    ingest = results.get("ingest") or {}
    scenarios = {row["name"]: row for row in ingest.get("scenarios", [])}
    backlog = scenarios.get("log backlog drain")
    if backlog:
        share = backlog["service_vs_bare"]
        rows.append(
            (
                "log backlog drain ≥ ½ the bare consumer",
                f"{share} ({backlog['service_rate']} vs {backlog['bare_rate']} msg/s)",
                verdict(share is not None and share >= 0.5),
            )
        )
        rows.append(
            (
                "log backlog: 0 lost, 0 duplicated",
                f"{backlog['lost']} lost, {backlog['duplicated']} duplicated",
                verdict(backlog["lost"] == 0 and backlog["duplicated"] == 0),
            )
        )
    heartbeat = scenarios.get("live heartbeat")
    if heartbeat:
        share = heartbeat["service_vs_bare"]
        measured = (
            f"{share} ({heartbeat['service_rate']} vs {heartbeat['bare_rate']} msg/s), "
            f"{heartbeat['lost']} lost, {heartbeat['duplicated']} duplicated"
        )
        ok = share is not None and share >= 0.5 and heartbeat["lost"] == 0
        rows.append(("heartbeats ≥ ½ the bare consumer, 0 lost / duplicated", measured, verdict(ok)))
    shots = scenarios.get("live screenshot")
    if shots:
        rows.append(
            (
                "≥ 200 screenshots/s of 100 KB",
                f"{shots['service_rate']}/s (bare consumer {shots['bare_rate']}/s)",
                verdict((shots["service_rate"] or 0) >= 200),
            )
        )
    peaks = [run.get("service_peak_rss_mb", 0) for run in pg + results.get("sqlite", [])]
    peaks.append(ingest.get("service_peak_rss_mb", 0) or 0)
    peak = max(peaks, default=0)
    rows.append(("service peak RSS ≤ 300 MB", f"{peak} MB", verdict(peak <= 300) if peak else "–"))
    lines = ["| target | measured | |", "| --- | --- | --- |"]
    lines += [f"| {target} | {value} | {state} |" for target, value, state in rows]
    return "\n".join(lines) + "\n"


def combine(base: dict[str, Any], *overrides: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """`base` with its per-dataset runs replaced by those of later runs (each tagged with its source)."""
    combined = dict(base)
    for backend in ("postgresql", "sqlite"):
        runs = {run["dataset"]: run for run in base.get(backend, [])}
        for source, override in overrides:
            for run in override.get(backend, []):
                runs[run["dataset"]] = {**run, "source": source}
        combined[backend] = sorted(runs.values(), key=lambda run: int(run["dataset"].split("x")[0]))
    return combined


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    # python -m bench.report OUT.json BASE.json [LATER.json ...]: combine, write OUT.json and OUT.md
    out, base_path, *later = sys.argv[1:]
    result = combine(
        json.loads(Path(base_path).read_text()),
        *((Path(path).stem, json.loads(Path(path).read_text())) for path in later),
    )
    result["combined_from"] = [Path(base_path).stem, *(Path(path).stem for path in later)]
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    Path(out).with_suffix(".md").write_text(markdown(result))
