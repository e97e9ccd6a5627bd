"""§6 Concomitant drugs: over-immunosuppression, CNI combination, interaction re-checks."""

from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from monitoring import rules
from monitoring.rules import ActiveDrug, DrugEvent

MMF = ActiveDrug("mycophenolate", immunosuppressant=True)
GC = ActiveDrug("glucocorticoid", immunosuppressant=True)
AZA = ActiveDrug("azathioprine", immunosuppressant=True)
CYC = ActiveDrug("cyclophosphamide", immunosuppressant=True)
RTX = ActiveDrug("rituximab", immunosuppressant=True)
BEL = ActiveDrug("belimumab", immunosuppressant=True)
OBI = ActiveDrug("obinutuzumab", immunosuppressant=True)
CSA = ActiveDrug("cyclosporine", immunosuppressant=True, calcineurin_inhibitor=True)
VCS = ActiveDrug("voclosporin", immunosuppressant=True, calcineurin_inhibitor=True)
CSA_FLAG_ONLY = ActiveDrug("ciclosporin", calcineurin_inhibitor=True)
FLUCONAZOLE = ActiveDrug("fluconazole")
HCQ = ActiveDrug("hydroxychloroquine")

OVER = "overimmunosuppression"
CNI = "cni_combination"


@pytest.mark.parametrize(
    "drugs, expected",
    [
        ([], set()),
        ([MMF], set()),
        ([MMF, GC], set()),  # multitarget: tacrolimus + MMF + GC is standard
        ([MMF, GC, HCQ, FLUCONAZOLE], set()),  # non-immunosuppressants do not count
        ([AZA, GC], set()),
        ([MMF, GC, RTX], {OVER}),  # three others
        ([MMF, GC, BEL], {OVER}),
        ([AZA, CYC, OBI], {OVER}),
        ([MMF, GC, RTX, BEL], {OVER}),
        ([CSA], {CNI}),  # any second CNI, always
        ([VCS], {CNI}),
        ([CSA_FLAG_ONLY], {CNI}),
        ([MMF, GC, VCS], {CNI}),  # the CNI is not counted as one of the "others"
        ([MMF, GC, RTX, CSA], {OVER, CNI}),
        ([MMF, MMF, GC], set()),  # a duplicate entry counts once
        ([MMF, ActiveDrug("Mycophenolate", immunosuppressant=True), GC], set()),
    ],
)
def test_immunosuppression_alerts(drugs, expected):
    assert rules.immunosuppression_alerts(drugs) == expected


def test_max_others_configurable():
    assert rules.immunosuppression_alerts([MMF, GC], max_others=1) == {OVER}
    assert rules.immunosuppression_alerts([MMF, GC, RTX], max_others=3) == set()


def test_default_max_others_is_two():
    assert rules.DEFAULT_THRESHOLDS.max_other_immunosuppressants == 2


# --- interaction events -------------------------------------------------------------

AS_OF = date(2025, 6, 30)


def _event(days_ago, kind="start", drug="fluconazole", direction=rules.RAISES):
    return DrugEvent(AS_OF - timedelta(days=days_ago), kind, drug, direction)


@pytest.mark.parametrize(
    "days_ago, last_trough_days_ago, hit",
    [
        (0, None, True),
        (10, None, True),
        (14, None, True),  # 14 days inclusive
        (15, None, False),
        (14, 5, True),  # recent wins even when a trough followed
        (15, 5, False),  # old, and a trough followed it
        (15, 20, True),  # old, but since the last trough
        (60, 61, True),
        (60, 60, False),  # same day as the last trough is not "since" it
        (60, 59, False),
        (-1, None, False),  # a future event is not yet due
        (-1, 30, False),
    ],
)
def test_recent_interaction_events(days_ago, last_trough_days_ago, hit):
    event = _event(days_ago)
    last_trough = (
        None if last_trough_days_ago is None else AS_OF - timedelta(days=last_trough_days_ago)
    )
    result = rules.recent_interaction_events([event], AS_OF, last_trough)
    assert result == ([event] if hit else [])


def test_recent_interaction_events_sorted_and_filtered():
    a = _event(3, drug="rifampicin", direction=rules.LOWERS)
    b = _event(3, drug="clarithromycin")
    c = _event(10, kind="stop", drug="diltiazem")
    old = _event(40, drug="phenytoin", direction=rules.LOWERS)
    assert rules.recent_interaction_events([a, old, b, c], AS_OF, AS_OF) == [c, b, a]


def test_recent_days_configurable():
    event = _event(20)
    assert rules.recent_interaction_events([event], AS_OF, AS_OF, recent_days=21) == [event]
    assert rules.recent_interaction_events([event], AS_OF, AS_OF, recent_days=14) == []


@pytest.mark.parametrize(
    "kind, direction, expected",
    [
        ("start", rules.RAISES, "rise"),  # start inhibitor -> level rises
        ("stop", rules.RAISES, "fall"),  # stop inhibitor -> level falls
        ("start", rules.LOWERS, "fall"),  # start inducer -> level falls
        ("stop", rules.LOWERS, "rise"),  # stop inducer -> level rises
    ],
)
def test_expected_level_change(kind, direction, expected):
    assert rules.expected_level_change(DrugEvent(AS_OF, kind, "x", direction)) == expected


def test_interaction_direction_codes():
    assert (rules.RAISES, rules.LOWERS) == ("raises", "lowers")


def test_recent_interaction_default_is_14_days():
    assert rules.DEFAULT_THRESHOLDS.interaction_recent_days == 14
    assert D(rules.DEFAULT_THRESHOLDS.interaction_recent_days) == D(14)
