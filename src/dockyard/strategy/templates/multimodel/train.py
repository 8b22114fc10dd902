"""Train three classifiers on the iris data bundled with scikit-learn, one per model of a
multi-model endpoint: models/<name>/model.joblib, each beside its own code/inference.py."""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

HERE = Path(__file__).resolve().parent
MODELS = ("logistic", "tree", "knn")


def main() -> None:
    x, y = load_iris(return_X_y=True)
    models = {
        "logistic": LogisticRegression(max_iter=500).fit(x, y),
        "tree": DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y),
        "knn": KNeighborsClassifier(n_neighbors=5).fit(x, y),
    }
    for name, model in models.items():
        (HERE / "models" / name).mkdir(parents=True, exist_ok=True)
        joblib.dump(model, HERE / "models" / name / "model.joblib")
        print(f"Saved models/{name}/model.joblib (training accuracy {model.score(x, y):.2f}).")


if __name__ == "__main__":
    main()
