"""`python -m spacy_bert_ner adapt`: fine-tune a trained pipeline on a user's own documents
and keep what it knew.

The run is `spacy train` on a config made from the pipeline's own (`nlp.config`, so the
optimizer, dropout, batcher and peak rate are the ones the pipeline was trained with; the
schedule is fitted to the run, `experiments.recipe.fitted_rate`):

- every component is sourced from MODEL; only `bert_ner` trains, so spaCy keeps a frozen
  copy of it (`resume_training`) and the `rehearse` callback pulls it toward that copy on a
  batch of the rehearsal corpus's texts at every step (the old domain is not forgotten);
- labels of the data that the pipeline lacks are added (`add_labels`): the head grows;
- model-best is chosen on an in-domain dev set, `--dev` or a seeded share of TRAIN's runs of
  sentences (never a test file: adapt is given none); with `--retention` (old-domain text,
  say the pipeline's own dev set), only among the checkpoints that kept the old domain: a
  few thousand words of it are scored before the run and at every evaluation, and a
  checkpoint that lost more than `max_forgetting` points of entity F1 on them ranks below
  every one that did not (`pipeline.scoring.retention_guarded`);
- model-best is then calibrated on the in-domain dev set with the `calibrate` command's own
  function, and its `threshold` (the minimum entity score) set to the one best on that dev
  set (`threshold-curve`'s figures), with `--retention` among those that keep the
  old-domain text within the same bound. Ranked by the in-domain dev set alone, a run lost
  6.8 points of CoNLL-2003 test F1, most of them to a threshold at which the new domain's
  calibrator drops correct old-domain entities, and nothing said so.

Inputs are read and checked before anything is written (`adapt_data`); the corpora and the
config go to a temporary directory beside OUTPUT, and OUTPUT appears in one rename when the
calibrated pipeline is complete, holding also `adapt.json` (the settings, the data and the
dev scores of model-best).
"""

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.util import registry
from thinc.api import Config
from wasabi import msg

from ..errors import BertNERError, check_fraction
from ..evaluation.calibration import Objective, calibrate_pipeline
from ..evaluation.threshold import threshold_curve
from ..experiments.recipe import fitted_rate
from ..io import atomic_directory, read_json_object, write_json
from ..pipeline.loading import load_pipeline, single_bert_ner_pipe
from .adapt_data import (
    plan_labels,
    read_corpus,
    relabelled,
    require_entities,
    sample_runs,
    split_dev,
)
from .retention import mark_retention, report_retention, thresholds_keeping


@dataclass(frozen=True)
class AdaptSettings:
    """How `adapt` trains. `learn_rate` replaces the pipeline's config's peak rate when given;
    `rehearse_ratio` is the rehearsal batch's words per step as a share of the update's;
    `choose_threshold` sets bert_ner's `threshold` to the one best on the dev set;
    `max_forgetting` is the entity F1 (in points) that model-best and the threshold may lose
    on `retention_words` words of old-domain text (0 words: no check)."""

    max_steps: int = 300
    eval_frequency: int = 50
    dev_share: float = 0.2
    learn_rate: float | None = None
    rehearse_ratio: float = 1.0
    choose_threshold: bool = True
    max_forgetting: float = 1.0
    retention_words: int = 20000
    label_map: dict[str, str] = field(default_factory=dict)
    new_labels: bool = True
    seed: int = 0
    gpu_id: int = -1


@dataclass
class AdaptData:
    """The corpora of a run, read and checked, labels mapped."""

    train: list[Doc]
    dev: list[Doc]
    rehearse: list[Doc] | None
    retention: list[Doc] | None
    new_labels: tuple[str, ...]
    mapping: dict[str, str]


