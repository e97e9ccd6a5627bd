"""Reference data shipped with the project (clinical-rules.md §2, §6 and the thresholds),
loaded by a data migration and editable in the admin afterwards. Plain data only, so the
migration stays valid however the code changes."""

from __future__ import annotations

from dataclasses import fields

from . import rules

KDIGO = "KDIGO 2024 Clinical Practice Guideline for the management of lupus nephritis"

TARGET_PROFILES = [
    # code, name, low, high, evidence, source
    (
        "ln_maintenance",
        "LN maintenance (KDIGO 2024)",
        "4.0",
        "6.0",
        "G",
        f"{KDIGO}: tacrolimus trough 4–6 ng/mL in maintenance (confirm against the primary "
        "text before clinical release).",
    ),
    (
        "ln_induction",
        "LN induction (trial ranges)",
        "5.0",
        "10.0",
        "L",
        "Trial ranges used with multitarget induction in lupus nephritis (published literature).",
    ),
    (
        "liver_tx_month1",
        "Liver transplant, month 1",
        "6.0",
        "10.0",
        "L",
        "Liver transplant practice, first month after transplantation.",
    ),
    (
        "liver_tx_later",
        "Liver transplant, after month 1",
        "4.0",
        "8.0",
        "L",
        "Liver transplant practice, after the first month.",
    ),
    (
        "aih_refractory",
        "Autoimmune hepatitis, refractory (~6 ng/mL)",
        "5.0",
        "7.0",
        "D",
        "Refractory autoimmune hepatitis: about 6 ng/mL in the literature, stored as 5–7 [D].",
    ),
    (
        "ild_autoimmune",
        "ILD in autoimmune disease",
        "5.0",
        "10.0",
        "L",
        "Interstitial lung disease in autoimmune disease (published literature).",
    ),
    (
        "peds_srns",
        "Paediatric steroid-resistant nephrotic syndrome",
        "5.0",
        "7.0",
        "L",
        "Paediatric steroid-resistant nephrotic syndrome (published literature).",
    ),
]

# name, brand and other names, interaction, strength, immunosuppressant, CNI
DRUGS = [
    ("ketoconazole", "Nizoral", "raises", "strong", False, False),
    ("itraconazole", "Sporanox", "raises", "strong", False, False),
    ("posaconazole", "Noxafil", "raises", "strong", False, False),
    ("voriconazole", "Vfend", "raises", "strong", False, False),
    ("fluconazole", "Diflucan", "raises", "moderate", False, False),
    ("clotrimazole", "Canesten, Mycelex", "raises", "moderate", False, False),
    ("clarithromycin", "Biaxin, Klacid", "raises", "strong", False, False),
    ("erythromycin", "Erythrocin, Ery-Tab", "raises", "moderate", False, False),
    ("ritonavir", "Norvir", "raises", "strong", False, False),
    ("cobicistat", "Tybost", "raises", "strong", False, False),
    ("nirmatrelvir/ritonavir", "Paxlovid, nirmatrelvir", "raises", "strong", False, False),
    ("diltiazem", "Cardizem, Tildiem", "raises", "moderate", False, False),
    ("verapamil", "Isoptin, Calan", "raises", "moderate", False, False),
    ("nifedipine", "Adalat, Procardia", "raises", "weak", False, False),
    ("amiodarone", "Cordarone, Pacerone", "raises", "moderate", False, False),
    ("grapefruit juice", "grapefruit", "raises", "moderate", False, False),
    ("rifampicin", "rifampin, Rifadin, Rimactane", "lowers", "strong", False, False),
    ("rifabutin", "Mycobutin", "lowers", "moderate", False, False),
    ("phenytoin", "Dilantin, Epanutin", "lowers", "strong", False, False),
    ("carbamazepine", "Tegretol", "lowers", "strong", False, False),
    ("phenobarbital", "phenobarbitone, Luminal", "lowers", "strong", False, False),
    (
        "St John's wort",
        "Hypericum, Hypericum perforatum, St Johns wort",
        "lowers",
        "strong",
        False,
        False,
    ),
    (
        "mycophenolate",
        "mycophenolate mofetil, mycophenolic acid, CellCept, Myfortic, MMF",
        "none",
        "",
        True,
        False,
    ),
    ("azathioprine", "Imuran", "none", "", True, False),
    ("cyclophosphamide", "Endoxan, Cytoxan", "none", "", True, False),
    ("rituximab", "MabThera, Rituxan", "none", "", True, False),
    ("belimumab", "Benlysta", "none", "", True, False),
    ("obinutuzumab", "Gazyva, Gazyvaro", "none", "", True, False),
    (
        "glucocorticoid",
        "prednisone, prednisolone, methylprednisolone, dexamethasone, "
        "hydrocortisone, Medrol, Solu-Medrol, Deltasone",
        "none",
        "",
        True,
        False,
    ),
    ("cyclosporine", "ciclosporin, cyclosporin, Neoral, Sandimmune", "none", "", True, True),
    ("voclosporin", "Lupkynis", "none", "", True, True),
]
DRUG_SOURCE = (
    "Clinical-rules §6: CYP3A4/5 and P-gp interactions of tacrolimus; immunosuppressants "
    "counted for over-immunosuppression (KDIGO 2024 LN)."
)

