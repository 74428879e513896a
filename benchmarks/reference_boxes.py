"""The per-threshold reference now lives in the package (``wsolbench.protocols.reference_boxes``); this
module keeps the benchmarks' and tests' old import working."""
from wsolbench.protocols.reference_boxes import reference_boxes  # noqa: F401


def same_boxes(level_boxes, reference) -> bool:
    """Whether a ``LevelBoxes`` gives the reference's boxes at every threshold (order carries no meaning)."""
    return all(sorted(map(tuple, level_boxes.at_threshold(j).tolist())) == sorted(map(tuple, ref.tolist()))
               for j, ref in enumerate(reference))
