"""Evaluation protocols: maps -> boxes over thresholds, accumulators, registered presets."""
from wsolbench.plugins import import_package_modules

import_package_modules(__name__)
