"""ONNX Runtime as bert_ner's CPU inference backend (`backend = "onnxruntime"`).

Only the forward pass moves: windows, alignment, decoding and scores stay the torch path's
code, so both backends give the same entities. The graph is exported from the very Hugging
Face model that is saved beside it (dynamic batch and length axes), and carries a
fingerprint of those weights in its metadata: a graph left over from other weights (a
retrained model copied over an old directory) is refused by name instead of silently
predicting with the old model.

int8 uses onnxruntime's dynamic quantization, per output channel, with the first encoder
layer left in fp32 (the choice `runtime.quantize_int8` makes for torch, for the same reason:
the first layer is the one whose rounding costs F1) and each layer's feed-forward output
projection too (`FP32_NODES`).

The exporter is torch's TorchScript one (`dynamo=False`), as optimum's own export uses: the
torch.export-based default of torch >= 2.9 needs onnxscript, another dependency, and gives
the same graph for an encoder like BERT.
"""

import hashlib
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from ..errors import BertNERError, ModelLoadError, one_line
from ..extras import require
from ..io import atomic_path

logger = logging.getLogger(__name__)

#: The graphs a pipeline saved with the ORT backend holds beside its safetensors.
GRAPH_FILE = "model.onnx"
INT8_GRAPH_FILE = "model.int8.onnx"
#: Metadata key of the weights' fingerprint in an exported graph.
FINGERPRINT_KEY = "spacy_bert_ner_weights_sha256"
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: Nodes int8 keeps in fp32 (names as the exporter writes them): the first encoder layer, and
#: every layer's feed-forward output projection, whose inputs (after GELU) have the widest
#: range. On the cpu.cfg model (step-300 checkpoint) the first layer alone lost 0.32 test F1,
#: with the output projections too 0.17.
FP32_NODES = re.compile(r"/layer\.0/|/layer\.\d+/output/dense/")


def graph_file_name(int8: bool) -> str:
    return INT8_GRAPH_FILE if int8 else GRAPH_FILE


def weights_fingerprint(hf_model: PreTrainedModel) -> str:
    """sha256 over every tensor of the state dict (name, dtype, shape and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(hf_model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def export_graph(hf_model: PreTrainedModel, *, int8: bool) -> bytes:
    """The serialized ONNX graph of `hf_model` (int8-quantized when asked), fingerprinted."""
    onnx, _ = _import_onnx()
    names = _input_names(hf_model)
    sample = torch.ones((2, 8), dtype=torch.long)
    was_training = hf_model.training
    hf_model.eval()
    with (
        tempfile.TemporaryDirectory(prefix="bert_ner_onnx_") as tmp,
        warnings.catch_warnings(),
        torch.no_grad(),
    ):
        # The legacy-exporter deprecation notice and tracer notes about constant folding.
        warnings.simplefilter("ignore")
        exported = Path(tmp) / GRAPH_FILE
        torch.onnx.export(
            hf_model,
            (),
            exported,
            kwargs={name: sample for name in names},
            input_names=list(names),
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in (*names, "logits")},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        graph = onnx.load(str(exported))
    hf_model.train(was_training)
    if int8:
        graph = _quantize(graph)
    del graph.metadata_props[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = FINGERPRINT_KEY, weights_fingerprint(hf_model)
    return bytes(graph.SerializeToString())


def _quantize(graph: Any) -> Any:
    """onnxruntime's dynamic int8 quantization: per channel, MatMuls of the first layer kept."""
    onnx, _ = _import_onnx()
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    keep = fp32_nodes(graph)
    with tempfile.TemporaryDirectory(prefix="bert_ner_onnx_") as tmp:
        source, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
        target = Path(tmp) / "int8.onnx"
        onnx.save(graph, str(source))
        # Shape inference and graph clean-up first, as onnxruntime's quantization asks.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            prepared,
            target,
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=keep,
        )
        return onnx.load(str(target))


def fp32_nodes(graph: Any) -> list[str]:
    """The nodes int8 leaves in fp32 (`FP32_NODES`)."""
    return [node.name for node in graph.graph.node if FP32_NODES.search(node.name)]


def write_graph(graph: bytes, path: Path) -> None:
    with atomic_path(path) as tmp_path:
        tmp_path.write_bytes(graph)


