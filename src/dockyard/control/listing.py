"""List operations: filters, sorting and NextToken pagination as SageMaker's List* APIs do.

The token is opaque to clients (base64 of the offset into the sorted, filtered list); boto3's
paginators stop when it is absent.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

from dockyard import errors

DEFAULT_MAX_RESULTS = 10


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError):
        offset = None
    # Only what _token makes: a whole number, not a bool, NaN, Infinity or a negative offset.
    if type(offset) is not int or offset < 0:
        raise errors.validation(f"Invalid pagination token {token[:64]}.")
    return offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def paginate(
    items: Sequence[Any],
    params: dict[str, Any],
    summary: Callable[[Any], dict[str, Any]],
    sort_keys: dict[str, Callable[[Any], Any]],
    filters: dict[str, Callable[[Any, Any], bool]],
) -> tuple[list[dict[str, Any]], str | None]:
    """Filter, sort and page ``items``; return the page's summaries and the NextToken.

    ``sort_keys`` maps SortBy values to key functions (its first entry is the default after
    CreationTime); ``filters`` maps request members to predicates ``(item, value) -> bool``.
    """
    selected = [
        item for item in items if all(pred(item, params[name]) for name, pred in filters.items() if name in params)
    ]
    key = sort_keys[params.get("SortBy", "CreationTime")]
    selected.sort(key=key, reverse=params.get("SortOrder", "Descending") == "Descending")
    start = _offset(params.get("NextToken"))
    end = start + int(params.get("MaxResults", DEFAULT_MAX_RESULTS))
    page = [summary(item) for item in selected[start:end]]
    return page, (_token(end) if end < len(selected) else None)


def common_filters(name: Callable[[Any], str], created: Callable[[Any], float]) -> dict[str, Callable[[Any, Any], bool]]:
    """The NameContains and CreationTime filters every List operation has."""
    return {
        "NameContains": lambda item, v: v.lower() in name(item).lower(),
        "CreationTimeBefore": lambda item, v: created(item) < _epoch(v),
        "CreationTimeAfter": lambda item, v: created(item) > _epoch(v),
    }


def last_modified_filters(modified: Callable[[Any], float]) -> dict[str, Callable[[Any, Any], bool]]:
    return {
        "LastModifiedTimeBefore": lambda item, v: modified(item) < _epoch(v),
        "LastModifiedTimeAfter": lambda item, v: modified(item) > _epoch(v),
    }
