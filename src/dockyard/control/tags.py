"""AddTags, ListTags and DeleteTags on the ARNs of models, endpoint configs and endpoints.

An ARN is found in any letter case, as names are: stored ARNs are lower-case (SageMaker lower-cases
the name in them), so a request's ARN is lower-cased before it is looked up."""

from __future__ import annotations

from typing import Any

from dockyard import errors
from dockyard.control.context import ControlContext

Params = dict[str, Any]
MAX_TAGS = 50


class TagOps:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def _require(self, requested: str) -> str:
        """The stored ARN ``requested`` names, in whatever case it was given."""
        arn = requested.lower()
        if not self.ctx.store.arn_exists(arn):
            raise errors.validation(f'Could not find resource "{requested}".')
        return arn

    def add(self, params: Params) -> Params:
        arn = self._require(params["ResourceArn"])
        keys = {t["Key"] for t in self.ctx.store.list_tags(arn)} | {t["Key"] for t in params["Tags"]}
        if len(keys) > MAX_TAGS:
            raise errors.limit_exceeded(f"Resource {arn} would have {len(keys)} tags; the limit is {MAX_TAGS}.")
        self.ctx.store.add_tags(arn, params["Tags"])
        return {"Tags": params["Tags"]}

    def list(self, params: Params) -> Params:
        arn = self._require(params["ResourceArn"])
        tags = self.ctx.store.list_tags(arn)
        token = params.get("NextToken", "0")
        if not token.isdigit():
            raise errors.validation(f"Invalid pagination token {token[:64]}.")
        start = int(token)
        end = start + int(params.get("MaxResults", MAX_TAGS))
        return {"Tags": tags[start:end], **({"NextToken": str(end)} if end < len(tags) else {})}

    def delete(self, params: Params) -> Params:
        arn = self._require(params["ResourceArn"])
        self.ctx.store.delete_tags(arn, params["TagKeys"])
        return {}
