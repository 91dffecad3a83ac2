"""The little a detector needs to know about a tag, resolved once from the config."""

from __future__ import annotations

from dataclasses import dataclass

from core.config.loader import LoadedConfig, ResolvedTag
from core.config.schema import Limits


@dataclass(frozen=True, slots=True)
class TagInfo:
    tag_id: str
    name: str
    equipment_id: str | None = None
    line_id: str | None = None
    kind: str = "signal"
    unit: str = ""
    limits: Limits | None = None

    @classmethod
    def from_resolved(cls, t: ResolvedTag) -> TagInfo:
        return cls(t.id, t.name, t.equipment_id, t.line_id, t.spec.kind, t.spec.unit,
                   t.spec.limits)

    @property
    def label(self) -> str:
        """Plain words for summaries: "A-LATHE1 bearing temp"."""
        words = self.name.replace("_", " ")
        return f"{self.equipment_id} {words}" if self.equipment_id else self.tag_id


def tag_infos(cfg: LoadedConfig) -> dict[str, TagInfo]:
    return {t.id: TagInfo.from_resolved(t) for t in cfg.tags}


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "?"
    s = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{s} {unit}".rstrip()
