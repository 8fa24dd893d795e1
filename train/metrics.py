"""Training logs: ``metrics.csv`` (stage, step, task, loss), TensorBoard scalars, PNG curves.

Rows are the mean of each loss over the ``log_every`` steps before ``step``. On resume, rows
logged after the checkpoint are dropped (they will be logged again), so the CSV of an
interrupted-and-resumed run reads like an uninterrupted one.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FIELDS = ("stage", "step", "task", "loss")


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


class MetricsLog:
    """Appends loss rows to ``<out>/metrics.csv`` and TensorBoard events in ``<out>/tensorboard``.

    Args:
        out_dir: the run folder.
        stages: stage names in run order.
        resume_at: (stage index, step) of the checkpoint resumed from, or None for a fresh run
            (which starts a new CSV).
        global_step: the global step at the resume point (TensorBoard purges later events).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        stages: list[str],
        resume_at: tuple[int, int] | None = None,
        global_step: int = 0,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(out_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        order = {name: i for i, name in enumerate(stages)}
        kept = []
        if resume_at is not None:
            kept = [
                r
                for r in read_metrics(self.path)
                if (order.get(r["stage"], 1 << 30), int(r["step"])) <= resume_at
            ]
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, FIELDS)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, self.path)
        self._fh = self.path.open("a", newline="")
        self._csv = csv.writer(self._fh)
        purge = global_step if resume_at is not None else None
        self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=purge)

    def log(self, stage: str, step: int, global_step: int, losses: dict[str, float]) -> None:
        for task, value in losses.items():
            self._csv.writerow([stage, step, task, f"{value:.6g}"])
            self.tb.add_scalar(f"{stage}/{task}", value, global_step)
        self._fh.flush()

    def scalar(self, tag: str, value: float, global_step: int) -> None:
        self.tb.add_scalar(tag, value, global_step)

    def close(self) -> None:
        self._fh.close()
        self.tb.close()


def plot_losses(
    csv_path: str | os.PathLike, plots_dir: str | os.PathLike, stages: list[str] | None = None
) -> list[Path]:
    """Write ``stage_<name>.png`` (one panel per task; for ``stages``, default all) and
    ``all_stages.png`` (one panel per task over the whole run, stages separated by dashed lines,
    x = global step). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(csv_path)
    if not rows:
        return []
    out = Path(plots_dir)
    out.mkdir(parents=True, exist_ok=True)
    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        series[r["stage"]][r["task"]].append((int(r["step"]), float(r["loss"])))
    written = []
    for stage in stages if stages is not None else list(series):
        if stage in series:
            fig = _panels(plt, {t: {stage: pts} for t, pts in series[stage].items()}, {stage: 0})
            fig.suptitle(f"stage {stage}: training losses")
            written.append(_save(fig, out / f"stage_{stage}.png", plt))
    offsets, offset = {}, 0
    for stage, tasks in series.items():
        offsets[stage] = offset
        offset += max(step for points in tasks.values() for step, _ in points)
    by_task: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(dict)
    for stage, tasks in series.items():
        for task, points in tasks.items():
            by_task[task][stage] = points
    fig = _panels(plt, by_task, offsets)
    fig.suptitle("training losses over all stages (dashed: stage ends)")
    written.append(_save(fig, out / "all_stages.png", plt))
    return written


def _panels(plt: Any, by_task: dict[str, dict[str, list]], offsets: dict[str, int]) -> Any:
    """One panel per task, one line per stage, shifted by the stage's global-step offset."""
    names = sorted(by_task, key=lambda t: (t == "total", t))
    cols = min(4, len(names))
    nrows = -(-len(names) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.4 * nrows + 0.6), squeeze=False)
    for ax, task in zip(axes.flat, names, strict=False):
        for stage, points in by_task[task].items():
            xs, ys = zip(*points, strict=True)
            color = f"C{list(offsets).index(stage)}"  # one colour per stage in every panel
            ax.plot([offsets[stage] + x for x in xs], ys, label=stage, color=color)
        for off in offsets.values():
            if off:
                ax.axvline(off, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(task, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if len(offsets) > 1:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=f"C{i}") for i in range(len(offsets))]
        fig.legend(handles, list(offsets), loc="upper right", fontsize=8, title="stage")
    fig.subplots_adjust(hspace=0.45, wspace=0.3, top=1 - 0.6 / fig.get_figheight())
    return fig


def _save(fig: Any, path: Path, plt: Any) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path


class NullMetrics:
    """What ranks other than 0 log to: nothing."""

    def log(self, stage: str, step: int, global_step: int, losses: dict[str, float]) -> None:
        pass

    def scalar(self, tag: str, value: float, global_step: int) -> None:
        pass

    def close(self) -> None:
        pass
