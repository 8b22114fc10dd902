"""Deploy model/ (the trained model and code/inference.py) and print a prediction.

    python train.py
    python deploy.py --endpoint-url http://127.0.0.1:8780     # dockyard; no --endpoint-url: AWS
"""

from endpoint import HERE, SAMPLE_CSV, Deployment, arguments, pack

IMAGE = "__IMAGE__"
MODEL_FILE = "__MODEL_FILE__"


def main() -> None:
    parser = arguments(__doc__, "__PROJECT__")
    parser.add_argument("--image", default=IMAGE, help="serving image (default: the managed __FRAMEWORK__ image)")
    args = parser.parse_args()
    if not (HERE / "model" / MODEL_FILE).exists():
        raise SystemExit(f"There is no model/{MODEL_FILE} yet: run python train.py first.")
    tarball = pack(HERE / "model", HERE / "build" / "model.tar.gz")
    with Deployment(args) as deployment:
        deployment.create(PrimaryContainer=deployment.container(args.image, tarball))
        print(deployment.invoke(SAMPLE_CSV))


if __name__ == "__main__":
    main()
