"""Train a two-step pipeline on the iris data bundled with scikit-learn: a scaler, then a classifier.

Each step is saved as its own model, served by its own container: preprocess/model.joblib and
classifier/model.joblib.
"""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent


def main() -> None:
    x, y = load_iris(return_X_y=True)
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(max_iter=500).fit(scaler.transform(x), y)
    for step, model in (("preprocess", scaler), ("classifier", classifier)):
        (HERE / step).mkdir(exist_ok=True)
        joblib.dump(model, HERE / step / "model.joblib")
    print(f"Saved preprocess/ and classifier/ (accuracy {classifier.score(scaler.transform(x), y):.2f}).")


if __name__ == "__main__":
    main()
