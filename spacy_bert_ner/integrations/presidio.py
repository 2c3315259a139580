"""Microsoft Presidio over a `bert_ner` pipeline, with our calibrated scores.

Presidio's own spaCy engine loads a pipeline by name and finds its entities, but gives every
one the same score (`NerModelConfiguration.default_score`, 0.85), so a threshold on Presidio's
side keeps all of them or none. `presidio_nlp_engine` is that engine with two changes: each
entity carries the score the pipeline gave it (`span._.bert_ner_score`, the calibrated
probability that exactly this span has exactly this label), and the entities are read where the
pipeline writes them (`doc.ents`, or its `spans_key`). Our labels get Presidio's entity names
through Presidio's own mapping (PER -> PERSON, LOC -> LOCATION, ORG -> ORGANIZATION, ...);
a label without one (MISC) is left out rather than handed on under a name Presidio does not
know. The pipeline is loaded the project's way (`load_pipeline`: offline, no download of an
`en_core_web_*` model).

Presidio is an optional extra (`pip install 'spacy-bert-ner[presidio]'`): it is imported when an
engine is made, through `extras.require`, so importing this module needs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..extras import require
from ..pipeline.loading import bert_ner_pipes, entity_getter, load_pipeline
from ..pipeline.spans import SCORE_EXTENSION

PURPOSE = "Presidio with bert_ner's scores"


def presidio_nlp_engine(
    pipeline: str | Language,
    *,
    language: str = "en",
    entity_mapping: Mapping[str, str] | None = None,
) -> Any:
    """A Presidio `NlpEngine` (a `SpacyNlpEngine`) over `pipeline` (a directory, a package name
    or a loaded pipeline) for texts in `language`. `entity_mapping` maps our labels to
    Presidio's entity names (by default Presidio's own mapping); labels it does not name are
    left out. Hand it to `AnalyzerEngine(nlp_engine=..., supported_languages=[language])`."""
    nlp_engine = require("presidio_analyzer.nlp_engine", PURPOSE)
    nlp = load_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
    names = dict(
        entity_mapping or nlp_engine.NerModelConfiguration().model_to_presidio_entity_mapping
    )
    labels = {label for _, pipe in bert_ner_pipes(nlp) for label in pipe.labels}
    configuration = nlp_engine.NerModelConfiguration(
        model_to_presidio_entity_mapping={
            label: names[label] for label in labels if label in names
        },
        labels_to_ignore=sorted(labels - set(names)),
        low_score_entity_names=[],  # our scores are calibrated: none is lowered
    )
    return engine_class()(nlp, language, configuration)


@cache
def engine_class() -> type:
    """The engine's class, made once Presidio is imported (it subclasses Presidio's)."""
    spacy_engine: Any = require("presidio_analyzer.nlp_engine", PURPOSE).SpacyNlpEngine

    class BertNerNlpEngine(spacy_engine):
        """Presidio's spaCy engine over a loaded `bert_ner` pipeline, scores included."""

        def __init__(self, nlp: Language, language: str, configuration: Any) -> None:
            model = {"lang_code": language, "model_name": str(nlp.meta.get("name"))}
            super().__init__(models=[model], ner_model_configuration=configuration)
            self.nlp = {language: nlp}
            self.entities_of = entity_getter(nlp)

        def load(self) -> None:
            """Nothing to do: the pipeline was loaded when the engine was made (Presidio's
            engine would download a model it cannot find)."""

        def _get_entities(self, doc: Doc) -> list[Span]:
            """Copies of the pipeline's entities: Presidio relabels the spans it gets, and a
            span of a `doc.spans` group shares its label with the group."""
            return [Span(doc, s.start, s.end, label=s.label) for s in self.entities_of(doc)]

        def _get_scores_for_entities(self, doc: Doc) -> list[float]:
            """Each entity's score from the pipeline; Presidio's default for an entity that
            another component put there (it has none)."""
            default = self.ner_model_configuration.default_score
            scores = (span._.get(SCORE_EXTENSION) for span in self.entities_of(doc))
            return [default if score is None else float(score) for score in scores]

    return BertNerNlpEngine
