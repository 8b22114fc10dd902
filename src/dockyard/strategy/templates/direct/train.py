"""Train two different classifiers on the iris data bundled with scikit-learn, for an A/B test.

logistic/model.joblib and tree/model.joblib each go into their own container.
"""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

HERE = Path(__file__).resolve().parent


def main() -> None:
    x, y = load_iris(return_X_y=True)
    models = {
        "logistic": LogisticRegression(max_iter=500).fit(x, y),
        "tree": DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y),
    }
    for name, model in models.items():
        (HERE / name).mkdir(exist_ok=True)
        joblib.dump(model, HERE / name / "model.joblib")
        print(f"Saved {name}/model.joblib (training accuracy {model.score(x, y):.2f}).")


if __name__ == "__main__":
    main()
