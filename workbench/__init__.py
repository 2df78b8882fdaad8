"""Trading Workbench: a Jupyter-first trading workbench.

The top level keeps to the names a notebook needs first; everything else is one import
away in its domain package (``workbench.data``, ``workbench.ui``, ...).
"""

from workbench.config import Settings, load_settings
from workbench.errors import WorkbenchError

__all__ = ["Settings", "WorkbenchError", "load_settings"]
__version__ = "0.1.0"
