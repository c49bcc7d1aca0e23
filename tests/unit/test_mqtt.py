"""MQTT ingest without a broker: the broker URL, the topic's sensor, the payload's rows."""

from __future__ import annotations

import orjson
import pytest

from etl.ingest.mqtt import message_rows, parse_broker, topic_sensor
from gis.errors import BadRequest

TOPIC = "city/sensors/+/readings"


def test_topic_and_payload_parsing() -> None:
    assert parse_broker("mqtt://10.0.0.5:1884") == ("10.0.0.5", 1884)
    assert parse_broker("mqtt://broker") == ("broker", 1883)
    with pytest.raises(BadRequest):
        parse_broker("http://broker:80")
    assert topic_sensor((TOPIC,), "city/sensors/AQ-7/readings") == "AQ-7"
    assert topic_sensor((TOPIC,), "city/other/AQ-7/readings") is None
    one = {"property": "laeq", "ts": "2026-11-02T00:00:00Z", "value": 50}
    assert message_rows(orjson.dumps(one), "N-1") == [{"sensor": "N-1", **one}]
    assert (
        message_rows(orjson.dumps({"readings": [one, one]}), "N-1")
        == [{"sensor": "N-1", **one}] * 2
    )
    assert message_rows(orjson.dumps([{**one, "sensor": "N-2"}]), "N-1")[0]["sensor"] == "N-2"
    assert message_rows(b'{"property": "laeq", "ts": 1, "value": NaN}', None)[0]["value"] != 0
    with pytest.raises(ValueError):
        message_rows(b"garbage", "N-1")
    with pytest.raises(ValueError):
        message_rows(b"42", "N-1")
