"""The channel event stream: every notifier gets the event; a failing one never stops the others."""

from clearance.events import PromotionEvent
from tasks.channels import publish_event


class Recorder:
    name = "recorder"

    def __init__(self):
        self.kinds = []

    def handle(self, event):
        self.kinds.append(event.kind)


class Broken:
    name = "broken"

    def handle(self, event):
        raise ConnectionError("channel down")


def event(kind="gate"):
    return PromotionEvent(kind=kind, run_id="r", model="m", version="1", tier="high", initiator="dana")


def test_failing_channel_is_noted_and_others_still_hear():
    first, last = Recorder(), Recorder()
    notes = publish_event(event(), [first, Broken(), last])
    assert first.kinds == ["gate"] and last.kinds == ["gate"]
    assert len(notes) == 1 and "broken" in notes[0] and "channel down" in notes[0]


def test_no_channels_no_notes():
    assert publish_event(event("opened"), []) == []
