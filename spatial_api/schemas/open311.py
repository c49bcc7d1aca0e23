"""Open311 GeoReport v2 documents."""

from __future__ import annotations

from spatial_api.schemas import Number, Schema


class Endpoint(Schema):
    """A GeoReport endpoint: specification, URL, changeset, type and formats."""

    specification: str
    url: str
    changeset: str
    type: str
    formats: list[str]


class Discovery(Schema):
    """Where the GeoReport endpoint is and what it speaks."""

    changeset: str
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class Service(Schema):
    """A service: one incident category."""

    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class Attribute(Schema):
    """An attribute a service request may carry."""

    variable: bool
    code: str
    datatype: str
    required: bool
    datatype_description: str
    order: int
    description: str


class ServiceDefinition(Schema):
    """The attributes of a service."""

    service_code: str
    attributes: list[Attribute]


class ServiceRequest(Schema):
    """A case as a GeoReport service request (anonymous callers get its cell's centre)."""

    service_request_id: str
    status: str
    status_notes: str
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str
    updated_datetime: str
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: Number
    long: Number
    media_url: str | None


class PostedRequest(Schema):
    """The answer to a posted service request."""

    service_request_id: str
    service_notice: str | None
    account_id: str | None
