"""A processor whose step fails on purpose, for the runner's tests:
``python -m tests.integration.core.failing_step_processor`` (settings from ``MADINA_*``).

A record is ``"<entity>/<word>"``; an entity's state is the words applied to it so far, and every
step publishes that list on OUTPUT. The word ``boom`` is added to the state and then fails the step,
as a bug would: the runner has to bring back the state that the records before it left.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.wrappers_pb2 import StringValue

from madina.bus.codec import decode
from madina.bus.topics import TopicSpec
from madina.settings import MadinaSettings
from madina.streams.entities import EntityProcessor, EntityRecord, Headers, Step, processor_main

INPUT = TopicSpec(name="test.failing-step.words.v1", message_type=StringValue, key="value",
                  description="Words for the failing-step processor, as <entity>/<word>.")
OUTPUT = TopicSpec(name="test.failing-step.word-lists.v1", message_type=StringValue, key="value",
                   description="Each step's words so far, comma-separated.")
SOURCE = "failing-step-processor"


class FailingStepSettings(MadinaSettings):
    test_processor_port: int = 0


def word_step(words: list[str], record: EntityRecord) -> Step[list[str]]:
    word = record.value.partition("/")[2]
    words.append(word)  # changed in place before failing, as the runner must expect
    if word == "boom":
        raise RuntimeError("the step failed after changing its state")
    return Step(words, records=[(OUTPUT, record.entity_id, StringValue(value=",".join(words)))])


def _decode(spec: TopicSpec, value: bytes | None, headers: Headers | None) -> str:
    return str(decode(spec, value, headers).value)


def failing_step_processor(_settings: FailingStepSettings) -> EntityProcessor[list[str]]:
    def state_from_dict(data: Any, _entity: str) -> list[str]:
        return list(data["words"])

    return EntityProcessor(
        app_id="madina-test-failing-step", domain="test", source=SOURCE, inputs=[INPUT], outputs=[OUTPUT],
        step=word_step, new_state=lambda _entity: [], state_to_dict=lambda words: {"words": list(words)},
        state_from_dict=state_from_dict, decode=_decode, entity_of=lambda _spec, value: value.partition("/")[0],
    )


if __name__ == "__main__":
    raise SystemExit(processor_main(FailingStepSettings, failing_step_processor, [INPUT, OUTPUT], source=SOURCE,
                                    port_of=lambda settings: settings.test_processor_port))
