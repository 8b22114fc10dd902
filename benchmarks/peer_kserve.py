"""KServe's scikit-learn predictor, run inside the KServe virtualenv by the benchmark.

KServe publishes its ``sklearnserver`` as a container image, not on PyPI, so this is the same
``kserve.Model`` subclass it runs: load the one joblib file, ``predict`` the request's instances
(V1 protocol: ``POST /v1/models/<name>:predict`` with ``{"instances": [...]}``).
``python peer_kserve.py --model_dir DIR --model_name NAME --http_port P --grpc_port G [kserve flags]``
"""

import argparse
import pathlib

import joblib
from kserve import Model, ModelServer
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.ready = False

    def load(self) -> bool:
        self._model = joblib.load(pathlib.Path(self.model_dir) / "model.joblib")
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        return get_predict_response(payload, self._model.predict(get_predict_input(payload)), self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--model_name", required=True)
    args, _ = parser.parse_known_args()
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    ModelServer().start([model])
