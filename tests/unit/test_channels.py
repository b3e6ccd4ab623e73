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


def test_notifiers_are_built_once_per_configuration(monkeypatch):
    from clearance.settings import Settings
    from tasks import channels

    built = []

    def factory(settings):
        if not settings.slack.bot_token and "CLEARANCE_TEST_SWITCH" not in __import__("os").environ:
            return None
        built.append(Recorder())
        return built[-1]

    monkeypatch.setattr(channels, "_FACTORIES", [factory])
    monkeypatch.setattr(channels, "_built", {})
    monkeypatch.delenv("CLEARANCE_TEST_SWITCH", raising=False)
    settings = Settings()
    assert channels.active_notifiers(settings) == [] and built == []
    monkeypatch.setenv("CLEARANCE_TEST_SWITCH", "on")  # the environment is the switch
    first = channels.active_notifiers(settings)
    again = channels.active_notifiers(settings)
    assert first == again == built and len(built) == 1  # reused, not rebuilt per event
    monkeypatch.setenv("CLEARANCE_TEST_SWITCH", "changed")
    assert channels.active_notifiers(settings) != first and len(built) == 2
