"""Dataset readers (CUB, ILSVRC, wsolevaluation metadata, synthetic), transforms, samplers."""
from wsolbench.plugins import import_package_modules

import_package_modules(__name__)
