"""Train a small XGBoost classifier on the iris data bundled with scikit-learn; save model/xgboost-model.

Replace this with your own training: the managed XGBoost image loads the booster saved as
xgboost-model (XGBoost's own format, not a pickle).
"""

from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_iris

HERE = Path(__file__).resolve().parent


def main() -> None:
    x, y = load_iris(return_X_y=True)
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=20)
    out = HERE / "model" / "xgboost-model"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(booster.save_raw("json"))
    accuracy = (np.argmax(booster.predict(xgb.DMatrix(x)), axis=1) == y).mean()
    print(f"Saved {out.relative_to(HERE)} (training accuracy {accuracy:.2f}).")


if __name__ == "__main__":
    main()
