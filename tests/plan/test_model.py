"""The plan as data: a malformed plan gives one clear message naming the field; a good one resolves its dates."""

from __future__ import annotations

from datetime import date

import pytest

from runoff.compliance.facts import Channel, NoticeType
from runoff.plan.model import DefaultAction, EarlySettlementOption, PlanInvalid, parse_plan
from runoff.plan.timeline import Phase
from tests.plan.factories import example, make_plan, plan_dict

MALFORMED = [
    pytest.param(
        {"segments.0.when": "dpdd > 3"},
        "segments.0.when",
        "unknown feature `dpdd` at position 1; expected one of",
        id="unknown-segment-field",
    ),
    pytest.param(
        {"segments.0.options": ["settle", "refinance-24"]},
        "segments.0.options",
        "segment 'current' offers 'refinance-24', which is not an option of the plan; expected one of settle, "
        "extend-3, restructure-12",
        id="option-not-defined",
    ),
    pytest.param(
        {"timeline.option_window_closes": "2026-01-10"},
        "timeline.option_window_closes",
        "2026-01-10 is on or before `option_window_opens` 2026-01-12; expected the option window closes after it opens",
        id="window-closes-before-it-opens",
    ),
    pytest.param(
        {"timeline.individual_notices": "option_window_opens+1d"},
        "timeline.option_window_opens",
        "is before `individual_notices` 2026-01-13; expected customers are told before the window opens",
        id="notices-after-the-window-opens",
    ),
    pytest.param(
        {"timeline.announcement": "2025-12-01"},
        "timeline.announcement",
        "2025-12-01 is before the plan's start 2026-01-05",
        id="phase-before-the-start",
    ),
    pytest.param(
        {"timeline.stop_new_draws": "anouncement+45d"},
        "timeline.stop_new_draws",
        "refers to `anouncement`, which is not a phase",
        id="unknown-phase-reference",
    ),
    pytest.param(
        {"timeline.announcement": "stop_new_draws-45d"},
        "timeline",
        "phases refer to each other in a circle",
        id="circular-dates",
    ),
    pytest.param(
        {"timeline.collections_handover": "charge_off+1d"},
        "timeline.collections_handover",
        "refers to `charge_off`, which is not dated in this plan",
        id="reference-to-an-undated-phase",
    ),
    pytest.param(
        {"timeline.stop_new_draws": "in 45 days"},
        "timeline.stop_new_draws",
        "'in 45 days' is not a date or an offset",
        id="not-a-date",
    ),
    pytest.param(
        {"segments.0.take_up": {"settle": 0.8, "extend-3": 0.5}},
        "segments.0.take_up",
        "take-up of segment 'current' adds up to 1.3; expected at most 1",
        id="take-up-above-one",
    ),
    pytest.param(
        {"segments.0.when": None},
        "segments.0.when",
        "segment 'current' matches every account, so the segments after it would stay empty",
        id="catch-all-not-last",
    ),
    pytest.param(
        {"options.0.kind": "refinance"},
        "options",
        "option 'settle' has kind 'refinance'; expected one of",
        id="unknown-option-kind",
    ),
    pytest.param(
        {"segments.0.when": "bucket == M7"},
        "segments.0.when",
        "`bucket` has no value 'M7' (position 11); expected one of current, M1, M2, M3, M4+",
        id="value-outside-the-vocabulary",
    ),
    pytest.param(
        {"segments.1.id": "current"},
        "segments",
        "id 'current' is used twice",
        id="duplicate-segment",
    ),
    pytest.param(
        {"waves": [{"id": "w1", "segments": ["current"]}]},
        "waves",
        "segment 'arrears' is in no wave",
        id="segment-in-no-wave",
    ),
    pytest.param(
        {"waves": [{"id": "w1", "segments": ["current", "arears"]}]},
        "waves.0.segments",
        "'arears' is not a segment of the plan",
        id="wave-names-an-unknown-segment",
    ),
    pytest.param(
        {"options.2.grace_months": 12},
        "options.2",
        "`grace_months`: 12 is not allowed with `term_months` 12",
        id="grace-as-long-as-the-term",
    ),
    pytest.param(
        {"lender.lender_type": "pawnshop"},
        "lender.lender_type",
        "Input should be 'bank', 'consumer-finance', 'microloan' or 'private-lender'",
        id="unknown-lender-type",
    ),
    pytest.param({"segmentz": []}, "segmentz", "Extra inputs are not permitted", id="unknown-top-level-key"),
]


@pytest.mark.parametrize(("changes", "field", "fragment"), MALFORMED)
def test_a_malformed_plan_gives_one_clear_message_naming_the_field(changes, field, fragment):
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(plan_dict(**changes), source="plan.yaml")
    message = caught.value.message
    assert fragment in message
    assert field in message and caught.value.field.startswith(field.split(".")[0])
    assert message.startswith("plan.yaml: ") and message.count("plan.yaml") == 1
    assert caught.value.code == "plan.invalid"


