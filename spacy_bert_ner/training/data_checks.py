"""`debug-data`: the NER checks `spacy debug data` runs for a `ner` component, for `bert_ner`,
plus what only a wordpiece model meets.

`spacy debug data` runs its NER section only for components made by the `ner` factory (and
stops at the first bad gold entity when it initializes a `bert_ner` whose `on_bad_gold` is
"error"), so this command reads the config's corpora itself and reuses spaCy's own helpers
(`_compile_gold`, `_get_examples_without_label`) for its checks: label counts, labels with few
examples or no doc without them, entities on whitespace tokens or crossing a sentence start.
Then, per `bert_ner` component: the gold entities `on_bad_gold` would meet (misaligned with
the tokenizer, or of a type the head lacks), the tags the pretrained head lacks (a new head,
or rows `initialize` adds), and wordpieces and windows per doc against the window length; for
a component listening to a shared `transformer`, that transformer's spans per doc and
wordpieces per span against the encoder's limit, past which spacy-transformers drops them.

An encoder without a head (what cpu.cfg and gpu.cfg train from) is checked as `initialize`
would make it: with a head for the labels found in the corpus.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from spacy import util
from spacy.cli.debug_data import (
    NEW_LABEL_THRESHOLD,
    _compile_gold,
    _format_labels,
    _get_examples_without_label,
)
from spacy.language import Language
from spacy.schemas import ConfigSchemaTraining
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry, resolve_dot_names
from spacy_transformers import Transformer
from spacy_transformers.layers.transformer_model import TransformerModel
from wasabi import Printer

from ..errors import BertNERError, one_line
from ..models.model_api import architecture, declared_tags
from ..models.token_classifier import StandaloneArchitecture, window_length
from ..models.windows import SpecialTokens, window_starts, window_width_and_stride
from ..pipeline.bert_ner import BertNER
from ..pipeline.gold import bad_gold_entities, gold_view, labels_in
from ..pipeline.loading import bert_ner_pipes
from ..tags import TagScheme, tags_for_head

#: How many bad gold entities the report names (all are counted).
SHOWN = 10


@dataclass
class ComponentReport:
    """What one `bert_ner` component would meet in the training data.

    The standalone architecture reads strided windows of `window_length` wordpieces (`stride`
    shared), `windows_per_doc` of them; a listener reads its `upstream` transformer's spans,
    `windows_per_doc` of them, each cut at `window_length` wordpieces (the encoder's limit).
    """

    name: str
    head_tags: list[str] | None
    missing_tags: list[str]
    bad_gold: list[str]
    n_bad_gold: int
    window_length: int
    stride: int | None = None
    pieces_per_doc: list[int] = field(default_factory=list)
    windows_per_doc: list[int] = field(default_factory=list)
    upstream: str | None = None
    pieces_per_span: list[int] = field(default_factory=list)


@dataclass
class DataReport:
    n_train: int
    n_dev: int
    label_counts: Counter
    missing_values: int
    whitespace_entities: int
    sentence_crossing_entities: int
    low_count_labels: dict[str, int]
    labels_in_every_doc: list[str]
    components: list[ComponentReport]

    @property
    def n_failures(self) -> int:
        errors = sum(c.n_bad_gold for c in self.components)
        return self.whitespace_entities + errors


def debug_data(
    config_path: Path, overrides: dict[str, Any] | None = None, *, printer: Printer | None = None
) -> DataReport:
    """Check the corpora of `config_path` (with `overrides`) and print what was found."""
    msg = printer or Printer()
    try:
        config = util.load_config(config_path, overrides=overrides or {})
        nlp = util.load_model_from_config(config, auto_fill=True)
        training = registry.resolve(
            nlp.config.interpolate()["training"], schema=ConfigSchemaTraining
        )
        train_corpus, dev_corpus = resolve_dot_names(
            nlp.config.interpolate(), [training["train_corpus"], training["dev_corpus"]]
        )
        train = list(train_corpus(nlp))
        dev = list(dev_corpus(nlp))
    except (OSError, ValueError) as err:
        raise BertNERError(
            f"{config_path}: cannot read the config or its corpora ({one_line(err)})"
        ) from None
    pipes = bert_ner_pipes(nlp)
    if not pipes:
        raise BertNERError(f"{config_path}: no bert_ner component in the pipeline")
    gold = _compile_gold(train, ["ner"], nlp, make_proj=False)
    counts: Counter = gold["ner"]
    labels = sorted(label for label in counts if label not in ("-", "O", "") and label)
    low = {label: counts[label] for label in labels if counts[label] <= NEW_LABEL_THRESHOLD}
    report = DataReport(
        n_train=len(train),
        n_dev=len(dev),
        label_counts=Counter({label: counts[label] for label in labels}),
        missing_values=counts["-"],
        whitespace_entities=gold["ws_ents"],
        sentence_crossing_entities=gold["boundary_cross_ents"],
        low_count_labels=low,
        labels_in_every_doc=[
            label for label in low if _get_examples_without_label(train, label, "ner") == 0
        ],
        components=[_check_component(nlp, name, pipe, train) for name, pipe in pipes],
    )
    print_report(report, msg)
    return report


def _check_component(
    nlp: Language, name: str, pipe: BertNER, examples: Sequence[Example]
) -> ComponentReport:
    pretrained = declared_tags(pipe.model)
    spans_key = pipe.cfg["spans_key"]
    wanted = {*labels_in(examples, spans_key), *pipe.cfg["labels"]}
    # The head `initialize` would give it, by the rule `initialize` itself uses: None keeps
    # the pretrained head as it is.
    head_tags = tags_for_head(pretrained, wanted, pipe.cfg["scheme"])
    missing = [tag for tag in head_tags or () if pretrained is None or tag not in pretrained]
    # Labels the component will have after initialize: bad gold is then only misalignment
    # (and, for a pretrained head that keeps its labels, the types it lacks).
    final_tags = head_tags if head_tags is not None else pretrained
    known = TagScheme.from_tags(tuple(final_tags), pipe.cfg["scheme"]).labels if final_tags else ()
    bad: list[str] = []
    n_bad = 0
    for index, example in enumerate(examples):
        view = gold_view(example, spans_key, index)
        for entity, problem in bad_gold_entities(view, view.get_aligned_ner(), known):
            n_bad += 1
            if len(bad) < SHOWN:
                bad.append(f"training example {index}: {entity.text!r} ({entity.label_}) {problem}")
    report = ComponentReport(name, pretrained, list(missing), bad, n_bad, window_length=0)
    docs = [eg.predicted for eg in examples]
    model_architecture = architecture(pipe.model)
    if isinstance(model_architecture, StandaloneArchitecture):
        # The model the config names, given the head `initialize` would give an encoder.
        pipe.model.initialize(Y=cast(Any, head_tags if pretrained is None else None))
        _add_windows(report, pipe, model_architecture, docs)
    else:
        _add_spans(report, _upstream(nlp, name), docs)
    return report


def _add_windows(
    report: ComponentReport,
    pipe: BertNER,
    standalone: StandaloneArchitecture,
    docs: Sequence[Doc],
) -> None:
    """Wordpieces and strided windows per doc, as the standalone model cuts them."""
    _, tokenizer = standalone.loaded()
    report.window_length = window_length(pipe.model)
    width, report.stride = window_width_and_stride(
        report.window_length, standalone.settings.stride, len(SpecialTokens.of(tokenizer))
    )
    backend = tokenizer.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    encodings = backend.encode_batch(
        [[t.text for t in doc] for doc in docs], is_pretokenized=True, add_special_tokens=False
    )
    report.pieces_per_doc = [len(e.ids) for e in encodings]
    report.windows_per_doc = [
        len(window_starts(n, width, report.stride)) for n in report.pieces_per_doc
    ]


def _add_spans(
    report: ComponentReport, upstream: tuple[str, Transformer], docs: Sequence[Doc]
) -> None:
    """The upstream transformer's spans per doc and wordpieces per span (special tokens
    included), which spacy-transformers cuts at the tokenizer's `model_max_length`."""
    report.upstream, transformer = upstream
    model = cast(TransformerModel, transformer.model)
    model.initialize()  # the encoder and tokenizer the config names
    tokenizer = model.tokenizer
    spans = model.attrs["get_spans"](list(docs))
    report.windows_per_doc = [len(doc_spans) for doc_spans in spans]
    texts = [span.text for doc_spans in spans for span in doc_spans]
    encoded = tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"] if texts else []
    report.pieces_per_span = [len(ids) for ids in encoded]
    report.window_length = int(tokenizer.model_max_length)


