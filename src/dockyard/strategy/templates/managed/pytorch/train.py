"""Train a small PyTorch classifier on the iris data bundled with scikit-learn; save model/model.pt.

Replace this with your own training: the managed PyTorch image loads model.pt as TorchScript
(torch.jit.save), or give inference.py a model_fn for another format.
"""

import warnings
from pathlib import Path

import torch
from sklearn.datasets import load_iris

HERE = Path(__file__).resolve().parent


def main() -> None:
    torch.manual_seed(0)
    x, y = load_iris(return_X_y=True)
    inputs, targets = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs), targets).backward()
        optimiser.step()
    out = HERE / "model" / "model.pt"
    out.parent.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        # SageMaker's PyTorch image loads TorchScript, which newer torch versions deprecate.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net.eval()), str(out))
    accuracy = (net(inputs).argmax(dim=1) == targets).float().mean()
    print(f"Saved {out.relative_to(HERE)} (training accuracy {accuracy:.2f}).")


if __name__ == "__main__":
    main()
