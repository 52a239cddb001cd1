"""Moved to `lrp.sources.tfjs` (the reader) and `lrp.sources.packages` (npm); kept as an alias."""

from lrp.sources.packages import extract_package_files, npm_pack  # noqa: F401
from lrp.sources.tfjs import GraphModel, Node, decode_attr, decode_weights, read_graph_model  # noqa: F401
