"""Deploy logistic, tree and knn behind one multi-model endpoint; ask each one by TargetModel.

    python train.py
    python deploy.py --endpoint-url http://127.0.0.1:8780     # dockyard; no --endpoint-url: AWS

Each model is its own model.tar.gz under one prefix (build/models/, or --s3-prefix on AWS); the
endpoint loads a model into its one container the first time a request names it.
"""

import json

from endpoint import HERE, SAMPLE_CSV, Deployment, arguments, pack

IMAGE = "__SKLEARN_IMAGE__"
MODELS = ("logistic", "tree", "knn")


def main() -> None:
    args = arguments(__doc__, "__PROJECT__").parse_args()
    if not all((HERE / "models" / name / "model.joblib").is_file() for name in MODELS):
        raise SystemExit("The models are not trained yet: run python train.py first.")
    with Deployment(args) as deployment:
        # Every tarball lands under the same prefix: the ModelDataUrl is that prefix.
        urls = [deployment.model_data(pack(HERE / "models" / name, HERE / "build" / "models" / f"{name}.tar.gz"))
                for name in MODELS]
        prefix = urls[0].rsplit("/", 1)[0] + "/"
        deployment.create(PrimaryContainer={"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": prefix})
        answers = {name: json.loads(deployment.invoke(SAMPLE_CSV, TargetModel=f"{name}.tar.gz")) for name in MODELS}
        print(json.dumps(answers))


if __name__ == "__main__":
    main()
