"""Method plugins: one file per method. Every module here is imported and registers itself."""
from wsolbench.plugins import import_package_modules

import_package_modules(__name__)
