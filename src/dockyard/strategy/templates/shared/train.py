"""Train a small classifier on the iris data that ships with scikit-learn; save model/model.joblib.

Replace this with your own training: whatever it does, it ends with a saved model file.
"""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def main() -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    out = HERE / "model" / "model.joblib"
    out.parent.mkdir(exist_ok=True)
    joblib.dump(model, out)
    print(f"Saved {out.relative_to(HERE)} (training accuracy {model.score(x, y):.2f}).")


if __name__ == "__main__":
    main()
