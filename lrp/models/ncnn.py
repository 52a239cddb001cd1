"""Moved to `lrp.sources.ncnn`; kept as an alias."""

from lrp.sources.ncnn import Layer, convolutions, load_ncnn, parse_param, read_bin, write_ncnn  # noqa: F401
