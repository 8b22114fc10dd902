"""Managed images: the recipe ``dockyard images build`` follows for every catalogue entry, and what
the built scikit-learn image carries (labels, tags, entry point)."""

from __future__ import annotations

import importlib.metadata

import pytest
from e2e.models import SKLEARN_URI

from dockyard.images import build as recipe
from dockyard.images.build_base import BuildError
from dockyard.images.catalogue import CATALOGUE

SKLEARN, PYTORCH = (next(m for m in CATALOGUE if m.name == n) for n in ("sklearn", "pytorch"))


def test_names_select_catalogue_entries_and_unknown_ones_are_named():
    assert recipe.select(["all"]) == list(CATALOGUE)
    assert recipe.select(["sklearn", "sklearn"]) == [SKLEARN]
    with pytest.raises(BuildError, match="No managed image named caffe; choose from sklearn, .* or all"):
        recipe.select(["caffe"])


def test_requirements_come_from_the_pip_extra_pinned_to_what_is_installed_here():
    reqs = recipe.requirements(SKLEARN)
    assert f"scikit-learn=={importlib.metadata.version('scikit-learn')}" in reqs
    assert f"numpy=={importlib.metadata.version('numpy')}" in reqs
    assert any(r.startswith("aiohttp") for r in reqs)
    assert not any(r.startswith(("boto3", "click", "docker")) for r in reqs)  # the server's own needs only


def test_tags_are_the_dockyard_name_and_the_aws_uris():
    tags = recipe.image_tags(SKLEARN)
    assert tags[0] == "dockyard/sklearn:latest"
    assert SKLEARN_URI in tags
    assert "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.0-1-cpu-py3" in tags
    assert recipe.image_tags(SKLEARN, aws=False) == ["dockyard/sklearn:latest"]


def test_torch_comes_only_from_a_local_cpu_wheel_or_a_named_index(tmp_path):
    empty = tmp_path / "empty"
    (empty / "ctx").mkdir(parents=True)
    options = recipe.BuildOptions(find_links=(empty,))
    with pytest.raises(BuildError, match="multi-GB CUDA build"):
        recipe.pip_lines(empty / "ctx", ["numpy==2.0.0", "torch==2.13.0+cpu"], options)

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    (wheels / wheel).write_bytes(b"")
    (tmp_path / "ctx").mkdir()
    lines = recipe.pip_lines(tmp_path / "ctx", ["numpy==2.0.0", "torch==2.13.0+cpu"], recipe.BuildOptions(find_links=(wheels,)))
    assert lines == ["COPY wheels/ /tmp/dockyard-wheels/",
                     f"RUN pip install /tmp/dockyard-wheels/{wheel} numpy==2.0.0 && rm -rf /tmp/dockyard-wheels"]
    assert (tmp_path / "ctx" / "wheels" / wheel).exists()

    lines = recipe.pip_lines(tmp_path / "ctx2", ["torch==2.13.0+cpu"],
                              recipe.BuildOptions(index_url="http://127.0.0.1:9/cpu-wheels"))
    assert lines[0] == "RUN pip install --index-url http://127.0.0.1:9/cpu-wheels torch==2.13.0+cpu"


def test_the_dockerfile_honours_the_container_contract():
    text = recipe.dockerfile("dockyard/base:bookworm", SKLEARN, ["RUN pip install x"], ca_bundle=True)
    assert text.startswith("FROM dockyard/base:bookworm\n")
    assert 'com.amazonaws.sagemaker.capabilities.accept-bind-to-port="true"' in text
    assert 'ENTRYPOINT ["python3", "-m", "dockyard.serving"]' in text
    assert "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in text
    assert "DOCKYARD_FRAMEWORK=sklearn" in text


@pytest.mark.docker
def test_the_built_image_carries_labels_tags_and_the_measured_framework_version(engine, sklearn_image):
    image = engine.images.get(sklearn_image)
    version = importlib.metadata.version("scikit-learn")
    assert image.labels[recipe.LABEL_BIND_TO_PORT] == "true"
    assert image.labels[recipe.LABEL_FRAMEWORK_VERSION] == version
    tags = {t.removeprefix("docker.io/") for t in image.tags}  # Podman names short tags docker.io/…
    assert {"dockyard/sklearn:latest", f"dockyard/sklearn:{version}", SKLEARN_URI} <= tags
    assert image.attrs["Config"]["Entrypoint"] == ["python3", "-m", "dockyard.serving"]
    assert image.attrs["Config"]["Cmd"] == ["serve"]
