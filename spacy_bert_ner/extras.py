"""The optional extras of setup.cfg, and the one guard that imports what they install.

The core needs none of them. Code that does imports an optional module through `require`,
which turns a missing one into the project's one-line error naming the extra that really
installs it; `EXTRA_OF` is the one list of which extra that is (tests/test_extras.py checks
each entry against setup.cfg).
"""

import importlib
from types import ModuleType

from .errors import BertNERError, one_line

#: The extra of setup.cfg that installs each optional module and its submodules. A subpackage
#: listed apart (`ray.data`) needs an extra of its distribution (`ray[data]`) beyond the base.
EXTRA_OF = {
    "matplotlib": "project",
    "mlflow": "mlflow",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "optuna": "tune",
    # Ray Data brings pyarrow, so the ray extra is the one that reads Parquet input too.
    "pyarrow": "ray",
    "ray.data": "ray",
    "ray.tune": "ray",
    "ray.train": "ray",
    # `serve --engine ray` needs both: the app (serve) and Ray Serve (ray).
    "ray.serve": "ray",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "presidio_analyzer": "presidio",
    "wandb": "wandb",
}


def extra_of(module: str) -> str:
    """The extra that installs `module`: its own entry, or that of the nearest package above
    it. A module without one is a mistake in the package, so it raises KeyError."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        extra = EXTRA_OF.get(".".join(parts[:end]))
        if extra is not None:
            return extra
    raise KeyError(f"{module}: not an optional module of spacy-bert-ner (see EXTRA_OF)")


def require(module: str, purpose: str) -> ModuleType:
    """`import module`, or a one-line error saying that `purpose` needs it and which extra to
    install. The import's own message is kept: where the module is there but one of its
    dependencies is not, it names that one."""
    extra = extra_of(module)
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BertNERError(
            f"{purpose} needs {module} ({one_line(err)}): pip install 'spacy-bert-ner[{extra}]'"
        ) from err
