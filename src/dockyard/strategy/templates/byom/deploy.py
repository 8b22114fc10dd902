"""Deploy build/model.tar.gz (written by `dockyard package`) on the managed image; print a prediction.

    python train.py
    dockyard package model/model.joblib --framework sklearn --code code --output build/model.tar.gz
    python deploy.py --endpoint-url http://127.0.0.1:8780     # dockyard; no --endpoint-url: AWS
"""

from pathlib import Path

from endpoint import HERE, SAMPLE_CSV, Deployment, arguments

IMAGE = "__SKLEARN_IMAGE__"


def main() -> None:
    parser = arguments(__doc__, "__PROJECT__")
    parser.add_argument("--image", default=IMAGE, help="serving image (default: the managed scikit-learn image)")
    parser.add_argument("--model-data", type=Path, default=HERE / "build" / "model.tar.gz", help="the packaged model")
    args = parser.parse_args()
    if not args.model_data.is_file():
        raise SystemExit(f"There is no {args.model_data} yet: run dockyard package first (see README.md).")
    with Deployment(args) as deployment:
        deployment.create(PrimaryContainer=deployment.container(args.image, args.model_data))
        print(deployment.invoke(SAMPLE_CSV))


if __name__ == "__main__":
    main()
