"""The HL7 import preview lists each result's values, not only counts, so the user checks
what will be stored before confirming."""

from __future__ import annotations

import re

from tests.integration.test_web_import import hl7, patients, upload  # noqa: F401 (fixture)

LAB = (
    "MSH|^~\\&|LIS|GH|TDM|NEPHRO|20250312093000||ORU^R01|LAB1|P|2.5.1\r"
    "PID|1||MRN-2^^^GH^MR||Roe^Maria||19751130|F\r"
    "OBR|1|ORD2|ACC-L1|24323-8^Panel^LN|||20250311070000\r"
    "OBX|1|NM|2160-0^Creatinine^LN||88|umol/L^^UCUM|||||C|||20250311070000\r"
)


def cells(html: str) -> list[list[str]]:
    table = html[html.index('class="levels-table import-preview import-results"') :]
    table = table[table.index("<tbody>") : table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [
        [
            " ".join(re.sub(r"<[^>]+>", " ", c).split())
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)
        ]
        for r in rows
    ]


def test_each_result_shows_patient_time_value_unit_assay_and_status(data_entry_client, patients):  # noqa: F811
    response = upload(data_entry_client, "hl7", hl7("MSG1") + LAB, "results.hl7")
    preview = response.context["preview"]
    assert preview.ok
    rows = cells(response.content.decode())
    assert rows == [
        [
            "1",
            "Tacrolimus trough OBX 1 (77348-1)",
            "MRN-1",
            "2025-03-12 07:30",
            "5.2",
            "ng/mL",
            "LC-MS/MS",
            "Final",
        ],
        [
            "2",
            "Creatinine OBX 1 (2160-0)",
            "MRN-2",
            "2025-03-11 07:00",
            "88",
            "umol/L",
            "—",
            "Corrected",
        ],
    ]


def test_a_message_in_error_still_shows_the_values_it_carried(data_entry_client, patients):  # noqa: F811
    response = upload(data_entry_client, "hl7", hl7("MSG1", mrn="MRN-404"), "results.hl7")
    assert not response.context["preview"].ok
    assert cells(response.content.decode())[0][2] == "MRN-404"
