"""Stored configuration: thresholds and the default target, read into plain values."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal

from . import rules
from .assessment import Target
from .models import DEFAULT_PROFILE_CODE, RuleSetting, TargetProfile

__all__ = ["DEFAULT_PROFILE_CODE"]


def load_thresholds() -> rules.Thresholds:
    """The spec's defaults, overridden by whatever the clinic administrator stored."""
    stored = dict(RuleSetting.objects.values_list("key", "value"))
    values = {}
    for f in fields(rules.Thresholds):
        if f.name in stored:
            default = getattr(rules.DEFAULT_THRESHOLDS, f.name)
            values[f.name] = (
                int(stored[f.name]) if isinstance(default, int) else plain(Decimal(stored[f.name]))
            )
    return rules.Thresholds(**values)


def plain(value: Decimal) -> Decimal:
    """48.0000 from the database reads as 48 in messages; 30.4375 stays as it is."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def profile_target(profile: TargetProfile) -> Target:
    return Target(
        low=profile.low_ng_ml,
        high=profile.high_ng_ml,
        name=profile.name,
        evidence=profile.evidence,
        source=profile.source,
    )


def default_target() -> Target:
    profile = TargetProfile.objects.filter(code=DEFAULT_PROFILE_CODE).first()
    if profile is None:  # the data migration seeds it; this guards a wiped table
        return Target(
            Decimal("4.0"),
            Decimal("6.0"),
            "LN maintenance (KDIGO 2024)",
            rules.GUIDELINE,
            "KDIGO 2024 lupus nephritis guideline",
        )
    return profile_target(profile)
