"""Detection: streaming checks over contextualized samples that emit ``Detection`` events.

``DetectorSet.from_config`` builds the configured detectors and routes each sample
to its handlers; see the modules for each kind (limits, spc, state, stale,
material, ml_score).
"""

from core.detect.events import Detection, DetectionKind, Priority
from core.detect.pipeline import DetectorSet

__all__ = ["Detection", "DetectionKind", "DetectorSet", "Priority"]
