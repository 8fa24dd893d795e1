"""extract.d2compat: stock detectron2 imports without compiled ops, and stays out of the way."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_shims_let_detectron2_import_and_fail_loudly_on_missing_ops():
    out = _run(
        """
        import extract.d2compat as c
        state = c.ensure()
        assert c.ensure() == state  # idempotent
        import detectron2.layers, detectron2.modeling  # deform_conv imports detectron2._C
        from PIL import Image
        assert Image.LINEAR == Image.BILINEAR
        try:
            detectron2.layers.deform_conv._C.deform_conv_forward
        except AttributeError as e:
            msg = str(e)
        print(state["compiled_ops"], state["stub_C"], "compiled op" in msg)
        """
    )
    assert out == "False True True"


def test_does_nothing_when_compiled_ops_are_present():
    # An official build provides detectron2._C; simulate its presence in sys.modules.
    out = _run(
        """
        import sys, types
        real = types.ModuleType("detectron2._C")
        sys.modules["detectron2._C"] = real
        import extract.d2compat as c
        state = c.ensure()
        print(state["compiled_ops"], state["stub_C"], sys.modules["detectron2._C"] is real)
        """
    )
    assert out == "True False True"


def test_builds_a_c4_faster_rcnn_on_cpu():
    out = _run(
        """
        import extract.d2compat as c
        c.ensure()
        import torch
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
        cfg = get_cfg()
        cfg.MODEL.DEVICE = "cpu"
        cfg.MODEL.RESNETS.DEPTH = 50
        cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 50
        cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 10
        cfg.INPUT.MIN_SIZE_TEST = 128
        cfg.INPUT.MAX_SIZE_TEST = 160
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        with torch.no_grad():
            out = model([{"image": torch.randint(0, 255, (3, 120, 160)).float()}])
        print(type(out[0]["instances"]).__name__)
        """
    )
    assert out == "Instances"
