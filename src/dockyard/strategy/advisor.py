"""The container-strategy advisor: answers in, one recommended strategy with its reasons out.

The decision is data, not code: two small tables read top to bottom, the first matching row wins.
``TOPOLOGY`` decides how the models are hosted (one container, a serial pipeline, a Direct
multi-container endpoint, a multi-model endpoint, or separate endpoints); ``CONTAINER`` decides
what goes into each container (Managed → Extend → BYOC, or BYOM). A row matches when every fact
it names has one of the listed values; facts it does not name may be anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from dockyard.control.model_rules import MAX_CONTAINERS
from dockyard.images.catalogue import CATALOGUE

Traffic = Literal["low", "medium", "high"]
TRAFFIC_LEVELS: tuple[Traffic, ...] = ("low", "medium", "high")

# Below this a budget leaves no room for a second hop, a neighbour's CPU spike or a cold model load.
TIGHT_LATENCY_MS = 100


def managed_frameworks() -> tuple[str, ...]:
    """The frameworks dockyard (and SageMaker) provide a managed image for."""
    return tuple(image.framework for image in CATALOGUE)


@dataclass(frozen=True)
class Answers:
    """What the advisor asks; the defaults describe the commonest case (one scikit-learn model)."""

    framework: str = "sklearn"
    extra_libraries: bool = False
    language: str = "python"
    trained_elsewhere: bool = False
    models: int = 1
    chain: bool = False
    # Do all the models run in the same container (same framework, same serving code)?
    shared_container: bool = True
    traffic: Traffic = "medium"
    latency_ms: int | None = None

    def __post_init__(self) -> None:
        if self.models < 1:
            raise ValueError(f"the number of models must be at least 1, got {self.models}")
        if self.traffic not in TRAFFIC_LEVELS:
            raise ValueError(f"traffic must be one of {', '.join(TRAFFIC_LEVELS)}, got {self.traffic!r}")
        if self.latency_ms is not None and self.latency_ms <= 0:
            raise ValueError(f"the latency budget must be a positive number of ms, got {self.latency_ms}")


def facts(answers: Answers) -> dict[str, Any]:
    """The answers reduced to the values the tables test."""
    if answers.models == 1:
        count = "one"
    elif answers.models <= MAX_CONTAINERS:
        count = "few"
    else:
        count = "many"
    tight = answers.latency_ms is not None and answers.latency_ms < TIGHT_LATENCY_MS
    return {
        "python": answers.language.strip().lower() == "python",
        "managed_framework": answers.framework.strip().lower() in managed_frameworks(),
        "extra_libraries": answers.extra_libraries,
        "trained_elsewhere": answers.trained_elsewhere,
        "models": count,
        "chain": answers.chain,
        "shared_container": answers.shared_container,
        "traffic": answers.traffic,
        "latency": "tight" if tight else "relaxed",
    }


@dataclass(frozen=True)
class Rule:
    """One row: when every named fact has one of its values, choose ``then`` for ``reason``.

    ``reason`` is formatted with the answers' fields plus ``max_containers`` and ``managed``.
    """

    when: Mapping[str, tuple[Any, ...]]
    then: str
    reason: str

    def matches(self, known: Mapping[str, Any]) -> bool:
        return all(known[name] in values for name, values in self.when.items())


TOPOLOGY: tuple[Rule, ...] = (
    Rule({"models": ("one",)}, "single", "One model: one container on one endpoint."),
    Rule(
        {"chain": (True,), "models": ("few",)}, "serial",
        "The {models} models chain (each one's output is the next one's input): a serial inference "
        "pipeline runs them in order on one instance, behind a single invoke_endpoint call.",
    ),
    Rule(
        {"chain": (True,)}, "serial",
        "The {models} steps chain, but a pipeline holds at most {max_containers} containers: merge "
        "steps into fewer containers so that the pipeline fits.",
    ),
    Rule(
        {"traffic": ("high",)}, "separate",
        "High traffic: the containers of a multi-container or multi-model endpoint share one "
        "instance's CPU and memory, so a spike in one slows the others. Separate endpoints scale "
        "and fail independently.",
    ),
    Rule(
        {"latency": ("tight",)}, "separate",
        "A {latency_ms} ms latency budget leaves no room for noisy neighbours on a shared instance "
        "or for loading a model on first use: give each model its own endpoint.",
    ),
    Rule(
        {"shared_container": (True,)}, "multimodel",
        "{models} models that run in the same container: a multi-model endpoint loads them into "
        "one container on demand, the cheapest way to host many models.",
    ),
    Rule(
        {"models": ("few",)}, "direct",
        "{models} models in different containers, called one at a time: a multi-container endpoint "
        "with Direct invocation hosts up to {max_containers} containers on one instance, and the "
        "client picks one per request with TargetContainerHostname.",
    ),
    Rule(
        {}, "separate",
        "{models} different containers are more than one multi-container endpoint holds "
        "({max_containers}): use separate endpoints, or group them into several Direct endpoints.",
    ),
)

CONTAINER: tuple[Rule, ...] = (
    Rule(
        {"python": (False,)}, "byoc",
        "The serving code is written in {language}: managed images run Python handlers, so bring "
        "your own container for full control of the runtime.",
    ),
    Rule(
        {"managed_framework": (False,)}, "byoc",
        "No managed image serves {framework} (managed images: {managed}): bring your own container.",
    ),
    Rule(
        {"extra_libraries": (True,)}, "extend",
        "{framework} has a managed image, but the code needs extra libraries: extend the managed "
        "image (a Dockerfile FROM it) instead of maintaining a whole image.",
    ),
    Rule(
        {"trained_elsewhere": (True,)}, "byom",
        "The model was trained outside SageMaker: package the saved model as model.tar.gz for the "
        "managed {framework} image and deploy it as is.",
    ),
    Rule(
        {}, "managed",
        "A standard framework ({framework}) with no extra dependencies: the managed image needs no "
        "Dockerfile and is maintained for you.",
    ),
)


@dataclass(frozen=True)
class Strategy:
    """One strategy and its trade-offs, as the study guide compares them."""

    key: str
    title: str
    customization: str
    effort: str
    cost: str
    use_case: str
    caveats: tuple[str, ...] = ()
    # The ``dockyard init`` scaffold that starts a project of this kind (None: none of its own).
    scaffold: str | None = None


STRATEGIES: Mapping[str, Strategy] = {
    s.key: s
    for s in (
        Strategy(
            "managed", "Managed", "none: your inference.py handlers only", "low",
            "lowest: no image to build, patch or store",
            "a standard framework (scikit-learn, XGBoost, PyTorch, TensorFlow)",
            scaffold="managed",
        ),
        Strategy(
            "extend", "Extend", "moderate: extra libraries on top of the managed image", "medium",
            "an image to build and store, and to rebuild when the base image changes",
            "a standard framework plus custom Python libraries",
            caveats=(
                (
                    "In dockyard's process runtime the same project deploys without building the image: "
                    "code/requirements.txt next to inference.py is installed into a cached virtualenv."
                ),
            ),
            scaffold="extend",
        ),
        Strategy(
            "byoc", "BYOC", "full: any language, server and dependencies", "high",
            "a whole image to build, secure and maintain",
            "other languages (C++, Go, R) or proprietary serving code",
            caveats=(
                (
                    "You own the container contract: `serve`, /ping, /invocations, SAGEMAKER_BIND_TO_PORT "
                    "and SIGTERM. Run `dockyard check` on the image before deploying it."
                ),
            ),
            scaffold="byoc",
        ),
        Strategy(
            "byom", "BYOM", "none: the model file only", "low",
            "as Managed: the managed image serves your model",
            "a model trained outside SageMaker, saved in a standard framework's format",
            caveats=("The model file must be in the layout the framework's image loads: `dockyard package` writes it.",),
            scaffold="byom",
        ),
        Strategy(
            "serial", "Multi-container Serial", "per container", "medium",
            "one instance runs every step, no extra network hop between endpoints",
            "inference pipelines: preprocessing → model → postprocessing",
            caveats=(
                "Every step adds its request and response to the latency of each call.",
                "All containers share one instance's CPU and memory (resource contention).",
            ),
            scaffold="pipeline",
        ),
        Strategy(
            "direct", "Multi-container Direct", "per container", "medium",
            f"one instance for up to {MAX_CONTAINERS} containers instead of one endpoint each",
            "A/B tests and multi-framework hosting where each request names its container",
            caveats=(
                (
                    "All containers share one instance's CPU and memory: a busy container slows the "
                    "others (resource contention). For high-traffic production, prefer separate endpoints."
                ),
            ),
            scaffold="direct",
        ),
        Strategy(
            "multimodel", "Multi-model", "none beyond the shared container", "low",
            "cheapest for many models: one container, models loaded on demand",
            "many models of one framework, each invoked now and then (TargetModel)",
            caveats=(
                (
                    "The first call to a model that is not loaded waits while it loads; rarely used "
                    "models are unloaded when memory runs short."
                ),
            ),
            scaffold="multi-model",
        ),
    )
}


@dataclass(frozen=True)
class Advice:
    """The recommendation: a strategy, what to put in each container, why, and what to run next."""

    strategy: Strategy
    # What each container holds (the same as ``strategy`` for a single container).
    container: Strategy
    topology: str
    reasons: tuple[str, ...]
    caveats: tuple[str, ...] = ()
    next_command: str = ""

    def to_json(self) -> dict[str, Any]:
        s = self.strategy
        return {
            "strategy": s.key,
            "title": s.title,
            "topology": self.topology,
            "container": self.container.key,
            "reasons": list(self.reasons),
            "trade_offs": {"customization": s.customization, "effort": s.effort, "cost": s.cost, "use_case": s.use_case},
            "caveats": list(self.caveats),
            "next_command": self.next_command,
        }


def first_match(table: tuple[Rule, ...], known: Mapping[str, Any]) -> Rule:
    """The first row of ``table`` that matches; every table ends with a catch-all row."""
    return next(rule for rule in table if rule.matches(known))


def advise(answers: Answers, directory: str = "my-model") -> Advice:
    """The recommended strategy for ``answers``; the next command scaffolds it into ``directory``."""
    known = facts(answers)
    values = {
        **asdict(answers),
        "max_containers": MAX_CONTAINERS,
        "managed": ", ".join(managed_frameworks()),
    }
    topology_rule = first_match(TOPOLOGY, known)
    container_rule = first_match(CONTAINER, known)
    container = STRATEGIES[container_rule.then]
    topology = topology_rule.then
    strategy = container if topology in ("single", "separate") else STRATEGIES[topology]
    reasons = [topology_rule.reason.format(**values), container_rule.reason.format(**values)]
    if topology == "single":
        reasons.pop(0)
    caveats = list(strategy.caveats)
    if strategy is not container:
        caveats += container.caveats
    if topology in ("serial", "direct", "multimodel") and container.key != "managed":
        caveats.append(
            f"The {strategy.scaffold} scaffold uses managed scikit-learn containers: replace each "
            f"Image with your {container.title} image."
        )
    if topology == "serial" and answers.latency_ms is not None:
        caveats.append(f"Measure the whole pipeline against your {answers.latency_ms} ms budget.")
    scaffold = strategy.scaffold or container.scaffold
    command = f"dockyard init {scaffold} {directory}"
    framework = answers.framework.strip().lower()
    if known["managed_framework"] and framework != "sklearn":
        if scaffold == "managed":
            command += f" --framework {framework}"
        elif container.key in ("extend", "byom"):
            caveats.append(f"The {scaffold} scaffold is written for scikit-learn: swap in the managed {framework} "
                           f"image and its model format (`dockyard init managed DIR --framework {framework}` shows them).")
    if topology == "separate":
        caveats.append(f"Deploy one endpoint per model: run `{command}` once for each.")
    return Advice(strategy, container, topology, tuple(reasons), tuple(caveats), command)
