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


def _clear_channel_environment(monkeypatch, tmp_path):
    import os

    from tasks import channels

    for name in list(os.environ):
        if name.upper().startswith(("CLEARANCE_SLACK_", "CLEARANCE_JIRA_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setattr(channels, "_channels_by_environment", {})
    return channels


def test_no_channel_variable_and_no_env_file_loads_no_channel(monkeypatch, tmp_path):
    channels = _clear_channel_environment(monkeypatch, tmp_path)
    assert not channels._could_configure_a_channel()
    assert channels._builtin_channels() == []


def test_a_channel_variable_in_any_case_is_read(monkeypatch, tmp_path):
    channels = _clear_channel_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("clearance_slack_bot_token", "xoxb-1")  # pydantic-settings matches names in any case
    assert channels._could_configure_a_channel()
    assert channels._builtin_channels() == ["tasks.slack"]


def test_a_token_in_the_env_file_is_read(monkeypatch, tmp_path):
    channels = _clear_channel_environment(monkeypatch, tmp_path)
    (tmp_path / ".env").write_text("CLEARANCE_SLACK_BOT_TOKEN=xoxb-1\n")
    assert channels._could_configure_a_channel()
    assert channels._builtin_channels() == ["tasks.slack"]