def test_a_plan_that_is_not_a_mapping_says_what_it_expected():
    with pytest.raises(PlanInvalid, match="expected a mapping with `id`, `lender`, `timeline` and `segments`"):
        parse_plan(["not", "a", "plan"], source="plan.yaml")


@pytest.mark.parametrize("name", ["phased-three-wave", "abrupt-closure", "breaks-rules"])
def test_the_example_plans_load(name):
    plan = example(name)
    assert plan.id == name
    assert plan.wave_timelines()


def test_a_wave_shift_moves_every_per_wave_phase_but_not_the_announcement():
    plan = example("phased-three-wave")
    first, second, third = plan.wave_timelines()
    assert first.on(Phase.INDIVIDUAL_NOTICES) == date(2026, 1, 22)
    assert second.on(Phase.INDIVIDUAL_NOTICES) == date(2026, 2, 22)
    assert third.on(Phase.OPTION_WINDOW_OPENS) == date(2026, 3, 29)
    assert first.on(Phase.ANNOUNCEMENT) == second.on(Phase.ANNOUNCEMENT) == date(2026, 1, 15)
    assert second.reminders == (date(2026, 3, 28), date(2026, 4, 30))
    assert third.segments == ("early-arrears", "late-arrears", "defaulted")


def test_a_wave_may_set_its_own_phase_relative_to_the_plans():
    plan = make_plan(
        waves=[
            {"id": "w1", "segments": ["current"]},
            {
                "id": "w2",
                "segments": ["arrears"],
                "timeline": {
                    "individual_notices": "individual_notices+30d",  # the plan's date, moved
                    "option_window_opens": "individual_notices+7d",  # the wave's own notices
                },
            },
        ]
    )
    w1, w2 = plan.wave_timelines()
    assert w1.on(Phase.INDIVIDUAL_NOTICES) == date(2026, 1, 5)
    assert w2.on(Phase.INDIVIDUAL_NOTICES) == date(2026, 2, 4)
    assert w2.on(Phase.OPTION_WINDOW_OPENS) == date(2026, 2, 11)
    assert w2.on(Phase.OPTION_WINDOW_CLOSES) == w1.on(Phase.OPTION_WINDOW_CLOSES) == date(2026, 3, 13)


def test_a_wave_that_moves_its_notices_past_its_window_is_refused():
    with pytest.raises(PlanInvalid, match=r"`waves.1.timeline.option_window_opens`: .* is before `individual_notices`"):
        make_plan(
            waves=[
                {"id": "w1", "segments": ["current"]},
                {"id": "w2", "segments": ["arrears"], "timeline": {"individual_notices": "start+30d"}},
            ]
        )


def test_option_kinds_are_read_by_their_chinese_names_too():
    plan = make_plan(**{"options.0.kind": "提前结清"})
    assert isinstance(plan.option("settle"), EarlySettlementOption)


def test_the_default_action_is_the_original_schedule():
    plan = make_plan()
    assert all(s.default_action is DefaultAction.ORIGINAL_SCHEDULE for s in plan.segments)


def test_the_communication_schedule_sends_per_wave_and_the_announcement_once():
    plan = example("phased-three-wave")
    sends = plan.communication_schedule()
    announcements = [s for s in sends if s.channel is Channel.ANNOUNCEMENT]
    assert len(announcements) == 1 and announcements[0].wave == "all"
    assert announcements[0].on == date(2026, 1, 15) and len(announcements[0].segments) == 5
    letters = [(s.wave, s.on) for s in sends if s.template == "offer-letter"]
    assert letters == [("wave-1", date(2026, 1, 22)), ("wave-2", date(2026, 2, 22)), ("wave-3", date(2026, 3, 22))]
    reminders = [s for s in sends if s.phase == "reminders"]
    assert len(reminders) == 6 and all(s.notice_type is NoticeType.REMINDER for s in reminders)
    assert [s.on for s in sends] == sorted(s.on for s in sends)


def test_a_send_names_a_channel_its_template_has():
    data = plan_dict(
        communications={
            "templates": [{"id": "t", "notice_type": "closure", "channels": ["letter"], "path": "notices/t"}],
            "sends": [{"template": "t", "channel": "sms", "at": "individual_notices"}],
        }
    )
    with pytest.raises(PlanInvalid, match=r"`communications.sends.0.channel`: template 't' has no sms version"):
        parse_plan(data, source="plan.yaml")


def test_a_plan_round_trips_through_its_json_form():
    plan = example("phased-three-wave")
    again = parse_plan(plan.model_dump(mode="json"), source="json")
    assert again == plan or again.model_dump(mode="json") == plan.model_dump(mode="json")
    assert again.segments[0].when.text == "bucket == current and balance < 5000"
