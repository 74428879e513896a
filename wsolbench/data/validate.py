"""The gate before training: every problem of the splits a run uses, or the samples to skip.

    splits = ensure_valid(ds, ("train", "val", "test"), skip_bad=False)
    splits["train"] -> list[Sample]; splits.skipped -> {split: [Sample]}; splits.message() -> one line

Without ``skip_bad`` any problem raises a ``WsolbenchError`` listing them all, one per line, by
file and line. With ``skip_bad`` the samples named by a problem are dropped and returned in
``.skipped``; problems that name no sample (a class with fewer than 2 training images, a line
without an image id) still raise, since skipping samples cannot cure them.
"""
from __future__ import annotations

from collections import defaultdict

from wsolbench.data.base import SPLITS, Problem, Sample, WsolDataset
from wsolbench.errors import WsolbenchError


class ValidSplits(dict):
    """split -> samples, plus what was skipped and why."""

    def __init__(self, splits: dict[str, list[Sample]], skipped: dict[str, list[Sample]], problems: list[Problem]):
        super().__init__(splits)
        self.skipped = skipped  # samples dropped, by split
        self.problems = problems

    @property
    def skipped_count(self) -> int:
        """Bad images, counting those whose annotation lines were too broken to make a sample."""
        return len({p.image_id for p in self.problems})

    def message(self, limit: int = 5) -> str:
        """E.g. ``skipped 3 bad samples: a.jpg:3: missing image ..., ... (2 more)``."""
        if not self.skipped_count:
            return "no bad samples"
        shown = "; ".join(map(str, self.problems[:limit]))
        more = f" ({len(self.problems) - limit} more problems)" if len(self.problems) > limit else ""
        return f"skipped {self.skipped_count} bad samples: {shown}{more}"


def format_problems(dataset: WsolDataset, problems: list[Problem]) -> str:
    lines = "\n".join(f"  {p}" for p in problems)
    return f"dataset {dataset.name}: {len(problems)} problem{'s' * (len(problems) != 1)}:\n{lines}"


def ensure_valid(dataset: WsolDataset, splits=SPLITS, skip_bad: bool = False, decode: bool = False) -> ValidSplits:
    problems = dataset.check(tuple(splits), decode=decode)
    samples = {split: dataset.samples(split) for split in splits}
    if not problems:
        return ValidSplits(samples, {split: [] for split in splits}, [])
    unskippable = [p for p in problems if p.image_id is None]
    if not skip_bad or unskippable:
        hint = "" if skip_bad else "\n(fix them, or skip the bad samples with the skip-bad option)"
        raise WsolbenchError(format_problems(dataset, unskippable if skip_bad else problems) + hint)
    bad = {p.image_id for p in problems}
    kept: dict[str, list[Sample]] = {}
    skipped: dict[str, list[Sample]] = defaultdict(list)
    for split, items in samples.items():
        kept[split] = [s for s in items if s.image_id not in bad]
        skipped[split] = [s for s in items if s.image_id in bad]
    return ValidSplits(kept, dict(skipped), problems)