def _upstream(nlp: Language, name: str) -> tuple[str, Transformer]:
    for upstream, pipe in nlp.pipeline:
        if isinstance(pipe, Transformer) and name in pipe.listening_components:
            return upstream, pipe
    raise BertNERError(f"{name}: listens to a transformer, but no transformer component feeds it")


def print_report(report: DataReport, msg: Printer) -> None:
    msg.divider("Named Entity Recognition (spaCy's checks)")
    msg.text(f"{report.n_train} training docs, {report.n_dev} evaluation docs")
    msg.info(
        f"{len(report.label_counts)} label(s): "
        + _format_labels(report.label_counts.most_common(), counts=True)
    )
    msg.text(f"{report.missing_values} missing value(s) (tokens with '-' label)")
    if report.whitespace_entities:
        msg.fail(
            f"{report.whitespace_entities} entity span(s) starting or ending on a whitespace token"
        )
    else:
        msg.good("No entities consisting of or starting/ending with whitespace")
    if report.sentence_crossing_entities:
        msg.warn(f"{report.sentence_crossing_entities} entity span(s) crossing sentence boundaries")
    else:
        msg.good("No entities crossing sentence boundaries")
    for label, count in report.low_count_labels.items():
        msg.warn(f"Low number of examples for label '{label}' ({count})")
    for label in report.labels_in_every_doc:
        msg.warn(f"No examples for texts WITHOUT new label '{label}'")
    if not report.low_count_labels:
        msg.good("Good amount of examples for all labels")
    for component in report.components:
        _print_component(component, msg)


