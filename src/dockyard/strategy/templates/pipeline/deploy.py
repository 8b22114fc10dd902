"""Deploy preprocess → classifier as a serial inference pipeline and print a prediction.

    python train.py
    python deploy.py --endpoint-url http://127.0.0.1:8780     # dockyard; no --endpoint-url: AWS

One model with two containers on one instance; each invoke_endpoint call runs them in order.
"""

from endpoint import HERE, SAMPLE_CSV, Deployment, arguments, pack

IMAGE = "__SKLEARN_IMAGE__"
STEPS = ("preprocess", "classifier")


def main() -> None:
    args = arguments(__doc__, "__PROJECT__").parse_args()
    if not all((HERE / step / "model.joblib").is_file() for step in STEPS):
        raise SystemExit("The models are not trained yet: run python train.py first.")
    with Deployment(args) as deployment:
        containers = [
            deployment.container(IMAGE, pack(HERE / step, HERE / "build" / step / "model.tar.gz"), ContainerHostname=step)
            for step in STEPS
        ]
        deployment.create(Containers=containers, InferenceExecutionConfig={"Mode": "Serial"})
        print(deployment.invoke(SAMPLE_CSV))


if __name__ == "__main__":
    main()
