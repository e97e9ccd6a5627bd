"""Bad model files and bad data sets are refused with a message that says where and why,
through the Python API and through `pk_fit` (which then writes nothing)."""

import io

import pytest
from django.core.management import CommandError, call_command

from monitoring import pk
from tests.pk.modeltext import ONE_COMPARTMENT, dataset_csv, model_toml

GOOD_MODEL = model_toml(**ONE_COMPARTMENT)
GOOD_CL = 'CL = "4 * exp(ETA_CL)"'

# (what is wrong, the model file text, words the message must contain)
BAD_MODELS = [
    (
        "unknown key",
        GOOD_MODEL.replace('drug = "tacrolimus"', 'drug = "tacrolimus"\ncolour = "blue"'),
        ["[model]", "unknown key", "colour"],
    ),
    ("unknown section", GOOD_MODEL + "\n[extras]\nx = 1\n", ["unknown section", "extras"]),
    (
        "unknown parameter",
        GOOD_MODEL.replace("[parameters]", '[parameters]\nVMAX = "3"'),
        ["VMAX", "unknown parameter"],
    ),
    (
        "missing parameter",
        GOOD_MODEL.replace('KA = "1.2 * exp(ETA_KA)"\n', ""),
        ["[parameters]", "missing parameter", "KA"],
    ),
    (
        "ETA without a variance",
        GOOD_MODEL.replace("variances = [0.1, 0.1, 0.2]", "variances = [0.1, 0.1]"),
        ["[omega]", "ETA_KA"],
    ),
    (
        "ETA used but not in omega",
        GOOD_MODEL.replace('"1.2 * exp(ETA_KA)"', '"1.2 * exp(ETA_KA + ETA_X)"'),
        ["KA", "ETA_X"],
    ),
    (
        "non-positive-definite omega",
        GOOD_MODEL.replace(
            "variances = [0.1, 0.1, 0.2]", "block = [[0.1], [0.5, 0.1], [0.0, 0.0, 0.2]]"
        ),
        ["[omega]", "positive definite"],
    ),
    (
        "negative variance",
        GOOD_MODEL.replace("variances = [0.1, 0.1, 0.2]", "variances = [0.1, -0.1, 0.2]"),
        ["[omega]", "positive definite"],
    ),
    (
        "__import__",
        GOOD_MODEL.replace(GOOD_CL, "CL = \"__import__('os').getcwd()\""),
        ["CL", "__import__"],
    ),
    (
        "attribute access",
        GOOD_MODEL.replace(GOOD_CL, 'CL = "4 * exp(ETA_CL).real"'),
        ["CL", ".real", "attribute"],
    ),
    (
        "module attribute",
        GOOD_MODEL.replace(GOOD_CL, 'CL = "math.pi * exp(ETA_CL)"'),
        ["CL", "math.pi", "attribute"],
    ),
    (
        "call of another function",
        GOOD_MODEL.replace(GOOD_CL, 'CL = "4 * exp(ETA_CL) * abs(-1)"'),
        ["CL", "abs"],
    ),
    ("eval", GOOD_MODEL.replace(GOOD_CL, "CL = \"eval('4') * exp(ETA_CL)\""), ["CL", "eval"]),
    (
        "unknown name",
        GOOD_MODEL.replace(GOOD_CL, 'CL = "4 * WT * exp(ETA_CL)"'),
        ["CL", "WT"],
    ),
    ("not TOML", GOOD_MODEL.replace("[omega]", "[omega"), ["TOML"]),
]


