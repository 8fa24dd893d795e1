"""Make stock detectron2 0.6 import and run the VG detector without its compiled ops.

The PyPI sdist of detectron2 has no C++/CUDA sources. Two things then stop it from running the
bottom-up-attention detector on a current stack; neither affects the detector's numerics:

* ``detectron2/layers/deform_conv.py`` imports ``detectron2._C`` at import time. Only deformable
  and rotated-box ops use it; the VG detector uses ``torchvision.ops`` (nms, RoIPool) instead.
  We register an empty ``detectron2._C`` module whose attribute lookups raise ``AttributeError``
  naming the missing op, so any accidental use fails loudly instead of silently.
* It calls ``PIL.Image.LINEAR``, removed in Pillow 10; it is the same filter as ``BILINEAR``.

When an official build is installed (``detectron2._C`` exists as a compiled module) ``ensure()``
changes nothing. Call ``ensure()`` before the first ``import detectron2`` submodule; only
``extract/detector*.py`` and this module import detectron2.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
import warnings

_STATE: dict[str, bool] = {}


class _MissingOps(types.ModuleType):
    """Stand-in for ``detectron2._C``: importable, but every op lookup fails with a clear error."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"detectron2._C.{name} is a compiled op that this installation does not have "
            "(detectron2 was installed from the PyPI sdist without C++ sources). The VG detector "
            "does not need it; for deformable or rotated-box ops install an official build."
        )


def has_compiled_ops() -> bool:
    """True when a real compiled ``detectron2._C`` extension is installed."""
    mod = sys.modules.get("detectron2._C")
    if mod is not None:
        return not isinstance(mod, _MissingOps)
    try:
        spec = importlib.util.find_spec("detectron2._C")
    except ModuleNotFoundError:  # detectron2 itself missing
        return False
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def ensure() -> dict[str, bool]:
    """Apply the shims that are needed; return which ones were applied.

    Idempotent. Returns ``{"compiled_ops": bool, "stub_C": bool, "pil_linear": bool}``.
    """
    if _STATE:
        return dict(_STATE)
    from PIL import Image

    # detectron2 0.6 decorates helpers with torch.jit.script and calls meshgrid without
    # ``indexing``: harmless deprecation noise on current torch, silenced for these two only.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated")
    warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release")
    pil_linear = False
    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR  # type: ignore[attr-defined]
        pil_linear = True

    compiled = has_compiled_ops()
    stub = False
    if not compiled:
        import detectron2  # noqa: F401  (raises ModuleNotFoundError with a clear name if absent)

        mod = _MissingOps("detectron2._C")
        mod.__file__ = "<no compiled ops>"
        sys.modules["detectron2._C"] = mod
        detectron2._C = mod  # type: ignore[attr-defined]
        stub = True
    _STATE.update(compiled_ops=compiled, stub_C=stub, pil_linear=pil_linear)
    return dict(_STATE)
