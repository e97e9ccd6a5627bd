"""The trough chart (monitoring/charts.py), built from unsaved model instances: no database."""

from __future__ import annotations

import html
import json
import re
from datetime import date, datetime, timedelta
from decimal import Decimal as D

import plotly.graph_objects as go
import pytest
from django.utils import timezone
from django.utils.html import json_script

from monitoring import charts, charts_report, rules
from monitoring.assessment import PatientRecords, Target, assess_patient
from monitoring.models import (
    ConcomitantDrug,
    DrugCatalogEntry,
    LabResult,
    Patient,
    Regimen,
    TargetAssignment,
    TargetProfile,
    TroughLevel,
)

H = timedelta(hours=1)
AS_OF = date(2025, 12, 31)
DEFAULT_TARGET = Target(D("4.0"), D("6.0"), "LN maintenance (KDIGO 2024)", "G", "KDIGO 2024")


def at(day: str, hour: int = 8) -> datetime:
    return timezone.make_aware(datetime.fromisoformat(day).replace(hour=hour))


def x(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def patient() -> Patient:
    return Patient(
        mrn="T-001",
        family_name="Test",
        given_name="Ada",
        birth_date=date(1990, 5, 1),
        sex="F",
        therapy_start=date(2023, 1, 15),
    )


def level(
    day: str,
    value: str = "5.0",
    *,
    hours: float | None = 12.0,
    comparator: str = "",
    assay: str = "LCMSMS",
    accession: str = "",
    status: str = "final",
) -> TroughLevel:
    collected = at(day)
    return TroughLevel(
        collected_at=collected,
        last_dose_at=collected - hours * H if hours is not None else None,
        reported_value=f"{comparator}{value}",
        reported_unit="ng/mL",
        comparator=comparator,
        value_ng_ml=D(value),
        assay=assay,
        accession=accession,
        status=status,
    )


def regimen(day: str, dose: str = "3", formulation: str = "IR", frequency: str = "BID"):
    return Regimen(
        effective_at=at(day, 0), formulation=formulation, frequency=frequency, daily_dose_mg=D(dose)
    )


PROFILE = TargetProfile(
    code="ln_maintenance",
    name="LN maintenance",
    low_ng_ml=D("4.0"),
    high_ng_ml=D("6.0"),
    evidence="G",
    source="KDIGO 2024",
)
INDUCTION = TargetProfile(
    code="ln_induction",
    name="LN induction",
    low_ng_ml=D("5.0"),
    high_ng_ml=D("10.0"),
    evidence="L",
    source="trial ranges",
)


def assess(
    levels=(),
    *,
    regimens=None,
    targets=(),
    drugs=(),
    labs=(),
    as_of: date = AS_OF,
):
    p = patient()
    if regimens is None:
        regimens = [regimen("2024-01-01")]
    for record in [*levels, *regimens, *targets, *drugs, *labs]:
        record.patient = p
    records = PatientRecords(
        patient=p,
        targets=list(targets),
        regimens=list(regimens),
        levels=list(levels),
        drugs=list(drugs),
        labs=list(labs),
    )
    return assess_patient(records, default_target=DEFAULT_TARGET, as_of=as_of)


def figure(assessment, **kwargs) -> dict:
    return charts.figure_json(charts.trough_figure(assessment, **kwargs))


def trough_traces(fig: dict) -> list[dict]:
    return [t for t in fig["data"] if t.get("meta") == "troughs"]


def hover(template: str, row: list[str]) -> str:
    """The hover text plotly.js shows: the template with the point's customdata filled in."""
    text = re.sub(r"%\{customdata\[(\d)\]\}", lambda m: row[int(m.group(1))], template)
    return html.unescape(text)


def points(fig: dict) -> list[tuple[str, float, str, str]]:
    """(x, y, symbol, hover text) for every plotted trough."""
    out = []
    for trace in trough_traces(fig):
        texts = [hover(trace["hovertemplate"], row) for row in trace["customdata"]]
        out += list(zip(trace["x"], trace["y"], trace["marker"]["symbol"], texts, strict=True))
    return sorted(out)


def bands(fig: dict) -> list[dict]:
    return [s for s in fig["layout"].get("shapes", []) if s["type"] == "rect"]


def named_annotations(fig: dict, name: str) -> list[str]:
    return [a["text"] for a in fig["layout"].get("annotations", []) if a.get("name") == name]


# --- target bands ----------------------------------------------------------------------------


def test_default_target_band_spans_the_axis_at_4_to_6():
    fig = figure(assess([level("2025-01-10"), level("2025-03-10")]))
    [band] = bands(fig)
    assert (band["y0"], band["y1"]) == (4.0, 6.0)
    assert band["yref"] == "y"
    assert band["x0"] == x(at("2024-01-01", 0))  # the first regimen starts the axis
    assert band["x1"] == x(timezone.make_aware(datetime(2025, 12, 31, 23, 59, 59, 999999)))


def test_each_target_period_has_its_own_band():
    switch = at("2025-02-01", 0)
    targets = [
        TargetAssignment(profile=INDUCTION, effective_from=at("2024-01-01", 0)),
        TargetAssignment(profile=PROFILE, effective_from=switch),
    ]
    fig = figure(assess([level("2024-06-01"), level("2025-06-01")], targets=targets))
    first, second = sorted(bands(fig), key=lambda b: b["x0"])
    assert (first["y0"], first["y1"]) == (5.0, 10.0)
    assert (second["y0"], second["y1"]) == (4.0, 6.0)
    assert first["x1"] == second["x0"] == x(switch)


def test_bands_are_clipped_to_the_records_on_the_chart():
    targets = [
        TargetAssignment(profile=INDUCTION, effective_from=at("2020-01-01", 0)),
        TargetAssignment(profile=PROFILE, effective_from=at("2022-01-01", 0)),
        TargetAssignment(profile=INDUCTION, effective_from=at("2025-03-01", 0)),
        TargetAssignment(profile=PROFILE, effective_from=at("2026-06-01", 0)),  # after as_of
    ]
    fig = figure(assess([level("2025-01-10")], targets=targets))
    got = [(b["x0"], b["y0"], b["y1"]) for b in sorted(bands(fig), key=lambda b: b["x0"])]
    assert got == [(x(at("2024-01-01", 0)), 4.0, 6.0), (x(at("2025-03-01", 0)), 5.0, 10.0)]


def test_an_individualised_band_uses_its_own_bounds():
    targets = [
        TargetAssignment(
            profile=PROFILE,
            effective_from=at("2024-01-01", 0),
            low_override=D("4.5"),
            high_override=D("7.25"),
            reason="x",
        )
    ]
    [band] = bands(figure(assess([level("2024-06-01")], targets=targets)))
    assert (band["y0"], band["y1"]) == (4.5, 7.25)


def test_nmol_per_l_converts_band_and_values_exactly():
    fig = figure(assess([level("2025-01-10", "5.0"), level("2025-02-10", "3.2")]), unit="nmol/L")
    [band] = bands(fig)
    assert (band["y0"], band["y1"]) == (4.9752, 7.4628)  # not "5–7.4"
    ys = sorted(p[1] for p in points(fig))
    assert ys == [3.9802, 6.219]
    assert fig["layout"]["yaxis"]["title"]["text"] == "Trough (nmol/L)"


def test_unknown_unit_is_rejected():
    with pytest.raises(rules.RuleError):
        charts.trough_figure(assess([level("2025-01-10")]), unit="mg/L")


# --- markers ---------------------------------------------------------------------------------


def test_a_trough_not_read_as_steady_state_is_hollow_as_on_paper():
    # The same encoding as the printed report: hollow = timing not valid or not at steady
    # state, whatever the range.
    fig = figure(
        assess(
            [
                level("2025-01-10", hours=12.5),  # valid
                level("2025-02-10", hours=13.5),  # borderline
                level("2025-03-10", hours=9.0),  # mistimed (early)
                level("2025-04-10", hours=None),  # unknown: no last-dose time
                level("2025-05-10"),  # valid, but the dose changed the day before
            ],
            regimens=[regimen("2024-01-01"), regimen("2025-05-09", "4")],
        )
    )
    assert [p[2] for p in points(fig)] == [
        "circle",
        "circle-open",
        "circle-open",
        "circle-open",
        "circle-open",
    ]
    legend = [t["name"] for t in fig["data"] if t["x"] == [None]]
    assert charts.HOLLOW_LEGEND in legend


def test_screen_and_paper_draw_each_trough_with_the_same_symbol():
    a = assess(
        [
            level("2025-01-10", "3.2"),
            level("2025-02-10", "5.0", hours=9.0),
            level("2025-03-10", "7.1"),
            level("2025-04-10", "5.0", comparator="<"),
        ],
        regimens=[regimen("2024-01-01"), regimen("2025-03-09", "4")],
    )
    screen = sorted((x, s) for x, _, s, _ in points(figure(a)))
    report = charts_report.report_figure(a).to_plotly_json()
    paper = sorted(
        (x, s)
        for t in report["data"]
        if t.get("meta") == "troughs"
        for x, s in zip(t["x"], t["marker"]["symbol"], strict=True)
    )
    assert screen == paper
    assert [s for _, s in screen] == [
        "triangle-down",
        "circle-open",
        "triangle-up-open",  # not at steady state: the dose changed the day before
        "diamond",
    ]


def test_range_is_shown_by_shape_as_well_as_colour():
    fig = figure(
        assess([level("2025-01-10", "3.2"), level("2025-02-10", "5.0"), level("2025-03-10", "7.1")])
    )
    assert [p[2] for p in points(fig)] == ["triangle-down", "circle", "triangle-up"]
    traces = {t["name"]: t for t in trough_traces(fig)}
    assert set(traces) == {
        "Below range (triangle down)",
        "In range (circle)",
        "Above range (triangle up)",
    }
    colours = {t["marker"]["color"] for t in traces.values()}
    assert len(colours) == 3
    keys = {
        t["name"]: t["marker"]["symbol"]
        for t in fig["data"]
        if t["x"] == [None] and t["legendgroup"].startswith("range:")
    }
    assert keys == {
        "In range (circle)": "circle",
        "Below range (triangle down)": "triangle-down",
        "Above range (triangle up)": "triangle-up",
    }


def test_censored_results_sit_at_their_limit_with_their_text():
    fig = figure(
        assess(
            [
                level("2025-01-10", "1.0", comparator="<"),  # below
                level("2025-02-10", "5.0", comparator="<"),  # indeterminate
                level("2025-03-10", "30", comparator=">"),  # above
            ]
        )
    )
    got = [(p[1], p[2]) for p in points(fig)]
    assert got == [(1.0, "triangle-down"), (5.0, "diamond"), (30.0, "triangle-up")]
    labels = sorted(label for t in trough_traces(fig) for label in t["text"])
    assert labels == ["&gt;30.00", "&lt;1.00", "&lt;5.00"]  # escaped: plotly reads HTML
    first = points(fig)[0][3]
    assert "<1.00 ng/mL = <1.24 nmol/L" in first
    # Escaped for plotly's HTML-like text, so "<1.00 ... <b>" cannot turn into markup.
    assert trough_traces(fig)[0]["customdata"][0][0].startswith("&lt;1.00 ng/mL")


def test_entered_in_error_results_never_appear():
    fig = figure(
        assess(
            [
                level("2025-01-10", "5.0"),
                level("2025-02-10", "9.9", status="entered_in_error"),
                level("2025-03-10", "4.5", status="corrected"),
            ]
        )
    )
    plotted = points(fig)
    assert len(plotted) == 2
    assert 9.9 not in [p[1] for p in plotted]
    assert "9.90" not in json.dumps(fig)


def test_preliminary_results_appear_marked_as_preliminary():
    fig = figure(assess([level("2025-01-10"), level("2025-02-10", "5.5", status="preliminary")]))
    [trace] = trough_traces(fig)
    assert trace["text"] == ["", "prelim."]
    assert trace["marker"]["opacity"] == [1, charts.PRELIMINARY_OPACITY]
    final, preliminary = (p[3] for p in points(fig))
    assert "PRELIMINARY" in preliminary
    assert "PRELIMINARY" not in final


def test_hover_gives_both_units_hours_assay_accession_and_flags():
    fig = figure(assess([level("2025-01-10", "3.2", hours=12.5, accession="ACC-77")]))
    [(_, _, _, text)] = points(fig)
    assert "3.20 ng/mL = 3.98 nmol/L" in text  # worked example 1
    assert "12.5 h after dose (C12h)" in text
    assert "LC-MS/MS, acc. ACC-77" in text
    assert "range: below range; timing: valid; steady state: yes" in text


def test_hover_names_a_sample_not_at_steady_state_and_the_timing_direction():
    fig = figure(
        assess(
            [level("2025-01-02", "7.1", hours=9.0)],
            regimens=[regimen("2024-01-01"), regimen("2025-01-01", "4")],
        )
    )
    [(_, _, _, text)] = points(fig)
    assert "timing: mistimed (early)" in text
    assert "steady state: NO" in text


# --- dose, drugs and assays -------------------------------------------------------------------


def test_daily_dose_is_a_step_line_on_the_second_axis():
    fig = figure(
        assess(
            [level("2025-01-10")], regimens=[regimen("2024-01-01", "3"), regimen("2024-06-01", "4")]
        )
    )
    [dose] = [t for t in fig["data"] if t["name"] == "Daily dose (mg/day)"]
    assert dose["line"]["shape"] == "hv"
    assert dose["yaxis"] == "y2"
    assert dose["y"] == [3.0, 4.0, 4.0]  # carried to the end of the axis
    assert fig["layout"]["yaxis2"]["overlaying"] == "y"


def test_one_annotation_per_dose_change_with_its_text():
    regimens = [
        regimen("2024-01-01", "3"),
        regimen("2024-02-01", "3"),  # identical repeat: not a change
        regimen("2024-03-01", "4"),
        regimen("2024-05-01", "4", "ER", "QD"),
        regimen("2024-07-01", "4.5", "ER", "QD"),
        regimen("2024-09-01", "0", "ER", "QD"),
    ]
    fig = figure(assess([level("2024-01-10")], regimens=regimens))
    assert named_annotations(fig, "dose_change") == [
        "start 3 mg/day IR BID",
        "3 → 4 mg/day",
        "IR → ER, BID → QD",
        "4 → 4.5 mg/day",
        "stopped",
    ]
    assert [a["yref"] for a in fig["layout"]["annotations"] if a.get("name") == "dose_change"] == [
        "y2"
    ] * 5


def test_restart_after_a_stop_is_named():
    regimens = [
        regimen("2024-01-01", "3"),
        regimen("2024-02-01", "0"),
        regimen("2024-03-01", "2", "LCP", "QD"),
    ]
    fig = figure(assess([level("2024-01-10")], regimens=regimens))
    assert named_annotations(fig, "dose_change") == [
        "start 3 mg/day IR BID",
        "stopped",
        "restart 2 mg/day LCP QD",
    ]


def test_interacting_drug_start_and_stop_are_marked():
    fluconazole = DrugCatalogEntry(name="fluconazole", interaction="raises")
    paracetamol = DrugCatalogEntry(name="paracetamol", interaction="none")
    drugs = [
        ConcomitantDrug(
            name="Diflucan",
            catalog=fluconazole,
            started_on=date(2025, 3, 1),
            stopped_on=date(2025, 3, 15),
        ),
        ConcomitantDrug(name="paracetamol", catalog=paracetamol, started_on=date(2025, 3, 2)),
    ]
    fig = figure(assess([level("2025-01-10")], drugs=drugs))
    lines = [s for s in fig["layout"]["shapes"] if s.get("name") == "interaction_event"]
    assert [s["x0"] for s in lines] == ["2025-03-01", "2025-03-15"]
    texts = named_annotations(fig, "interaction_event")
    assert texts == [
        "Diflucan start (raises: level may rise) ↑",
        "Diflucan stop (raises: level may fall) ↓",
    ]


def test_assay_method_change_between_troughs_is_marked():
    fig = figure(
        assess(
            [
                level("2025-01-10", assay="LCMSMS"),
                level("2025-02-10", assay=""),  # not recorded: not a change
                level("2025-03-10", assay="LCMSMS"),
                level("2025-04-10", assay="CMIA"),
            ]
        )
    )
    assert named_annotations(fig, "assay_change") == ["assay LC-MS/MS → CMIA"]
    [line] = [s for s in fig["layout"]["shapes"] if s.get("name") == "assay_change"]
    assert line["x0"] == x(at("2025-04-10"))


def test_range_selector_offers_6m_1y_3y_all():
    fig = figure(assess([level("2025-01-10")]))
    buttons = fig["layout"]["xaxis"]["rangeselector"]["buttons"]
    assert [b["label"] for b in buttons] == ["6m", "1y", "3y", "all"]


# --- kidney labs -----------------------------------------------------------------------------


def test_kidney_labs_share_the_time_axis_in_a_lower_panel():
    labs = [
        LabResult(collected_at=at("2025-01-05"), test="creatinine", value=D("88.4"), unit="umol/L"),
        LabResult(collected_at=at("2025-02-05"), test="creatinine", value=D("1.2"), unit="mg/dL"),
        LabResult(collected_at=at("2025-01-05"), test="upcr", value=D("56.56"), unit="mg/mmol"),
        LabResult(
            collected_at=at("2025-03-05"),
            test="upcr",
            value=D("0.3"),
            unit="g/g",
            status="entered_in_error",
        ),
    ]
    fig = figure(assess([level("2025-01-10")], labs=labs))
    traces = {t["name"]: t for t in fig["data"]}
    creatinine = traces["Creatinine (mg/dL)"]
    assert creatinine["y"] == [1.0, 1.2]
    assert (creatinine["xaxis"], creatinine["yaxis"]) == ("x2", "y3")
    upcr = traces["UPCR (g/g)"]
    assert upcr["y"] == [0.5]  # mg/mmol converted; the entered-in-error one is left out
    assert upcr["yaxis"] == "y4"
    assert fig["layout"]["xaxis"]["matches"] == "x2"  # one time axis for both panels
    assert fig["layout"]["yaxis3"]["title"]["text"] == "Creatinine (mg/dL)"


def test_egfr_is_shown_when_no_creatinine_is_recorded():
    labs = [
        LabResult(collected_at=at("2025-01-05"), test="egfr", value=D("84.9"), unit="mL/min/1.73m2")
    ]
    fig = figure(assess([level("2025-01-10")], labs=labs))
    [egfr] = [t for t in fig["data"] if t["name"].startswith("eGFR")]
    assert egfr["y"] == [84.9] and egfr["yaxis"] == "y3"


def test_each_figure_starts_from_its_own_copy_of_the_shared_layout():
    # The layout is built once per unit and copied: a lab title, band or unit set on one
    # patient's figure must not show on the next patient's.
    creatinine = [
        LabResult(collected_at=at("2025-01-05"), test="creatinine", value=D("1"), unit="mg/dL")
    ]
    first = charts.trough_figure(assess([level("2025-01-10")], labs=creatinine))
    first.layout["yaxis"]["title"]["text"] = "changed by the first figure"
    second = figure(assess([level("2025-01-10")]))
    assert "title" not in second["layout"]["yaxis3"]
    assert second["layout"]["yaxis"]["title"]["text"] == "Trough (ng/mL)"
    assert figure(assess([level("2025-01-10")]), unit="nmol/L")["layout"]["meta"] == {
        "unit": "nmol/L"
    }


def test_without_labs_the_trough_panel_takes_the_height_and_carries_the_dates():
    fig = figure(assess([level("2025-01-10")]))
    layout = fig["layout"]
    assert layout["yaxis"]["domain"] == [0, 1]
    assert layout["xaxis"]["showticklabels"] is True
    assert all(layout[axis]["visible"] is False for axis in ("xaxis2", "yaxis3", "yaxis4"))
    # Said above the plotting area, not drawn over the troughs nor on an empty axis (which
    # threw plotly's time axis to 1965–2030).
    [note] = [a for a in layout["annotations"] if a["text"] == "No kidney labs recorded"]
    assert (note["xref"], note["yref"], note["yanchor"]) == ("paper", "paper", "bottom")
    assert note["y"] >= 1
    assert not [a for a in layout["annotations"] if "x2" in a.get("xref", "")]


def test_with_labs_the_dates_stay_under_the_lab_panel():
    labs = [LabResult(collected_at=at("2025-01-05"), test="upcr", value=D("0.4"), unit="g/g")]
    layout = figure(assess([level("2025-01-10")], labs=labs))["layout"]
    assert layout["xaxis"]["showticklabels"] is False
    assert "visible" not in layout["xaxis2"]
    assert "No kidney labs recorded" not in [a["text"] for a in layout["annotations"]]


def test_time_axis_spans_the_records_with_no_stretch_of_future():
    a = assess(
        [level("2023-02-10"), level("2025-12-20")],
        regimens=[regimen("2023-02-01")],
        as_of=date(2025, 12, 31),
    )
    layout = figure(a)["layout"]
    start, end = layout["xaxis2"]["range"]
    assert layout["xaxis"]["range"] == [start, end]
    first = datetime.fromisoformat(x(at("2023-02-01", 0)))
    now = datetime.fromisoformat(x(a.now))
    assert first - timedelta(days=7) <= datetime.fromisoformat(start) < first
    assert now < datetime.fromisoformat(end) <= now + timedelta(days=7)
    # "all" (an autorange) stays in the same span.
    assert layout["xaxis2"]["autorangeoptions"] == {"minallowed": start, "maxallowed": end}


def test_time_axis_of_a_single_record_is_not_empty():
    layout = figure(assess([], regimens=[regimen("2025-12-31")]))["layout"]
    start, end = layout["xaxis2"]["range"]
    assert datetime.fromisoformat(end) - datetime.fromisoformat(start) >= timedelta(days=2)


def test_overlays_land_on_the_axes_plotly_would_give_them():
    # Annotations and shapes are gathered and set at once (plotly re-validates the whole list
    # on every add_annotation); their row/secondary-axis references must match plotly's own.
    fig = figure(
        assess([level("2025-01-10")], regimens=[regimen("2025-01-01"), regimen("2025-01-20", "4")])
    )
    [dose] = [a for a in fig["layout"]["annotations"] if a.get("name") == "dose_change"][1:]
    assert (dose["xref"], dose["yref"]) == ("x", "y2")  # the dose axis of the upper panel


def test_every_figure_passes_plotlys_validation():
    # The builders skip plotly's per-property validation for speed; the finished figures
    # must still be valid: plotly's validating constructor raises on any unknown property
    # or bad value.
    drugs = [
        ConcomitantDrug(
            name="Diflucan",
            catalog=DrugCatalogEntry(name="fluconazole", interaction="raises"),
            started_on=date(2025, 3, 1),
        )
    ]
    labs = [LabResult(collected_at=at("2025-01-05"), test="creatinine", value=D("1"), unit="mg/dL")]
    assessment = assess(
        [
            level("2025-01-10", assay="LCMSMS"),
            level("2025-02-10", "1.0", comparator="<", assay="CMIA"),
            level("2025-03-10", hours=None),
        ],
        regimens=[
            regimen("2025-01-01"),
            regimen("2025-02-01", "4", formulation="ER", frequency="QD"),
        ],
        drugs=drugs,
        labs=labs,
    )
    for built in (
        charts.trough_figure(assessment),
        charts.trough_figure(assessment, unit="nmol/L"),
        charts_report.report_figure(assessment),
    ):
        go.Figure(built.to_dict())  # raises ValueError on anything plotly does not accept


# --- size, JSON and the text alternative --------------------------------------------------


def synthetic_levels(n: int) -> list[TroughLevel]:
    start = at("2021-01-04")
    out = []
    for i in range(n):
        value = D("2.5") + D(i % 70) / D(10)
        day = (start + timedelta(days=3 * i)).date().isoformat()
        out.append(
            level(
                day,
                f"{value}",
                hours=11.0 + (i % 5) * 0.7,
                assay="CMIA" if i % 97 == 0 else "LCMSMS",
                accession=f"ACC-{i:06d}",
                status="preliminary" if i % 50 == 0 else "final",
            )
        )
    return out


def test_figure_json_for_500_levels_is_under_150_kb():
    regimens = [
        regimen("2020-12-01", "3"),
        regimen("2022-01-01", "4"),
        regimen("2023-01-01", "4", "ER", "QD"),
    ]
    labs = [
        LabResult(
            collected_at=at("2021-01-05") + timedelta(days=30 * i),
            test="creatinine",
            value=D("80") + i % 9,
            unit="umol/L",
        )
        for i in range(48)
    ]
    fig = figure(assess(synthetic_levels(500), regimens=regimens, labs=labs), unit="nmol/L")
    assert len(points(fig)) == 500
    # Measured as the page embeds it: json_script escapes <, > and & to \uXXXX.
    assert len(json_script(fig, "trough-chart-data").encode()) < 150_000


def test_figure_script_is_what_json_script_writes():
    # The patient page embeds the figure with charts.figure_script (json_script's escapes,
    # applied faster): the same characters, including the escaped <, > and &.
    levels = synthetic_levels(60)
    levels[3].accession = "<b>A&B</b>"
    fig = figure(assess(levels))
    fig["layout"]["title"] = {"text": "x < y > z & <script>"}
    assert charts.figure_script(fig, "trough-figure") == json_script(fig, "trough-figure")


def test_figure_json_is_plain_json_with_data_and_layout():
    fig = figure(assess([level("2025-01-10")]))
    assert set(fig) >= {"data", "layout"}
    json.dumps(fig)  # no Decimal or datetime left for the encoder to stringify


def test_a_patient_without_records_still_gets_a_figure():
    fig = figure(assess([], regimens=[]))
    assert trough_traces(fig) == []
    [band] = bands(fig)
    assert (band["y0"], band["y1"]) == (4.0, 6.0)


def test_summary_line():
    a = assess(
        [
            level("2024-01-02", "3.2"),
            level("2025-03-04", "5.0"),
            level("2025-06-01", "9.9", status="entered_in_error"),
            level("2025-11-20", "5.1"),
        ]
    )
    assert charts.chart_summary(a) == (
        "3 troughs from 2024-01-02 to 2025-11-20; latest 5.10 ng/mL (in range); 2 of 3 in range."
    )
    assert charts.chart_summary(a, unit="nmol/L") == (
        "3 troughs from 2024-01-02 to 2025-11-20; latest 6.34 nmol/L (in range); 2 of 3 in range."
    )


def test_summary_line_names_a_censored_preliminary_latest_and_no_data():
    a = assess([level("2025-11-20", "1.0", comparator="<", status="preliminary")])
    assert charts.chart_summary(a) == (
        "1 trough on 2025-11-20; latest <1.00 ng/mL (below range, preliminary); 0 of 1 in range."
    )
    assert charts.chart_summary(assess([])) == "No troughs recorded."


def test_summary_keeps_the_decimals_the_table_shows():
    a = assess([level("2025-11-20", "5")])
    assert "latest 5.00 ng/mL" in charts.chart_summary(a)


def test_assay_change_line_is_readable_and_drawn_below_the_troughs():
    fig = figure(assess([level("2025-01-10"), level("2025-04-10", "3.0", assay="CMIA")]))
    [line] = [s for s in fig["layout"]["shapes"] if s.get("name") == "assay_change"]
    assert line["layer"] == "below"  # a trough on the day of the change stays visible
    assert contrast(line["line"]["color"], "#ffffff") >= 3


def test_the_band_label_is_in_the_legend_not_over_the_dose_annotations():
    fig = figure(assess([level("2025-01-10")], regimens=[regimen("2024-01-01")]))
    assert named_annotations(fig, "target_band") == []
    keys = [t["name"] for t in fig["data"] if t.get("meta") == "target_band"]
    assert keys == ["Target 4–6 ng/mL (shaded band)"]


def contrast(colour: str, background: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours."""

    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(colour), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)
