"""Text tables and the PNG heat map of an :class:`~controller.analysis.ecmp.EcmpAnalysis`."""

from __future__ import annotations

from pathlib import Path

from controller.analysis.ecmp import Dir, EcmpAnalysis, MeasuredComparison


def text_report(a: EcmpAnalysis, measured: MeasuredComparison | None = None, top: int = 12) -> str:
    st = a.ratio_stats()
    lines = [
        f"{a.pattern} among {len(a.hosts)} hosts of {a.topology}: {len(a.flows)} flows "
        f"({', '.join(a.hosts)})",
        f"ideal: {a.ideal_pressure * 100:.3g} flows per 100 Mbit/s on the busiest host cut"
        + ("" if a.ideal_reached_by_spray else " (spraying does not reach it)"),
        "",
        "predicted completion time / ideal (max link pressure / ideal pressure):",
        f"  ecmp   expected-load bound {a.expected.ratio_to_ideal:5.2f}   "
        f"hash model over {len(a.seed_ratios)} seeds: p50 {st['p50']:.2f}, p90 {st['p90']:.2f}, "
        f"max {st['max']:.2f}; {st['share_above_ideal'] * 100:.0f} % of draws collide",
    ]
    if a.pinned is not None:
        lines.append(f"  pinned {a.pinned.ratio_to_ideal:5.2f}")
    if a.spray is not None:
        lines.append(f"  spray  {a.spray.ratio_to_ideal:5.2f}")
    if measured is not None:
        lines.append(
            f"  measured ({measured.mode}) {measured.ratio_to_ideal:5.2f}: at the "
            f"{measured.percentile * 100:.0f}th percentile of the hash model"
        )
    lines += [
        "",
        f"hottest link directions (flows; ecmp: expected and [min..max] over seeds; sample: "
        f"seed {a.sample_seed}):",
    ]
    head = f"  {'link direction':<24}{'Mbit/s':>7}{'expected':>10}{'range':>10}{'sample':>8}"
    if a.pinned is not None:
        head += f"{'pinned':>8}"
    if a.spray is not None:
        head += f"{'spray':>7}"
    if measured is not None:
        head += f"{'measured':>10}"
    lines.append(head)
    for d in _rows(a, measured)[:top]:
        row = (
            f"  {d[0] + '->' + d[1]:<24}{a.bandwidth[d]:>7g}{a.expected.loads.get(d, 0):>10.2f}"
            f"{_range(a, d):>10}{a.sample.loads.get(d, 0):>8.0f}"
        )
        if a.pinned is not None:
            row += f"{a.pinned.loads.get(d, 0):>8.2f}"  # channels carry 1/P of a flow
        if a.spray is not None:
            row += f"{a.spray.loads.get(d, 0):>7.2f}"
        if measured is not None:
            row += f"{measured.loads.get(d, 0):>10.2f}"
        lines.append(row)
    lines += ["", f"collisions in the sample draw (seed {a.sample_seed}):"]
    if not a.collisions:
        lines.append("  none: no link carries more than the ideal")
    for c in a.collisions[:top]:
        shown = ", ".join(str(f) for f in c.flows)
        lines.append(
            f"  {c.src}->{c.dst}: {len(c.flows)} flows, {c.pressure_ratio:.2f}x ideal: {shown}"
        )
    if len(a.collisions) > top:
        lines.append(f"  ... and {len(a.collisions) - top} more")
    if measured is not None and measured.outside:
        lines += ["", "measured loads outside the hash model's range:"]
        for d, m, lo, hi in measured.outside[:top]:
            lines.append(f"  {d[0]}->{d[1]}: {m:.2f} not in [{lo:.0f}..{hi:.0f}]")
    lines += ["", *(f"note: {n}" for n in a.notes)]
    return "\n".join(lines)


def _range(a: EcmpAnalysis, d: Dir) -> str:
    return f"{a.seed_loads_min.get(d, 0):.0f}..{a.seed_loads_max.get(d, 0):.0f}"


def _rows(a: EcmpAnalysis, measured: MeasuredComparison | None) -> list[Dir]:
    dirs: set[Dir] = set(a.expected.loads) | set(a.sample.loads)
    for m in (a.pinned, a.spray):
        if m is not None:
            dirs |= set(m.loads)
    if measured is not None:
        dirs |= set(measured.loads)

    def key(d: Dir) -> tuple[float, float, str, str]:
        return (-a.seed_loads_max.get(d, 0) / a.bandwidth[d], -a.expected.loads.get(d, 0), *d)

    return sorted((d for d in dirs if d in a.bandwidth), key=key)


def write_png(a: EcmpAnalysis, out: Path, measured: MeasuredComparison | None = None) -> None:
    """A heat map: one row per link direction, one column per prediction (and the
    measurement), the cell colour its pressure relative to the ideal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols: list[tuple[str, dict[Dir, float]]] = [
        ("ecmp\nexpected", a.expected.loads),
        (f"ecmp seed\n{a.sample_seed}", a.sample.loads),
        ("ecmp worst\nover seeds", a.seed_loads_max),
    ]
    if a.pinned is not None:
        cols.append(("pinned", a.pinned.loads))
    if a.spray is not None:
        cols.append(("spray", a.spray.loads))
    if measured is not None:
        cols.append((f"measured\n{measured.mode}", measured.loads))
    rows = _rows(a, measured)
    ideal = a.ideal_pressure or 1.0
    grid = np.array(
        [[c.get(d, 0.0) / a.bandwidth[d] / ideal for _, c in cols] for d in rows], dtype=float
    )
    fig, ax = plt.subplots(figsize=(2.2 + 1.15 * len(cols), 1.4 + 0.19 * len(rows)))
    vmax = max(2.0, float(grid.max()) if grid.size else 2.0)
    img = ax.imshow(grid, aspect="auto", cmap="inferno_r", vmin=0.0, vmax=vmax)
    ax.set_xticks(range(len(cols)), [c for c, _ in cols], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(rows)), [f"{x}->{y}" for x, y in rows], fontsize=6)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = grid[i, j]
            if v > 0:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5,
                        color="white" if v > vmax * 0.55 else "black")  # fmt: skip
    cbar = fig.colorbar(img, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label("link pressure / ideal (> 1: slower than ideal)", fontsize=8)
    ax.set_title(
        f"{a.pattern}, {len(a.hosts)} hosts, {a.topology}: link load relative to the ideal",
        fontsize=9,
        pad=28,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)
