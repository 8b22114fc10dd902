"""The managed PyTorch image by its AWS URI, as SageMaker's PyTorch inference toolkit serves:
TorchScript ``model.pt`` by default, a ``state_dict`` through the user's ``model_fn``, JSON, CSV
and npy both ways, eval mode and no autograd; a GPU tag is served on the CPU."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from needs import require

from frameworks.deploy import deploy_all, invoke
from frameworks.models import (
    PYTORCH_GPU_URI,
    PYTORCH_URI,
    ROWS,
    csv,
    iris,
    iris_net,
    package,
)

torch = require("torch")

# SageMaker's toolkit loads TorchScript, which this torch deprecates in favour of torch.export.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

STATE_DICT_INFERENCE = """
    import os

    import torch

    class IrisNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(4, 16)
            self.out = torch.nn.Linear(16, 3)
            self.dropout = torch.nn.Dropout(0.5)  # active in train mode only

        def forward(self, x):
            assert not torch.is_grad_enabled(), "predict_fn must run without autograd"
            return self.out(self.dropout(torch.relu(self.hidden(x))))

    def model_fn(model_dir):
        model = IrisNet()
        model.load_state_dict(torch.load(os.path.join(model_dir, "model.pth"), weights_only=True))
        return model.train()  # the default predict_fn must switch it to eval mode
"""


@pytest.fixture(scope="module")
def net(sm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pytorch")
    model = iris_net()
    state = {"hidden.weight": model[0].weight, "hidden.bias": model[0].bias,
             "out.weight": model[2].weight, "out.bias": model[2].bias}
    deploy_all(sm, {
        "pt-torchscript": {"PrimaryContainer": {"Image": PYTORCH_URI, "ModelDataUrl": package(
            tmp, "script", lambda d: torch.jit.script(model).save(str(d / "model.pt")))}},
        "pt-state-dict": {"PrimaryContainer": {"Image": PYTORCH_GPU_URI, "ModelDataUrl": package(
            tmp, "state", lambda d: torch.save(state, d / "model.pth"), {"inference.py": STATE_DICT_INFERENCE})}},
    })
    return model


def logits(model, rows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(rows)).numpy()


@pytest.mark.parametrize("endpoint", ["pt-torchscript", "pt-state-dict"])
def test_json_in_json_out(net, rt, endpoint):
    x, y = iris()
    content_type, body = invoke(rt, endpoint, json.dumps(x[ROWS].tolist()), ContentType="application/json",
                                Accept="application/json")
    assert content_type == "application/json"
    answer = np.array(json.loads(body))
    np.testing.assert_allclose(answer, logits(net, x[ROWS]), rtol=1e-5, atol=1e-6)
    assert answer.argmax(axis=1).tolist() == y[ROWS].tolist()


def test_csv_and_npy_both_ways(net, rt):
    x, _ = iris()
    want = logits(net, x[ROWS])
    _, body = invoke(rt, "pt-torchscript", csv(x[ROWS]), ContentType="text/csv", Accept="text/csv")
    np.testing.assert_allclose(np.loadtxt(io.StringIO(body.decode()), delimiter=","), want, rtol=1e-5, atol=1e-6)
    npy = io.BytesIO()
    np.save(npy, x[ROWS])
    content_type, body = invoke(rt, "pt-torchscript", npy.getvalue(), ContentType="application/x-npy",
                                Accept="application/x-npy")
    assert content_type == "application/x-npy"
    answer = np.load(io.BytesIO(body))
    assert answer.dtype == np.float32
    np.testing.assert_allclose(answer, want, rtol=1e-5, atol=1e-6)


def test_gpu_tag_is_served_on_the_cpu_with_a_note(net, server):
    assert f"Image {PYTORCH_GPU_URI} is a GPU build; the process runtime serves it on the CPU" in server.log()
