"""PNG plots of sweep results (matplotlib, headless)."""

from __future__ import annotations

import io

from .pareto import pareto_front

__all__ = ["render_plots"]


def _variant(r):
    return r["config"].get("pipeline", "none")


def render_plots(results, target):
    """``[(file name, PNG bytes)]``: cost vs MACs, Fmax vs size, GOPS vs area (Pareto front)."""
    # matplotlib takes ~0.5 s to import: only a sweep that writes plots pays for it
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["fits"]]
    variants = sorted({_variant(r) for r in ok})
    markers = "osD^v<>"
    out = []

    def save(fig, name):
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        out.append((name, buf.getvalue()))

    title = f"{target.name} ({target.device})"

    fig, ax1 = plt.subplots(figsize=(6.4, 4.2))
    ax2 = ax1.twinx()
    for k, v in enumerate(variants):
        pts = sorted((r for r in ok if _variant(r) == v), key=lambda r: r["macs"])
        m = markers[k % len(markers)]
        ax1.plot([r["macs"] for r in pts], [r["lut4"] for r in pts], f"-{m}", color="C0",
                 label=f"LUT4 ({v})")
        ax2.plot([r["macs"] for r in pts], [r["dsp"] for r in pts], f"--{m}", color="C1",
                 label=f"DSP ({v})")
    ax2.axhline(target.dsp, color="C1", lw=0.8, ls=":")
    ax1.set_xlabel("MACs")
    ax1.set_ylabel("LUT4 (design alone)", color="C0")
    ax2.set_ylabel(f"{target.dsp_cell} (device: {target.dsp})", color="C1")
    ax1.set_title(f"Area vs MACs, {title}")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    save(fig, "area_vs_macs.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, v in enumerate(variants):
        pts = sorted((r for r in ok if _variant(r) == v), key=lambda r: r["macs"])
        ax.plot([r["macs"] for r in pts], [r["fmax_mhz"] for r in pts],
                f"-{markers[k % len(markers)]}", label=f"pipeline {v}")
        for r in pts:
            ax.annotate(f"{r['config'].get('rows')}x{r['config'].get('cols')}",
                        (r["macs"], r["fmax_mhz"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("MACs (array size)")
    ax.set_ylabel("Fmax (MHz, nextpnr)")
    ax.set_title(f"Fmax vs size, {title}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "fmax_vs_size.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    front = set(pareto_front(ok))
    for k, v in enumerate(variants):
        pts = [r for r in ok if _variant(r) == v]
        ax.scatter([r["lut4"] for r in pts], [r["peak_gops"] for r in pts],
                   marker=markers[k % len(markers)], label=f"pipeline {v}")
    fr = sorted((ok[i] for i in front), key=lambda r: r["lut4"])
    ax.plot([r["lut4"] for r in fr], [r["peak_gops"] for r in fr], "k--", lw=0.8,
            label="Pareto front (GOPS, LUT4, DSP)")
    ax.set_xlabel("LUT4 (design alone)")
    ax.set_ylabel("peak GOPS = 2 x MACs x Fmax")
    ax.set_title(f"Throughput vs area, {title}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "gops_vs_area.png")
    return out
