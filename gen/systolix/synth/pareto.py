"""The Pareto front of synthesis results, shared by the sweep table and its plots."""

from __future__ import annotations

__all__ = ["pareto_front"]


def pareto_front(points):
    """Indices of the points not dominated in (higher peak GOPS, lower LUT4, lower DSP)."""
    front = []
    for i, p in enumerate(points):
        dominated = False
        for j, q in enumerate(points):
            if i == j:
                continue
            better_eq = (q["peak_gops"] >= p["peak_gops"] and q["lut4"] <= p["lut4"]
                         and q["dsp"] <= p["dsp"])
            strictly = (q["peak_gops"] > p["peak_gops"] or q["lut4"] < p["lut4"]
                        or q["dsp"] < p["dsp"])
            if better_eq and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return front
