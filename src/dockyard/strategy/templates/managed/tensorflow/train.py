"""Train a small Keras classifier on the iris data bundled with scikit-learn; export a SavedModel.

Replace this with your own training: the managed TensorFlow image serves the SavedModel under a
version directory, model/1/, as TensorFlow Serving does.
"""

from pathlib import Path

import keras
import numpy as np
from sklearn.datasets import load_iris

HERE = Path(__file__).resolve().parent


def main() -> None:
    keras.utils.set_random_seed(0)
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    model = keras.Sequential([
        keras.Input((4,), name="features"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=40, batch_size=32, verbose=0)
    out = HERE / "model" / "1"
    model.export(str(out), verbose=False)
    _, accuracy = model.evaluate(x, y, verbose=0)
    print(f"Saved {out.relative_to(HERE)}/ (training accuracy {accuracy:.2f}).")


if __name__ == "__main__":
    main()
