"""What a `tune` search leaves, whichever engine ran it: `trials.json` (every trial), `best.cfg`
(the config with the best completed trial's values) and `search.png` (dev score by trial, and
parameter importance by Optuna's fANOVA), with the table of trials printed."""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spacy import util
from wasabi import msg

from ..evaluation.plots import png_figure
from ..io import atomic_path, write_json

BEST_CONFIG = "best.cfg"
TRIALS_JSON = "trials.json"
PLOT = "search.png"


@dataclass
class TrialRecord:
    """One trial as the outputs show it."""

    number: int
    state: str
    score: float | None
    params: dict[str, Any]
    best_step: int | None = None
    seconds: float | None = None
    scores: list[float] = field(default_factory=list)


def write_outputs(
    records: list[TrialRecord], space: dict[str, Any], config_path: Path, output_dir: Path
) -> None:
    """Print the table and write the files under `output_dir`; without a completed trial,
    only the table and `trials.json` (a failed search still shows what it tried)."""
    scored = [r for r in records if r.state == "COMPLETE" and r.score is not None]
    _print_table(records, list(space))
    write_json(output_dir / TRIALS_JSON, [asdict(r) for r in records])
    if not scored:
        msg.warn("no trial completed: no best config")
        return
    best = max(scored, key=lambda r: r.score or 0.0)
    config = util.load_config(config_path, overrides=best.params, interpolate=False)
    with atomic_path(output_dir / BEST_CONFIG) as tmp:
        config.to_disk(tmp)
    msg.good(
        f"best: trial {best.number}, dev score {best.score:.4f}; config in "
        f"{output_dir / BEST_CONFIG}"
    )
    _plot(records, space, output_dir / PLOT)


def _print_table(records: list[TrialRecord], keys: list[str]) -> None:
    header = ["trial", "state", "dev score", "best step", "seconds", *keys]
    rows = [
        [
            r.number,
            r.state,
            "" if r.score is None else f"{r.score:.4f}",
            "" if r.best_step is None else r.best_step,
            "" if r.seconds is None else f"{r.seconds:.0f}",
            *(_short(r.params.get(key)) for key in keys),
        ]
        for r in records
    ]
    msg.table(rows, header=header, divider=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def parameter_importances(records: list[TrialRecord], space: dict[str, Any]) -> dict[str, float]:
    """Optuna's fANOVA importances over the completed trials (empty when there are fewer than
    two, or when their values do not vary)."""
    import optuna

    scored = [r for r in records if r.state == "COMPLETE" and r.score is not None]
    study = optuna.create_study(direction="maximize")
    study.add_trials(
        [
            optuna.trial.create_trial(params=r.params, distributions=space, value=r.score)
            for r in scored
        ]
    )
    if len(scored) < 2 or len({r.score for r in scored}) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):
        return {}


def _plot(records: list[TrialRecord], space: dict[str, Any], path: Path) -> None:
    importances = parameter_importances(records, space)
    with png_figure(path, ncols=2, figsize=(11, 4)) as (_, (by_trial, importance)):
        for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
            shown = [r for r in records if r.state == state and r.scores]
            by_trial.scatter(
                [r.number for r in shown],
                [r.score if r.score is not None else max(r.scores) for r in shown],
                marker=marker,
                label=state.lower(),
            )
        scored = [r for r in records if r.state == "COMPLETE" and r.score is not None]
        running = [
            max(float(r.score or 0.0) for r in scored if r.number <= n.number) for n in scored
        ]
        by_trial.plot([r.number for r in scored], running, drawstyle="steps-post", label="best")
        by_trial.set(
            xlabel="trial", ylabel="dev score (best evaluation)", title="Dev score by trial"
        )
        by_trial.legend()
        if importances:
            names = list(importances)[::-1]
            importance.barh(names, [importances[n] for n in names])
            importance.set(xlabel="importance (fANOVA)", title="Parameter importance")
        else:
            importance.text(
                0.5,
                0.5,
                "needs two completed trials\nwith different scores",
                ha="center",
                va="center",
            )
            importance.set_axis_off()