def adapt_pipeline(
    model: str,
    train: Path,
    output: Path,
    dev: Path | None = None,
    rehearse: Path | None = None,
    settings: AdaptSettings | None = None,
    retention: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune pipeline `model` on `train`, rehearsing on `rehearse`, choose model-best on
    `dev` (or a split of `train`), calibrate it there and write it to `output` (which must
    not exist). Returns what `adapt.json` holds."""
    settings = settings or AdaptSettings()
    check_fraction("--dev-share", settings.dev_share)
    if settings.max_steps < 1:
        raise BertNERError(f"--max-steps must be at least 1, got {settings.max_steps}")
    if settings.max_forgetting < 0 or settings.retention_words < 0:
        raise BertNERError(
            "--max-forgetting and --retention-words must not be negative, got "
            f"{settings.max_forgetting} and {settings.retention_words}"
        )
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BertNERError(f"OUTPUT {output}: already exists; give a new directory")
    nlp = load_pipeline(model, settings.gpu_id)
    data = read_adapt_data(nlp, model, Path(train), dev, rehearse, settings, retention)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as tmp:
        work = Path(tmp)
        start = mark_retention(nlp, data.retention, data.dev, settings.max_forgetting)
        config = adapt_config(nlp, model, work, data, settings)
        config.to_disk(work / "config.cfg")
        began = time.perf_counter()
        train_with_spacy(work / "config.cfg", work / "training", settings.gpu_id)
        seconds = time.perf_counter() - began
        best = work / "training" / "model-best"
        summary = {
            "model": str(model),
            "train": str(train),
            "dev": str(dev) if dev else f"{settings.dev_share:.0%} of TRAIN",
            "rehearse": str(rehearse) if rehearse else None,
            "settings": asdict(settings),
            "label_mapping": data.mapping,
            "new_labels": list(data.new_labels),
            "n_train_docs": len(data.train),
            "n_dev_docs": len(data.dev),
            "train_seconds": seconds,
            "dev_scores": read_json_object(best / "meta.json", "pipeline meta").get(
                "performance", {}
            ),
        }
        if start is not None:
            summary["retention"] = {
                "text": str(retention),
                **report_retention(start, summary["dev_scores"], settings.max_forgetting),
            }
        with atomic_directory(output) as tmp_output:
            finish(best, tmp_output, work, nlp, model, data, settings, summary)
    msg.good(f"Adapted pipeline written to {output} ({seconds / 60:.1f} min of training)")
    return summary


def finish(
    best: Path,
    output: Path,
    work: Path,
    nlp: Language,
    model: str,
    data: AdaptData,
    settings: AdaptSettings,
    summary: dict[str, Any],
) -> None:
    """Calibrate model-best into `output` on the in-domain dev set, choose its threshold
    (with old-domain text, among those that keep it) and write `adapt.json` beside it."""
    trained_on = [work / "train.spacy"]
    if data.rehearse is not None:
        trained_on.append(work / "rehearse.spacy")
    summary["calibration"] = calibrate(best, work / "dev.spacy", output, trained_on, settings)
    if settings.choose_threshold:
        old_domain = None
        if data.retention:
            DocBin(docs=data.retention).to_disk(work / "retention.spacy")
            old_domain = (model, work / "retention.spacy")
        name = single_bert_ner_pipe(nlp, model)[0]
        summary["threshold"] = choose_threshold(
            output, work / "dev.spacy", name, settings, old_domain=old_domain
        )
    write_json(output / "adapt.json", summary)


def read_adapt_data(
    nlp: Language,
    model: str,
    train: Path,
    dev: Path | None,
    rehearse: Path | None,
    settings: AdaptSettings,
    retention_path: Path | None = None,
) -> AdaptData:
    """Read and check every input; the dev set is cut from TRAIN when `dev` is None."""
    _, pipe = single_bert_ner_pipe(nlp, model)
    train_docs = read_corpus(train, nlp, "TRAIN")
    require_entities(train_docs, train, "TRAIN")
    plan = plan_labels(
        train_docs, list(pipe.labels), train, settings.label_map, settings.new_labels
    )
    train_docs = relabelled(train_docs, plan.mapping)
    if dev is None:
        train_docs, dev_docs = split_dev(train_docs, settings.dev_share, settings.seed, train)
        if not any(doc.ents for doc in dev_docs):
            raise BertNERError(f"TRAIN {train}: its dev split holds no entities; give --dev")
    else:
        dev_docs = read_corpus(Path(dev), nlp, "--dev")
        require_entities(dev_docs, Path(dev), "--dev")
        dev_plan = plan_labels(
            dev_docs, [*pipe.labels, *plan.new], Path(dev), settings.label_map, allow_new=False
        )
        dev_docs = relabelled(dev_docs, dev_plan.mapping)
    rehearse_docs = retention = None
    if rehearse is not None:
        rehearse_docs = read_corpus(Path(rehearse), nlp, "--rehearse")
    else:
        msg.warn("no --rehearse corpus: what the pipeline knew of its old domain may be lost")
    if retention_path is not None and settings.retention_words > 0:
        retention_docs = read_corpus(Path(retention_path), nlp, "--retention")
        require_entities(retention_docs, Path(retention_path), "--retention")
        retention = sample_runs(retention_docs, settings.retention_words, settings.seed)
    return AdaptData(train_docs, dev_docs, rehearse_docs, retention, plan.new, plan.mapping)


def adapt_config(
    nlp: Language, model: str, work: Path, data: AdaptData, settings: AdaptSettings
) -> Config:
    """The pipeline's own config, sourcing its components from `model`, training bert_ner
    alone on the corpora written to `work` for `settings.max_steps` steps."""
    name, _ = single_bert_ner_pipe(nlp, model)
    for corpus, docs in (("train", data.train), ("dev", data.dev), ("rehearse", data.rehearse)):
        if docs is not None:
            DocBin(docs=docs).to_disk(work / f"{corpus}.spacy")
    config = Config(nlp.config).copy()
    config["components"] = {pipe: {"source": str(model)} for pipe in nlp.pipe_names}
    config["paths"].update(train=str(work / "train.spacy"), dev=str(work / "dev.spacy"))
    training = config["training"]
    if data.retention:
        # Checkpoints are scored on the in-domain dev set and the old-domain docs
        # together, and ranked by the guarded F1; calibration keeps the in-domain dev.spacy.
        guarded = work / "dev-guarded.spacy"
        DocBin(docs=[*data.dev, *data.retention], store_user_data=True).to_disk(guarded)
        config["paths"]["dev"] = str(guarded)
        weights = {
            key: None if weight is None else 0.0
            for key, weight in training.get("score_weights", {}).items()
        }
        training["score_weights"] = {**weights, "retention_f": 0.0, "guarded_ents_f": 1.0}
    training.update(
        max_steps=settings.max_steps,
        max_epochs=0,
        eval_frequency=settings.eval_frequency,
        patience=0,
        seed=settings.seed,
        frozen_components=[pipe for pipe in nlp.pipe_names if pipe != name],
        annotating_components=[],
    )
    optimizer = training["optimizer"]
    if "learn_rate" in optimizer or settings.learn_rate is not None:
        optimizer["learn_rate"] = fitted_rate(
            optimizer.get("learn_rate"), settings.max_steps, settings.learn_rate
        )
    if data.new_labels:
        config["initialize"]["before_init"] = {
            "@callbacks": "spacy_bert_ner.add_labels.v1",
            "labels": list(data.new_labels),
            "component": name,
        }
    if data.rehearse is not None:
        training["before_update"] = {
            "@callbacks": "spacy_bert_ner.rehearse.v1",
            "components": [name],
            "words_per_step": max(1, round(batch_words(config) * settings.rehearse_ratio)),
            "seed": settings.seed,
            "corpus": {
                "@readers": "spacy_bert_ner.SentenceRuns.v1",
                "path": str(work / "rehearse.spacy"),
                "max_words": config["corpora"]["train"].get("max_words", 100),
            },
        }
    return config


def calibrate(
    pipeline: Path, dev: Path, output: Path, trained_on: Sequence[Path], settings: AdaptSettings
) -> dict[str, Any]:
    """`calibrate`'s fit on `dev` (the temperature by the decoded entities' log loss, by the
    gold tags' NLL when the model decodes no entity there to fit on, a model barely trained;
    then `calibrate`'s default calibrator), with the mentions of `trained_on`, the corpora the
    adapted model learnt from, added to those the pipeline knew."""
    fit = partial(calibrate_pipeline, str(pipeline), dev, output, settings.gpu_id)
    try:
        return fit(train_paths=trained_on)
    except BertNERError as err:
        msg.warn(f"calibration by entities failed ({err}); fitting on the gold tags instead")
        return fit(Objective.tags, train_paths=trained_on)


def choose_threshold(
    pipeline: Path,
    dev: Path,
    name: str,
    settings: AdaptSettings,
    old_domain: tuple[str, Path] | None = None,
) -> dict[str, Any]:
    """Set component `name`'s `threshold` in the config of the (calibrated) `pipeline` to the
    one of `threshold-curve`'s thresholds with the best F1 on `dev` (the lowest on a tie):
    in a new domain the entities the model is unsure of are mostly wrong, and calibrated
    scores say which they are.

    With `old_domain` (the pipeline adapted from and the old-domain text), only
    thresholds at which the adapted pipeline keeps that text's F1 within `max_forgetting` of
    the original's are eligible: the calibrator is fitted on the new domain, where the old
    domain's correct entities can score low, and a threshold best on the new domain alone
    cost 5 points of CoNLL-2003 test F1 in a measured run that its checkpoint had kept."""
    curve = threshold_curve(str(pipeline), dev, gpu_id=settings.gpu_id)
    rows = curve["curve"]
    result: dict[str, Any] = {}
    if old_domain is not None:
        floor, keeps = thresholds_keeping(
            pipeline, *old_domain, settings.max_forgetting, settings.gpu_id
        )
        rows = [row for row, kept in zip(rows, keeps, strict=True) if kept] or rows[:1]
        result["old_domain_floor"] = floor
    best_row = max(rows, key=lambda row: row["f1"])
    best = round(best_row["threshold"], 4)
    config = Config().from_disk(pipeline / "config.cfg", interpolate=False)
    config["components"][name]["threshold"] = best
    config.to_disk(pipeline / "config.cfg")
    msg.good(f"{name}: threshold {best:.2f}, dev F1 {100 * curve['at_zero']['f1']:.2f} -> "
             f"{100 * best_row['f1']:.2f}")  # fmt: skip
    if old_domain is not None and best_row["f1"] < curve["best"]["f1"]:
        msg.info(
            f"{name}: the dev set alone would take {curve['best']['threshold']:.2f} "
            f"(F1 {100 * curve['best']['f1']:.2f}), which loses more of the old domain than "
            "--max-forgetting allows"
        )
    return {
        **result,
        "threshold": best,
        "dev_f1": best_row["f1"],
        "dev_f1_at_0": curve["at_zero"]["f1"],
        "dev_best_alone": curve["best"]["threshold"],
    }


def batch_words(config: Config) -> int:
    """Words of the config's first update batch (its batcher's size, or the first value of
    the size schedule)."""
    size = registry.resolve({"size": config["training"]["batcher"].get("size", 0)})["size"]
    words = size if isinstance(size, int | float) else next(iter(size), 0)
    if words <= 0:
        raise BertNERError("adapt: the pipeline's [training.batcher] has no size to read")
    return int(words)


def train_with_spacy(config_path: Path, output: Path, gpu_id: int) -> None:
    """`spacy train config_path --output output --gpu-id gpu_id`, in this process."""
    from spacy.cli.train import train

    train(config_path, output, use_gpu=gpu_id)
