"""Deploy logistic and tree as one multi-container endpoint with Direct invocation; ask each one.

    python train.py
    python deploy.py --endpoint-url http://127.0.0.1:8780     # dockyard; no --endpoint-url: AWS

Both containers run on one instance; each request names its container with TargetContainerHostname.
"""

import json

from endpoint import HERE, SAMPLE_CSV, Deployment, arguments, pack

IMAGE = "__SKLEARN_IMAGE__"
HOSTNAMES = ("logistic", "tree")


def main() -> None:
    args = arguments(__doc__, "__PROJECT__").parse_args()
    if not all((HERE / host / "model.joblib").is_file() for host in HOSTNAMES):
        raise SystemExit("The models are not trained yet: run python train.py first.")
    with Deployment(args) as deployment:
        containers = [
            deployment.container(IMAGE, pack(HERE / host, HERE / "build" / host / "model.tar.gz"), ContainerHostname=host)
            for host in HOSTNAMES
        ]
        deployment.create(Containers=containers, InferenceExecutionConfig={"Mode": "Direct"})
        answers = {host: json.loads(deployment.invoke(SAMPLE_CSV, TargetContainerHostname=host)) for host in HOSTNAMES}
        print(json.dumps(answers))


if __name__ == "__main__":
    main()
