"""Response models: the JSON bodies the API answers with, as OpenAPI documents them.

One module per group of routers. Models declare their fields in the order the body carries
them. A field that a body carries only sometimes has a default, and its route answers with
``response_model_exclude_unset=True`` so that a key absent from the data stays absent.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Number = int | float
"""A JSON number as the data has it: an integer stays an integer."""


class Schema(BaseModel):
    """A response body (fields named like Python keywords are given by alias)."""

    model_config = ConfigDict(populate_by_name=True)


class Named(Schema):
    """Something with an id and a name (a person, a district's supervisor)."""

    id: int | None
    name: str | None


class Coded(Schema):
    """Something with a code and a name (a district)."""

    code: str
    name: str | None
