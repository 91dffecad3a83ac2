"""Detection: streaming checks over contextualized samples that emit ``Detection`` events.

``DetectorSet.from_config`` builds the configured detectors and routes each sample
to its handlers; see the modules for each kind (limits, spc, state, stale,
material, ml_score, deviation). ``DetectLoop`` runs them at their cadences and hands
detections to the engine, the alarm manager (``core.alarms``) and the event stream.
"""

from core.detect.events import Detection, DetectionKind, Priority
from core.detect.loop import DetectLoop
from core.detect.pipeline import DetectorSet

__all__ = ["DetectLoop", "Detection", "DetectionKind", "DetectorSet", "Priority"]
