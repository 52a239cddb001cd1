"""Human labels for documents, from their history: "original", "LR 1/4", "LR 1/4 > bicubic x4"."""

from __future__ import annotations

from fractions import Fraction


def _scale_text(scale: float) -> str:
    frac = Fraction(scale).limit_denominator(64)
    if abs(float(frac) - scale) < 1e-9:
        if frac.denominator == 1:
            return f"x{frac.numerator}"
        if frac.numerator == 1:
            return f"1/{frac.denominator}"
        return f"{frac.numerator}/{frac.denominator}"
    return f"{scale:g}"


def step_label(step: dict) -> str | None:
    """One history step as a short phrase, or None for steps that do not change the images."""
    cmd = step.get("command")
    args = step.get("args", {})
    if cmd == "degrade":
        if args.get("to_origin"):
            return f"{args.get('method', 'bicubic')} to origin size"
        scale = args.get("scale")
        if scale is None:
            return "degraded"
        if scale < 1:
            text = f"LR {_scale_text(scale)}"
        else:
            text = f"{args.get('method', 'bicubic')} {_scale_text(scale)}"
        extras = [
            f"blur {args['kernel']}" if args.get("kernel") else None,
            f"noise {args['noise']:g}" if args.get("noise") else None,
            f"jpeg {args['jpeg']}" if args.get("jpeg") else None,
        ]
        return " ".join([text] + [e for e in extras if e])
    if cmd == "superres":
        return f"{args.get('model', 'SR')} x{args.get('scale', 4)}"
    if cmd == "mix":
        if args.get("boxes_only"):
            return None  # only moved the SR detections into this frame
        threshold = args.get("chosen_threshold", args.get("threshold"))
        source = f" with {args['sr_label']}" if args.get("sr_label") else ""
        return f"mixed{source} t={threshold}"
    return None


def history_label(history: list[dict]) -> str:
    parts = [p for p in (_safe_step_label(s) for s in history) if p]
    return " > ".join(parts) if parts else "original"


def _safe_step_label(step) -> str | None:
    """step_label, or the bare command name for a step whose args are not what lrp writes (a
    hand-edited history): a label must never stop a command."""
    if not isinstance(step, dict):
        return None
    try:
        return step_label(step)
    except (TypeError, ValueError, AttributeError, KeyError):
        return str(step.get("command") or "step")


def box_source(history: list[dict]) -> str:
    """Where the pose boxes came from, for `evaluate`'s provenance line."""
    for step in reversed(history):
        if step.get("command") == "pose":
            return str(step.get("args", {}).get("boxes", "gt"))
    return "n/a"