SETTING_LABELS = {
    "plausibility_ceiling_ng_ml": ("Plausibility ceiling (ng/mL)", "D"),
    "timing_valid_hours": ("Timing: valid within ± h of nominal", "D"),
    "timing_borderline_hours": ("Timing: borderline within ± h of nominal", "D"),
    "max_dose_to_draw_hours": ("Last dose at most this many h before the draw", "D"),
    "steady_state_hours": ("Steady state after a change (h)", "D"),
    "required_months": ("Total immunosuppression required (months)", "G"),
    "days_per_month": ("Days per month", "D"),
    "creatinine_rise_percent": ("Creatinine rise for nephrotoxicity watch (%)", "D"),
    "ckd_egfr": ("eGFR below which CKD is pre-existing (mL/min/1.73m²)", "G"),
    "max_other_immunosuppressants": ("Most other immunosuppressants before a warning", "G"),
    "interaction_recent_days": ("Interaction start/stop counts as recent (days)", "D"),
    "metrics_window_days": ("Metrics window (days)", "D"),
    "ttr_max_gap_days": ("TTR: longest gap interpolated (days)", "D"),
    "cv_high_percent": ("High intra-patient variability above CV (%)", "L"),
    "cv_min_n": ("CV shown from n troughs", "D"),
    "cd_fast_metaboliser": ("C/D ratio at or below which metabolism may be fast", "L"),
    "dose_step_mg": ("Dose suggestion rounded to (mg/day)", "D"),
    "overdue_days": ("Trough overdue after (days)", "D"),
    "post_change_trough_days": ("Trough expected within (days) of a change", "D"),
    "off_time_percent_per_hour": ("Level change per hour off-time (%)", "L"),
    "critical_high_ng_ml": ("Worklist: critical trough at or above (ng/mL)", "D"),
    "critical_low_ng_ml": ("Worklist: critical trough at or below (ng/mL)", "D"),
}

SETTING_SOURCES = {
    "G": "KDIGO 2024 LN guideline as received in the project brief",
    "L": "Published literature (see clinical-rules.md)",
    "D": "Design default of this project",
}


def settings_rows() -> list[tuple[str, str, str, str, str]]:
    rows = []
    for f in fields(rules.Thresholds):
        label, tag = SETTING_LABELS[f.name]
        rows.append(
            (
                f.name,
                str(getattr(rules.DEFAULT_THRESHOLDS, f.name)),
                label,
                tag,
                SETTING_SOURCES[tag],
            )
        )
    return rows


# Permissions per group: app_label.codename. Reading is "view"; clinicians record levels and
# sign off; data entry imports and keys in everything; nobody gets "delete" on clinical data.
CLINICAL_MODELS = [
    "patient",
    "targetassignment",
    "regimen",
    "troughlevel",
    "concomitantdrug",
    "labresult",
]
GROUPS = {
    "viewer": [f"view_{m}" for m in CLINICAL_MODELS] + ["view_targetprofile"],
    "clinician": [f"view_{m}" for m in CLINICAL_MODELS]
    + ["view_targetprofile", "view_drugcatalogentry", "view_rulesetting"]
    + [
        "add_troughlevel",
        "change_troughlevel",
        "add_targetassignment",
        "change_targetassignment",
        "change_patient",
        "add_regimen",
        "change_regimen",
        "add_concomitantdrug",
        "change_concomitantdrug",
        "add_labresult",
        "change_labresult",
    ],
    # Targets are a clinical decision (monitoring.set_target, clinicians): data entry sees them.
    "data_entry": [f"view_{m}" for m in CLINICAL_MODELS]
    + [f"add_{m}" for m in CLINICAL_MODELS if m != "targetassignment"]
    + [f"change_{m}" for m in CLINICAL_MODELS if m != "targetassignment"]
    + ["view_targetprofile", "view_drugcatalogentry"],
}
