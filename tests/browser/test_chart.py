"""The on-screen trough chart in a real browser: nothing leaves the site through it, it reads
for a patient without kidney labs, its encodings match the printed report, and its controls
work from the keyboard."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.browser import pages
from tests.browser.pages import CHART_DRAWN, open_patient

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright").expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

demo = pages.demo
clinician = pages.clinician

# The only modebar buttons the chart may offer: looking at the data, and saving a picture of
# it to this computer. Anything else (plotly's "Share chart…", "Edit in Chart Studio") would
# be a path for patient data to a third party.
ALLOWED_MODEBAR = {
    "Download plot as a PNG",
    "Zoom",
    "Pan",
    "Zoom in",
    "Zoom out",
    "Autoscale",
    "Reset axes",
}


def _watch_off_site(page, live_server_url: str) -> tuple[list[str], list[str]]:
    """Record (and block) every request to another origin, and every new window."""
    own = urlsplit(live_server_url).netloc
    off_site: list[str] = []
    popups: list[str] = []

    def route(route):
        url = route.request.url
        scheme, netloc = urlsplit(url)[:2]
        if scheme in ("http", "https", "ws", "wss") and netloc != own:
            off_site.append(url)
            route.abort()
        else:
            route.continue_()

    page.context.route("**/*", route)
    page.context.on("page", lambda popup: popups.append(popup.url or "about:blank"))
    page.on("popup", lambda popup: popups.append(popup.url or "about:blank"))
    return off_site, popups


def _click_every_chart_control(page, chart: str) -> list[str]:
    """Click every modebar button, the range buttons and the legend items of the chart, and
    confirm any dialog that a button opens. Returns the modebar buttons' titles."""
    plot = page.locator(chart)
    plot.hover()
    buttons = plot.locator(".modebar-btn")
    titles = [buttons.nth(i).get_attribute("data-title") or "" for i in range(buttons.count())]
    for i in range(buttons.count()):
        plot.hover()
        with page.expect_download(timeout=3000) if titles[i].startswith("Download") else _noop():
            buttons.nth(i).dispatch_event("click")
        # plotly's cloud export asks first; a user who says yes must not send anything either.
        confirm = page.locator(".plotly-cloud-dialog button").filter(has_not_text="Cancel")
        if confirm.count():
            confirm.first.click()
        page.wait_for_timeout(200)
    for control in page.locator(".chart-range button").all():
        control.click()
        page.wait_for_timeout(50)
    for selector in (".rangeselector .button", ".legend .traces"):
        for control in plot.locator(selector).all():
            control.dispatch_event("click")
            page.wait_for_timeout(50)
    return titles


class _noop:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("where", ["patient", "report"])
def test_no_chart_control_sends_data_off_the_site(demo, clinician, live_server, where):
    page = clinician
    off_site, popups = _watch_off_site(page, live_server.url)
    patient = demo["DEMO-006"]
    if where == "patient":
        open_patient(page, patient)
    else:
        page.goto(reverse("monitoring:report", args=[patient.pk]))
        page.wait_for_selector(CHART_DRAWN)
    start_url = page.url

    titles = _click_every_chart_control(page, "[data-chart-source][data-chart-drawn]")

    page.wait_for_timeout(500)
    assert off_site == [], off_site
    assert popups == [], popups
    unexpected = [t for t in titles if t not in ALLOWED_MODEBAR]
    assert unexpected == [], f"modebar offers {unexpected}"
    assert page.url == start_url
    # The configuration itself names no cloud destination that a later plotly.js release
    # could start to use.
    context = page.eval_on_selector(
        "[data-chart-source][data-chart-drawn]",
        "el => ({cloud: el._context.showSendToCloud, url: el._context.plotlyServerURL,"
        " editable: el._context.editable})",
    )
    assert context == {"cloud": False, "url": "", "editable": False}


def _without_labs(patient) -> None:
    # Setup only: the patient as most are right after an import, with troughs and no labs.
    from monitoring.models import LabResult

    LabResult.objects.filter(patient=patient).delete()


def _axis_ticks(page, axis: str) -> list[str]:
    return page.eval_on_selector_all(
        f"[data-chart-drawn] .xaxislayer-above .{axis}tick text",
        "els => els.filter(e => e.getBoundingClientRect().width > 0).map(e => e.textContent)",
    )


def _plot_area(page, subplot: str) -> dict:
    return page.locator(f"[data-chart-drawn] .nsewdrag[data-subplot='{subplot}']").bounding_box()


def _inside(box: dict, area: dict) -> bool:
    return (
        box["x"] < area["x"] + area["width"]
        and box["x"] + box["width"] > area["x"]
        and box["y"] < area["y"] + area["height"]
        and box["y"] + box["height"] > area["y"]
    )


def test_a_patient_without_kidney_labs_gets_a_readable_time_axis(demo, clinician):
    page = clinician
    patient = demo["DEMO-006"]
    _without_labs(patient)
    first = min(level.collected_at for level in patient.levels.all())
    first = min([first, *(r.effective_at for r in patient.regimens.all())])
    open_patient(page, patient)

    start, end = page.eval_on_selector(
        CHART_DRAWN.rsplit(" ", 1)[0], "el => el._fullLayout.xaxis.range"
    )
    start, end = (datetime.fromisoformat(v[:16]) for v in (start, end))
    today = timezone.localtime().replace(tzinfo=None)
    first = timezone.localtime(first).replace(tzinfo=None)
    assert first - timedelta(days=8) <= start <= first, (start, first)
    assert today <= end <= today + timedelta(days=8), (end, today)
    # The dates are on the trough panel, the only panel drawn.
    ticks = _axis_ticks(page, "x")
    assert len(ticks) >= 3, ticks
    # "No kidney labs recorded" is said, but not over the troughs.
    note = page.locator(".js-plotly-plot .annotation", has_text="No kidney labs recorded")
    assert not _inside(note.bounding_box(), _plot_area(page, "xy"))