@dataclass
class OnnxSession:
    """One `InferenceSession` per process over a graph (a saved file, or exported bytes).

    A process forked after the session started (`nlp.pipe(n_process=N)`) can neither use its
    parent's session nor start one (measured: onnxruntime 1.32 hangs in `InferenceSession`),
    so there it stops with an error instead. A pickled or copied session carries the graph and
    starts its own session on first use, so spawned workers (`n_process` under the spawn start
    method, Ray, joblib) run it. `threads` None follows torch's thread count when the session
    starts, which the host set (the cores given to a service replica).
    """

    graph: Path | bytes
    threads: int | None = None
    _session: Any = field(default=None, repr=False)
    _pid: int = -1

    @property
    def source(self) -> str:
        return str(self.graph) if isinstance(self.graph, Path) else "the exported graph"

    def session(self) -> Any:
        if self._session is not None and self._pid != os.getpid():
            raise BertNERError(
                "bert_ner: the onnxruntime backend cannot run in a process forked after its "
                "session started (nlp.pipe with n_process > 1, annotate --workers): ONNX "
                "Runtime hangs there. It runs its own threads (the `threads` setting), so use "
                "one process, or the torch backend for forked workers"
            )
        if self._session is None:
            _, ort = _import_onnx()
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads or torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            source = str(self.graph) if isinstance(self.graph, Path) else self.graph
            try:
                self._session = ort.InferenceSession(
                    source, options, providers=["CPUExecutionProvider"]
                )
            except Exception as err:  # onnxruntime raises its own pybind exception types
                raise ModelLoadError(
                    f"{self.source}: not a usable ONNX graph ({one_line(err)}); it is damaged "
                    "or cut short: export it again (python -m spacy_bert_ner export-onnx)"
                ) from None
            self._pid = os.getpid()
        return self._session

    def __getstate__(self) -> dict[str, Any]:
        """The graph itself, not the file it came from (a pickle may travel to another
        machine), and no live session: `InferenceSession` cannot be pickled."""
        return {"graph": self.graph_bytes(), "threads": self.threads, "_session": None, "_pid": -1}

    def graph_bytes(self) -> bytes:
        return self.graph.read_bytes() if isinstance(self.graph, Path) else self.graph

    def hold_graph(self) -> None:
        """Keep the graph in memory rather than as its file, which is about to go away (a
        pipe read from bytes reads them from a temporary directory)."""
        self.graph = self.graph_bytes()

    def fingerprint(self) -> str | None:
        return self.session().get_modelmeta().custom_metadata_map.get(FINGERPRINT_KEY)

    def run(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None
    ) -> np.ndarray:
        session = self.session()
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        wanted = {i.name for i in session.get_inputs()}
        if "token_type_ids" in wanted:
            feeds["token_type_ids"] = (
                token_type_ids if token_type_ids is not None else np.zeros_like(input_ids)
            )
        return session.run(["logits"], feeds)[0]

    def save(self, directory: Path, int8: bool) -> None:
        """Write the graph beside the weights under its file name."""
        write_graph(self.graph_bytes(), directory / graph_file_name(int8))


def open_session(
    hf_model: PreTrainedModel, graph_dir: Path | None, *, int8: bool, threads: int | None
) -> OnnxSession:
    """The session for `hf_model`: from the graph saved in `graph_dir` when there is one
    (refused unless it was exported from these weights), else from a fresh export."""
    if graph_dir is not None and (graph_dir / graph_file_name(int8)).is_file():
        path = graph_dir / graph_file_name(int8)
        session = OnnxSession(path, threads)
        found = session.fingerprint()
        if found != weights_fingerprint(hf_model):
            raise ModelLoadError(
                f"{path}: this ONNX graph was not exported from the weights beside it "
                f"({'no fingerprint' if found is None else 'other weights'}); delete it to "
                "export a new one at load, or run python -m spacy_bert_ner export-onnx"
            )
        return session
    logger.info("bert_ner: exporting the model to ONNX (int8: %s)", int8)
    return OnnxSession(export_graph(hf_model, int8=int8), threads)


def _input_names(hf_model: PreTrainedModel) -> tuple[str, ...]:
    import inspect

    accepted = inspect.signature(hf_model.forward).parameters
    return tuple(name for name in INPUT_NAMES if name in accepted)


def _import_onnx() -> tuple[Any, Any]:
    purpose = "bert_ner: backend 'onnxruntime'"
    return require("onnx", purpose), require("onnxruntime", purpose)
