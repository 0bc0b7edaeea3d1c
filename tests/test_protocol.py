"""The runner-worker messages: written and read only through bench.protocol, and every broken line refused."""

from __future__ import annotations

import json
import math

import pytest

from bench.config import Configuration
from bench.protocol import SCHEMA_VERSION, ProtocolError, Reply, Request
from bench.worker import Worker

CONFIG = Configuration("numpy", "manual", "eager", "cpu", "float64", 16, 10, None, 0, 1)
RAN = Reply(
    id=7,
    status="ran",
    backend_version="1",
    first_call_s=0.5,
    samples_s=(0.1, 0.2),
    iterations_timed=10,
    seeds=(0, 1),
    weights=((1.0, 2.0, 3.0, 4.0),) * 2,
    final_losses=(math.nan, 1.0),
    logged_losses=((1.0,),) * 2,
    threads_used="cores=1",
)


def test_a_request_and_a_reply_survive_their_line() -> None:
    request = Request(3, CONFIG, 2, 1.0, None)
    assert Request.from_line(request.to_line()) == request
    back = Reply.from_line(RAN.to_line(), 7)
    assert back.samples_s == RAN.samples_s and math.isnan(back.final_losses[0]) and back.weights == RAN.weights
    assert json.loads(RAN.to_line())["schema_version"] == SCHEMA_VERSION


def edited(**changes) -> str:
    data = RAN.to_dict()
    for name, value in changes.items():
        if value is KeyError:
            del data[name]
        else:
            data[name] = value
    return json.dumps(data)


BROKEN = {
    "not json": ("Fatal error: oops", "is not JSON"),
    "not an object": ("[1, 2]", "is not a JSON object but list"),
    "other version": (edited(schema_version=0), f"has schema_version 0, not {SCHEMA_VERSION}"),
    "no version": (edited(schema_version=KeyError), "has schema_version None"),
    "no id": (edited(id=KeyError), "lacks id"),
    "wrong id": (edited(id=6), "answers request 6, not the current request 7"),
    "unknown field": (edited(colour="red"), "unknown fields colour"),
    "unknown status": (edited(status="great"), "has status 'great'"),
    "weights not numbers": (
        edited(weights=[["a", "b", "c", "d"]]),
        "weights is [['a', 'b', 'c', 'd']], not a list of lists of numbers",
    ),
    "samples not a list": (edited(samples_s=0.1), "samples_s is 0.1"),
    "id a bool": (edited(id=True), "id is True"),
    "ran without samples": (edited(samples_s=[]), "says ran but holds no timed samples"),
    "ran without weights": (edited(weights=KeyError), "says ran but lacks weights"),
}


@pytest.mark.parametrize(("line", "message"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_reply_line_is_refused_with_the_reason(line: str, message: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        Reply.from_line(line, 7)
    assert message in str(raised.value)


def test_a_failed_reply_needs_no_timings() -> None:
    reply = Reply.from_line(
        json.dumps({"id": 2, "status": "failed", "reason": "x", "schema_version": SCHEMA_VERSION}), 2
    )
    assert reply.samples_s == () and math.isnan(reply.first_call_s)


def test_the_worker_echoes_the_request_id_and_answers_an_unreadable_request() -> None:
    worker = Worker()
    request = Request(41, CONFIG, 1, 10.0, None)
    reply = Reply.from_line(worker.answer(request.to_line()).to_line(), 41)
    assert reply.status == "ran" and len(reply.samples_s) == 1 and reply.iterations_timed == 10
    refused = worker.answer('{"id": 42}')
    assert refused.status == "failed" and "could not read its request" in refused.reason
