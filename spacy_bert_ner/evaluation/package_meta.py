"""The meta of a packaged pipeline: what `spacy package` puts in the package's meta.json and
README (description, author, license, data sources), with the performance the evaluation
measured on the test file rather than the dev scores `spacy train` leaves in the pipeline.
"""

from pathlib import Path
from typing import Any

from wasabi import msg

from ..errors import BertNERError
from ..io import read_json_object, write_json

#: Keys the template must give: `spacy package` would otherwise ship an empty field.
REQUIRED = ("description", "author", "license", "sources")


def package_meta(template_path: Path, metrics_path: Path) -> dict[str, Any]:
    """The template's fields plus `performance` from the `evaluate` command's metrics JSON:
    entity P/R/F (conlleval, as 0-1 floats under spaCy's `ents_*` names), per type, and the
    words/s of the evaluation."""
    template = read_json_object(template_path)
    missing = [key for key in REQUIRED if not template.get(key)]
    if missing:
        raise BertNERError(f"{template_path}: missing {', '.join(missing)}")
    metrics = read_json_object(metrics_path)
    try:
        scores = metrics["conlleval"]
        performance: dict[str, Any] = {
            "ents_p": scores["precision"],
            "ents_r": scores["recall"],
            "ents_f": scores["f1"],
            "ents_per_type": {
                label: {"p": s["precision"], "r": s["recall"], "f": s["f1"]}
                for label, s in scores["per_type"].items()
            },
        }
    except (KeyError, TypeError, AttributeError):
        raise BertNERError(
            f"{metrics_path}: not a metrics file of `python -m spacy_bert_ner evaluate`"
        ) from None
    if "words_per_second" in metrics:
        performance["speed"] = metrics["words_per_second"]
    data = Path(str(metrics.get("data_path", metrics_path))).name
    notes = template.get("notes", "")
    performance_note = (
        f"Performance: entity-level scores (conlleval) on {data}, "
        f"{metrics.get('n_docs', '?')} documents."
    )
    return {
        **template,
        "performance": performance,
        "notes": f"{notes}\n\n{performance_note}".strip(),
    }


def write_package_meta(template_path: Path, metrics_path: Path, output: Path) -> dict[str, Any]:
    meta = package_meta(template_path, metrics_path)
    write_json(output, meta)
    msg.good(f"Package meta written to {output} (ents_f {meta['performance']['ents_f']:.4f})")
    return meta