# Each drawn trough: its x, its range verdict (the trace's legend group), the fill plotly gave
# its SVG marker, and the marker's box on the screen.
DRAWN_TROUGHS = """el => Array.from(el.querySelectorAll('.scatterlayer .trace'))
    .filter(g => g.__data__ && g.__data__[0].trace.meta === 'troughs')
    .flatMap(g => Array.from(g.querySelectorAll('path.point')).map(p => {
        const trace = g.__data__[0].trace;
        const box = p.getBoundingClientRect();
        return {x: trace.x[p.__data__.i], group: trace.legendgroup,
                symbol: trace.marker.symbol[p.__data__.i],
                fill: getComputedStyle(p).fill, fillOpacity: getComputedStyle(p).fillOpacity,
                box: {x: box.x, y: box.y, width: box.width, height: box.height}};
    }))"""


def _six_month_range(page) -> tuple[datetime, datetime]:
    page.locator(".chart-range button", has_text="6m").click()
    page.wait_for_timeout(300)
    start, end = page.eval_on_selector("[data-chart-drawn]", "el => el._fullLayout.xaxis.range")
    return tuple(datetime.fromisoformat(v[:16]) for v in (start, end))


def test_chart_marks_read_as_on_paper_and_do_not_hide_each_other(demo, clinician):
    page = clinician
    patient = demo["DEMO-006"]  # its newest trough came a day after a dose change
    # A censored result on a new assay: the assay-change line is drawn on its day.
    collected = timezone.now() - timedelta(days=10)
    patient.levels.create(
        collected_at=collected,
        last_dose_at=collected - timedelta(hours=12),
        reported_value="<2.0",
        reported_unit="ng/mL",
        comparator="<",
        value_ng_ml="2.0",
        assay="CMIA",
        accession="CENSORED-CMIA",
        status="final",
    )
    open_patient(page, patient)
    chart = "[data-chart-drawn]"

    troughs = page.eval_on_selector(chart, DRAWN_TROUGHS)
    newest = max(troughs, key=lambda t: t["x"])
    assert newest["group"] == "range:in_range"
    # Not at steady state: hollow, as the printed report draws it.
    assert newest["fillOpacity"] == "0" or newest["fill"] in ("none", "rgba(0, 0, 0, 0)"), newest

    # The caption reads the value as the table does.
    expect(page.locator("#chart-summary")).to_contain_text("latest 5.00 ng/mL")

    # The assay-change line: drawn under the troughs, and readable against white.
    above = page.eval_on_selector_all(
        f"{chart} .layer-above .shapelayer path", "ps => ps.map(p => p.style.stroke)"
    )
    strokes = page.eval_on_selector_all(
        f"{chart} .shapelayer path", "ps => ps.map(p => p.style.stroke)"
    )
    assay = [s for s in strokes if s == "rgb(166, 109, 0)"]
    assert assay, strokes
    assert not [s for s in above if s == "rgb(166, 109, 0)"], above

    # No dose annotation overlaps other text in the plot (the band's label sat under the first).
    boxes = page.eval_on_selector_all(
        f"{chart} .annotation",
        "els => els.map(e => { const b = e.getBoundingClientRect();"
        " return {text: e.textContent, x: b.x, y: b.y, width: b.width, height: b.height}; })",
    )
    for i, one in enumerate(boxes):
        for other in boxes[i + 1 :]:
            if "mg/day" in one["text"] + other["text"]:
                assert not _inside(one, other), (one["text"], other["text"])
    legend = page.locator(f"{chart} .legendtext").all_text_contents()
    assert "Target 4–6 ng/mL (shaded band)" in legend, legend

    # "6m": six months back from today, not from two months ahead.
    today = timezone.localtime().replace(tzinfo=None)
    start, end = _six_month_range(page)
    assert today <= end <= today + timedelta(days=8), end
    assert timedelta(days=178) <= end - start <= timedelta(days=186)
    page.locator(".chart-range button", has_text="all").click()
    page.wait_for_timeout(300)
    start, end = _six_month_range(page)
    assert end <= today + timedelta(days=8), end


def test_the_range_buttons_are_real_buttons_reachable_by_keyboard(demo, clinician):
    page = clinician
    open_patient(page, demo["DEMO-006"])
    # plotly's own (SVG, unreachable) buttons are not shown.
    assert page.locator("[data-chart-drawn] .rangeselector .button").count() == 0
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent") == "6m":
            break
    focused = page.evaluate(
        "() => { const e = document.activeElement; const s = getComputedStyle(e);"
        " return {tag: e.tagName, outline: s.outlineStyle, width: parseFloat(s.outlineWidth),"
        " group: e.parentElement.getAttribute('aria-label')}; }"
    )
    assert focused["tag"] == "BUTTON", focused
    assert focused["outline"] != "none" and focused["width"] >= 2, focused  # a visible ring
    assert focused["group"] == "Time range of the chart"
    page.keyboard.press("Enter")
    expect(page.locator(".chart-range button", has_text="6m")).to_have_attribute(
        "aria-pressed", "true"
    )
    start, end = page.eval_on_selector("[data-chart-drawn]", "el => el._fullLayout.xaxis.range")
    days = (datetime.fromisoformat(end[:16]) - datetime.fromisoformat(start[:16])).days
    assert 178 <= days <= 186