@pytest.mark.parametrize(("problem", "text", "words"), BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_bad_model_file_is_refused_through_the_api(problem, text, words):
    with pytest.raises(pk.ModelError) as caught:
        pk.parse_model(text, source="bad_model.toml")
    message = str(caught.value)
    for word in ["bad_model.toml", *words]:
        assert word in message, f"{problem}: {word!r} not in {message!r}"


def test_the_good_model_is_accepted():
    """The bad files above differ from this one by one thing each."""
    model = pk.parse_model(GOOD_MODEL, source="good.toml")
    assert model.eta_names == ["ETA_CL", "ETA_V", "ETA_KA"]


GOOD_DATA = [
    {"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100},
    {"ID": 1, "TIME": 2, "EVID": 0, "DV": 1.2},
    {"ID": 1, "TIME": 6, "EVID": 0, "DV": 0.9},
]

# (what is wrong, the data rows, the exact problem line expected)
BAD_DATA = [
    (
        "non-numeric TIME",
        [GOOD_DATA[0], {**GOOD_DATA[1], "TIME": "2h"}, GOOD_DATA[2]],
        "row 3, column TIME: value '2h': not a number",
    ),
    (
        "negative AMT",
        [GOOD_DATA[0], {"ID": 1, "TIME": 1, "EVID": 1, "AMT": -5}, *GOOD_DATA[1:]],
        "row 3, column AMT: value '-5': cannot be negative",
    ),
    (
        "EVID other than 0 or 1",
        [GOOD_DATA[0], {**GOOD_DATA[1], "EVID": 2}, GOOD_DATA[2]],
        "row 3, column EVID: value '2': must be 0 or 1",
    ),
    (
        "rows out of time order",
        [GOOD_DATA[0], GOOD_DATA[2], GOOD_DATA[1]],
        "row 4, column TIME: value '2': rows out of time order for ID 1",
    ),
]


def _model():
    return pk.parse_model(GOOD_MODEL, source="good.toml")


@pytest.mark.parametrize(("problem", "rows", "expected"), BAD_DATA, ids=[b[0] for b in BAD_DATA])
def test_bad_data_row_is_refused_through_the_api(problem, rows, expected):
    with pytest.raises(pk.DatasetError) as caught:
        pk.parse_dataset(dataset_csv(rows), _model())
    assert any(line.startswith(expected) for line in caught.value.problems), (
        problem,
        caught.value.problems,
    )


def test_every_bad_row_is_listed_at_once():
    rows = [GOOD_DATA[0], {**GOOD_DATA[1], "TIME": "x"}, {**GOOD_DATA[2], "EVID": 7}]
    with pytest.raises(pk.DatasetError) as caught:
        pk.parse_dataset(dataset_csv(rows), _model())
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "row 3, column TIME",
        "row 4, column EVID",
    ]


def test_the_good_data_set_is_accepted():
    (subject,) = pk.parse_dataset(dataset_csv(GOOD_DATA), _model())
    assert len(subject.observed) == 2


def _run_pk_fit(tmp_path, model_text, rows):
    model_path = tmp_path / "model.toml"
    model_path.write_text(model_text, encoding="utf-8")
    data_path = tmp_path / "data.csv"
    data_path.write_text(dataset_csv(rows), encoding="utf-8")
    output = tmp_path / "estimates.csv"
    predictions = tmp_path / "predictions.csv"
    with pytest.raises(CommandError) as caught:
        call_command(
            "pk_fit",
            str(model_path),
            str(data_path),
            output=str(output),
            predictions=str(predictions),
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    # Nothing runs: no estimates, no predictions.
    assert not output.exists() and not predictions.exists()
    return str(caught.value), str(model_path)


@pytest.mark.parametrize(("problem", "text", "words"), BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_bad_model_file_is_refused_by_pk_fit(problem, text, words, tmp_path):
    message, path = _run_pk_fit(tmp_path, text, GOOD_DATA)
    for word in [path, *words]:
        assert word in message, f"{problem}: {word!r} not in {message!r}"


@pytest.mark.parametrize(("problem", "rows", "expected"), BAD_DATA, ids=[b[0] for b in BAD_DATA])
def test_bad_data_row_is_refused_by_pk_fit(problem, rows, expected, tmp_path):
    message, _ = _run_pk_fit(tmp_path, GOOD_MODEL, rows)
    assert expected in message, (problem, message)


def test_unknown_shipped_model_id_is_refused_by_pk_fit(tmp_path):
    data_path = tmp_path / "data.csv"
    data_path.write_text(dataset_csv(GOOD_DATA), encoding="utf-8")
    with pytest.raises(CommandError) as caught:
        call_command("pk_fit", "no_such_model", str(data_path), stdout=io.StringIO())
    assert "no_such_model" in str(caught.value)
