"""Load detector weights safely and strictly (no detectron2 needed).

Formats:

* ``.pkl``: the converted bottom-up-attention checkpoint, ``{"model": {name: ndarray}, ...}``
  (a bare ``{name: ndarray}`` is accepted too). Read with a restricted unpickler that resolves
  only what numpy arrays need (array reconstruction, dtypes, numpy scalars, ``_codecs.encode``
  for byte strings, ``OrderedDict``); any other global, such as ``os.system``, is refused
  before anything runs.
* ``.pth``/``.pt``: ``torch.load(weights_only=True)`` of ``{"model": state_dict}`` or a bare
  state dict.

Every key and shape is checked against the model's own state dict (the expected layout); the
error names each missing, unexpected and mis-shaped key. Nothing is skipped silently (stock
detectron2 loads non-strictly and drops wrong shapes). The stored RPN cell anchors
(``proposal_generator.anchor_generator.cell_anchors.0``, saved by the detectron2 port, where
they replace the configured anchors on load) are compared with the configured ones; if they
differ the stored ones are used, with a warning, and the run records it.
"""

from __future__ import annotations

import codecs
import collections
import hashlib
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

logger = logging.getLogger(__name__)

ANCHORS_KEY = "proposal_generator.anchor_generator.cell_anchors.0"
_SHOW = 8  # keys named per problem kind in an error message

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED_GLOBALS[(f"{_mod}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_GLOBALS[(f"{_mod}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED_GLOBALS[(f"{_mod}.numeric", "_frombuffer")] = _numeric._frombuffer


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says which file and what is wrong."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, path: Path) -> None:
        super().__init__(fh)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self._path}: refusing to unpickle {module}.{name}: a weights file may hold "
                "only numpy arrays, dtypes, dicts, lists, strings and numbers"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self._path}: refusing a pickle persistent id ({pid!r})")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray | torch.Tensor]:
    """The weights in ``path`` as ``{name: array}`` (numeric arrays or tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix in (".pth", ".pt"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"{path}: refused by torch.load(weights_only=True): {first}"
            ) from None
    elif path.suffix == ".pkl":
        with open(path, "rb") as fh:
            try:
                obj = _RestrictedUnpickler(fh, path).load()
            except CheckpointError:
                raise
            except Exception as exc:
                raise CheckpointError(f"{path}: unreadable pickle: {exc}") from None
    else:
        raise CheckpointError(f"{path}: unknown checkpoint format (use .pkl, .pth or .pt)")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of weights, got {type(obj).__name__}")
    bad = [
        str(k)
        for k, v in obj.items()
        if not isinstance(k, str)
        or not isinstance(v, (np.ndarray, torch.Tensor))
        or (isinstance(v, np.ndarray) and v.dtype.kind not in "biuf")
    ]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} entries are not numeric arrays keyed by name: {bad[:_SHOW]}"
        )
    return obj


def check_layout(
    weights: dict[str, Any],
    expected: dict[str, tuple[int, ...]],
    *,
    optional: tuple[str, ...] = (ANCHORS_KEY,),
    source: str = "checkpoint",
) -> None:
    """Raise :class:`CheckpointError` unless ``weights`` has exactly the ``expected`` names and
    shapes (names in ``optional`` may be absent). The message lists every kind of problem."""
    missing = [k for k in expected if k not in weights and k not in optional]
    unexpected = [k for k in weights if k not in expected]
    wrong = [
        f"{k} {list(weights[k].shape)} (expected {list(shape)})"
        for k, shape in expected.items()
        if k in weights and tuple(weights[k].shape) != tuple(shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" ... and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}")
    if problems:
        raise CheckpointError(
            f"{source} does not match the VG detector layout ({len(expected)} tensors): "
            + "; ".join(problems)
        )


def compare_anchors(stored: Any, configured: torch.Tensor) -> str | None:
    """None when stored RPN cell anchors [A,4] equal the configured ones (within 1e-3 px), else
    a description of the difference."""
    stored_t = torch.as_tensor(np.asarray(stored), dtype=torch.float32)
    configured = configured.float().cpu()
    if stored_t.shape != configured.shape:
        return f"shape {list(stored_t.shape)} vs configured {list(configured.shape)}"
    diff = float((stored_t - configured).abs().max()) if stored_t.numel() else 0.0
    if diff <= 1e-3:
        return None
    return (
        f"max difference {diff:.2f} px; stored {stored_t.tolist()} vs configured "
        f"{configured.tolist()}"
    )


@dataclass
class LoadedWeights:
    """What :func:`load_weights` loaded: the file's sha256 and where the RPN anchors come from
    (``configured``, ``checkpoint (same as configured)`` or ``checkpoint (differ from
    configured)``)."""

    sha256: str
    anchors: str


def _as_tensor(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.from_numpy(np.array(value, copy=True))  # unpickled arrays may be read-only


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> LoadedWeights:
    """Load ``path`` into ``model`` strictly.

    Checks names and shapes (:func:`check_layout`) and finiteness. Stored RPN cell anchors are
    compared with the configured ones (:func:`compare_anchors`): when they differ, the stored
    ones are used (the RPN was trained with them; the detectron2 port does the same) and a
    warning says so. A checkpoint without stored anchors keeps the configured ones.
    """
    path = Path(path)
    weights = read_checkpoint(path)
    own = model.state_dict()
    check_layout(weights, {k: tuple(v.shape) for k, v in own.items()}, source=str(path))
    anchors = "configured"
    if ANCHORS_KEY in weights:
        difference = compare_anchors(weights[ANCHORS_KEY], own[ANCHORS_KEY])
        anchors = "checkpoint (same as configured)"
        if difference:
            anchors = "checkpoint (differ from configured)"
            logger.warning(
                "%s: its RPN cell anchors differ from MODEL.ANCHOR_GENERATOR (%s); using the "
                "checkpoint's, which its RPN was trained with",
                path,
                difference,
            )
    else:
        logger.info("%s stores no RPN cell anchors; using the configured ones", path)
    state = {}
    for name, target in own.items():
        value = _as_tensor(weights[name]) if name in weights else target
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: {name} holds non-finite values")
        state[name] = value.to(dtype=target.dtype)
    model.load_state_dict(state, strict=True)
    sha = file_sha256(path)
    logger.info(
        "loaded %d tensors from %s (sha256 %s, anchors: %s)", len(state), path, sha[:16], anchors
    )
    return LoadedWeights(sha, anchors)