def _print_component(c: ComponentReport, msg: Printer) -> None:
    msg.divider(f"bert_ner: {c.name}")
    if c.head_tags is None:
        msg.info(f"No head yet: initialize gives it one for {len(c.missing_tags)} tags")
    elif c.missing_tags:
        msg.warn(
            f"Tags the pretrained head lacks ({len(c.missing_tags)}; initialize adds their "
            f"rows, a sourced component cannot learn them): {', '.join(c.missing_tags)}"
        )
    else:
        msg.good("The pretrained head has every tag of the data")
    if c.n_bad_gold:
        msg.fail(
            f"{c.n_bad_gold} gold entities that on_bad_gold would meet "
            '("error" stops on the first, "skip" leaves them out of the loss)'
        )
        for line in c.bad_gold:
            msg.text(f"  {line}")
    else:
        msg.good("Every gold entity aligns with the tokenizer")
    if c.upstream is not None:
        _print_spans(c, msg)
    elif c.pieces_per_doc:
        pieces = np.asarray(c.pieces_per_doc)
        windows = np.asarray(c.windows_per_doc)
        width = c.window_length
        over = int((windows > 1).sum())
        msg.info(
            f"Wordpieces per doc: mean {pieces.mean():.0f}, median {np.median(pieces):.0f}, "
            f"max {pieces.max()}; window length {width} (stride {c.stride})"
        )
        msg.info(
            f"Windows per doc: mean {windows.mean():.2f}, max {windows.max()}; {over} of "
            f"{len(windows)} docs need more than one window (strided, nothing is truncated)"
        )


def _print_spans(c: ComponentReport, msg: Printer) -> None:
    if not c.pieces_per_span:
        return
    pieces, spans = np.asarray(c.pieces_per_span), np.asarray(c.windows_per_doc)
    msg.info(
        f"Reads the spans of transformer '{c.upstream}': mean {spans.mean():.2f}, max "
        f"{spans.max()} per doc; wordpieces per span: mean {pieces.mean():.0f}, median "
        f"{np.median(pieces):.0f}, max {pieces.max()}; the encoder reads {c.window_length}"
    )
    over = int((pieces > c.window_length).sum())
    if over:
        msg.warn(
            f"{over} of {len(pieces)} spans are longer than {c.window_length} wordpieces: "
            "spacy-transformers drops the rest, whose tokens get no vectors from that span "
            "(shorten the transformer's get_spans window)"
        )
    else:
        msg.good(f"Every span fits the encoder's {c.window_length} wordpieces")
