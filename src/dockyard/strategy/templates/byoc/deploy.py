"""Deploy this BYOC container with model/ as its model data and print a prediction.

    python deploy.py --endpoint-url http://127.0.0.1:8780                  # dockyard, process runtime
    docker build -t __PROJECT__ . && python deploy.py --image __PROJECT__  # dockyard, docker runtime

On dockyard's process runtime the image is this directory itself: a directory holding an executable
``serve`` runs as a container. Elsewhere, build the Dockerfile and pass the image with --image.
"""

from endpoint import HERE, SAMPLE_CSV, Deployment, arguments, pack


def main() -> None:
    parser = arguments(__doc__, "__PROJECT__")
    parser.add_argument("--image", default=str(HERE), help="serving image (default: this directory)")
    args = parser.parse_args()
    tarball = pack(HERE / "model", HERE / "build" / "model.tar.gz")
    with Deployment(args) as deployment:
        deployment.create(PrimaryContainer={"Image": args.image, "ModelDataUrl": deployment.model_data(tarball)})
        print(deployment.invoke(SAMPLE_CSV))


if __name__ == "__main__":
    main()
