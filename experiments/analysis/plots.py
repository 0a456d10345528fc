"""The report's figures, one function per figure, each writing a PNG and returning its path.

Deviation and coalition gains are drawn with their confidence intervals and read as lower bounds (a better
deviation than the library's can only gain more); zero is always marked, since the question is its sign.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.analysis.metagame import PayoffTable, replicator_field

DPI = 120


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def threshold_curve(curve: pd.DataFrame, path: str | os.PathLike[str], xlabel: str = "check probability q") -> Path:
    """Measured best node deviation gain (with interval) beside the inspection game's line and its threshold q*."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = curve["value"].astype(float)
    ax.errorbar(
        x,
        curve["gain"],
        yerr=[curve["gain"] - curve["ci_lo"], curve["ci_hi"] - curve["gain"]],
        fmt="o-",
        capsize=3,
        label="measured best deviation (lower bound)",
    )
    if curve["analytic"].notna().any():
        ax.plot(x, curve["analytic"].astype(float), "k--", label="inspection game: always cheat")
    thresholds = curve["threshold"].dropna().unique()
    if len(thresholds) == 1:
        ax.axvline(float(thresholds[0]), color="tab:red", ls=":", label=f"q* = {float(thresholds[0]):.3f}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel=xlabel, ylabel="gain per node and round", title="Does cheating pay? Measured vs analytic")
    ax.legend(fontsize=8)
    return _save(fig, path)


def heatmaps(grid: pd.DataFrame, path: str | os.PathLike[str], xlabel: str, ylabel: str) -> Path:
    """Fake results accepted (fixed mixed population) and best node deviation gain over two parameters, with the
    inspection-game threshold drawn where it applies."""
    xs, ys = sorted(grid["x"].unique()), sorted(grid["y"].unique())
    panels = [("gain", "best node deviation gain (lower bound)", "RdBu_r")]
    if "fake_accepted_per_job" in grid:
        panels.insert(0, ("fake_accepted_per_job", "fake results accepted per job", "viridis"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 4.4), squeeze=False)
    for ax, (col, title, cmap) in zip(axes[0], panels, strict=True):
        z = grid.pivot(index="y", columns="x", values=col).reindex(index=ys, columns=xs).to_numpy(dtype=float)
        kw = {}
        if col == "gain":
            lim = float(np.nanmax(np.abs(z))) or 1.0
            kw = {"vmin": -lim, "vmax": lim}
        im = ax.imshow(z, origin="lower", aspect="auto", cmap=cmap, **kw)
        fig.colorbar(im, ax=ax)
        ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
        ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
        for (i, j), v in np.ndenumerate(z):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        if grid.get("threshold") is not None and grid["threshold"].notna().all():
            # q*(y) in grid coordinates: interpolate the threshold on the x axis
            qstar = grid.groupby("y")["threshold"].first().reindex(ys).to_numpy(dtype=float)
            ax.plot(
                np.interp(qstar, xs, range(len(xs)), left=-0.5, right=len(xs) - 0.5),
                range(len(ys)),
                "k--",
                lw=1.5,
                label="q* (inspection game)",
            )
            ax.legend(fontsize=7, loc="upper right")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return _save(fig, path)


def frontier(ranked: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Cost per correct result vs the worst covered gain, per mechanism; the cost-security Pareto frontier."""
    df = ranked.dropna(subset=["cost_per_correct_result"]).sort_values("cost_per_correct_result")
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    ax.axhspan(min(df["max_gain_lo"].min(), 0) - 1, 0, color="tab:green", alpha=0.08, label="secure region (gain <= 0)")
    ax.errorbar(
        df["cost_per_correct_result"],
        df["max_gain"],
        yerr=[df["max_gain"] - df["max_gain_lo"], df["max_gain_hi"] - df["max_gain"]],
        fmt="none",
        ecolor="grey",
        capsize=3,
    )
    colors = np.where(df["secure"], "tab:green", "tab:red")
    ax.scatter(df["cost_per_correct_result"], df["max_gain"], c=colors, zorder=3)
    for _, r in df.iterrows():
        ax.annotate(
            r["mechanism"],
            (r["cost_per_correct_result"], r["max_gain"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    best, front = np.inf, []
    for _, r in df.iterrows():  # cheapest first: a point is on the frontier if it is more secure than all cheaper
        if r["max_gain"] < best:
            best = r["max_gain"]
            front.append((r["cost_per_correct_result"], r["max_gain"]))
    fx, fy = zip(*front, strict=True)
    ax.step(fx, fy, where="post", color="k", lw=1, label="Pareto frontier")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="cost per correct result (client outlay + locked capital)",
        ylabel="worst deviation / coalition gain (lower bound)",
        title="Cost vs security",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def phase_portrait(table: PayoffTable, path: str | os.PathLike[str], title: str = "") -> Path:
    """Replicator flow of a two-population, two-strategy table (OpenSpiel dynamics): x = share of each
    population's second strategy."""
    if len(table.roles) != 2 or table.shape != (2, 2):
        raise ValueError(f"a phase portrait needs a 2 x 2 two-population table, got {table.roles} {table.shape}")
    field_ = replicator_field(table)
    grid = np.linspace(0.0, 1.0, 21)
    u, v = np.zeros((len(grid), len(grid))), np.zeros((len(grid), len(grid)))
    for i, b in enumerate(grid):
        for j, a in enumerate(grid):
            d = field_(np.array([1 - a, a, 1 - b, b]))
            u[i, j], v[i, j] = d[1], d[3]
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    speed = np.hypot(u, v)
    ax.streamplot(grid, grid, u, v, color=speed, cmap="viridis", density=1.1, arrowsize=1.2)
    r0, r1 = table.roles
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel=f"share of {r0}s playing {table.labels[r0][1]}",
        ylabel=f"share of {r1}s playing {table.labels[r1][1]}",
        title=title or "replicator dynamics",
    )
    ax.plot(
        [0], [0], "o", color="tab:green", ms=9, clip_on=False, label=f"{table.labels[r0][0]} / {table.labels[r1][0]}"
    )
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)


def cartel_curve(curve: pd.DataFrame, path: str | os.PathLike[str], title: str = "") -> Path:
    """Gain per cartel member against the cartel's share of the nodes."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.errorbar(
        curve["share"],
        curve["gain"],
        yerr=[curve["gain"] - curve["ci_lo"], curve["ci_hi"] - curve["gain"]],
        fmt="o-",
        capsize=3,
        color="tab:purple",
    )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="cartel share of nodes",
        ylabel="gain per member and round (lower bound)",
        title=title or "When do cartels pay?",
    )
    return _save(fig, path)


def alpharank_bars(ranking: pd.DataFrame, path: str | os.PathLike[str], top: int = 8, title: str = "") -> Path:
    """Alpha-rank stationary mass of the top profiles."""
    head = ranking.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(head) + 1.4))
    ax.barh(range(len(head)), head["mass"], color="tab:blue")
    ax.set_yticks(range(len(head)), head["profile"], fontsize=7)
    ax.set(xlabel="alpha-rank stationary mass", title=title or "alpha-rank")
    return _save(fig, path)
