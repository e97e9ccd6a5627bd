"""British English: the same ISO dates and times as ``formats/en`` (see there why)."""

from tdm_site.formats.en.formats import *  # noqa: F403
