"""lrp: composable command-line tools for pose estimation of low-resolution people."""

__version__ = "0.1.0"
