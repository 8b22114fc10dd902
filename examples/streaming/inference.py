"""inference.py of the streaming example: a word-level Markov chain that yields one token at a
time. The managed scikit-learn server sends each yielded token as its own chunk, and dockyard
turns each chunk into a PayloadPart event of InvokeEndpointWithResponseStream."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator


def model_fn(model_dir: str) -> dict[str, list[list]]:
    with open(os.path.join(model_dir, "chain.json")) as f:
        return json.load(f)


def input_fn(body: str, content_type: str) -> dict:
    return json.loads(body)


def predict_fn(request: dict, chain: dict[str, list[list]]) -> Iterator[str]:
    """Walk the chain from the prompt's last word: each step draws a next word in proportion to
    how often it followed the current one in the training text."""
    rng = random.Random(request.get("seed", 0))
    word = request["prompt"].split()[-1]
    for _ in range(request.get("max_tokens", 30)):
        followers = chain.get(word)
        if not followers:
            return
        words, counts = followers
        word = rng.choices(words, weights=counts)[0]
        yield " " + word


def output_fn(prediction: Iterator[str], accept: str) -> tuple[Iterator[str], str]:
    return prediction, "text/plain"
