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
        lines += ["", f"Service peak RSS: {run['service_peak_rss_mb']} MB. Data: {_prepared(run['prepare'])}", ""]
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
