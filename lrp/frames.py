"""`lrp frames`: a document of video frames, and the sequences and frame windows of a document.

A document holds videos the PoseTrack way (DESIGN.md section 1, "Videos"): an image may carry
`video_id` and `frame_id`, and a sequence is the images of one `video_id` ordered by `frame_id`,
whose frame ids must be consecutive integers (a gap is a missing frame), unique, and of one
resolution. Every command works on such documents unchanged (they are COCO images with two more
keys, which every step keeps); a step whose model wants neighbouring frames (a registry spec with
`frames = 2r+1`, e.g. temporal SR) reads them through `frame_windows`.

`lrp frames` makes such a document from a frame folder (one sub-folder per video, frames ordered
by name; the frames stay where they are and become the document's image root) or from video
files decoded with PyAV (`pip install 'lrp[video]'`), whose frames are written as lossless PNG
to `--out-dir` (never piped). Frame ids are the frame numbers of numeric file names (000012.png
is frame 12, so a missing file is a gap and refused) and the position by name otherwise, or the
decoding order of a video file. Image ids are 1, 2, ... in (video, frame) order.

No torch here; av is imported only to decode a video file.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError, UsageError
from lrp.options import Output, Quiet

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


# --------------------------------------------------------------------------------------------
# Sequences and windows of any document


def sequences(doc: dict, name: str = "document") -> dict[int, list[dict]]:
    """video_id -> its images ordered by frame_id; LrpError naming the video and frame when a
    frame is missing or duplicated, an id is not an integer, or a video changes resolution."""
    videos: dict[int, list[dict]] = {}
    for img in doc["images"]:
        has_video, has_frame = "video_id" in img, "frame_id" in img
        if has_video != has_frame:
            raise LrpError(f"{name}: image {img['id']} has {'video_id' if has_video else 'frame_id'} but no {'frame_id' if has_video else 'video_id'}")
        if not has_video:
            continue
        for key in ("video_id", "frame_id"):
            if not isinstance(img[key], int) or isinstance(img[key], bool):
                raise LrpError(f"{name}: image {img['id']}: {key} {img[key]!r} is not an integer")
        videos.setdefault(img["video_id"], []).append(img)
    for vid, frames in videos.items():
        frames.sort(key=lambda i: i["frame_id"])
        first = frames[0]
        for prev, img in zip(frames, frames[1:]):
            if img["frame_id"] == prev["frame_id"]:
                raise LrpError(f"{name}: video {vid}: frame_id {img['frame_id']} appears twice (images {prev['id']} and {img['id']})")
            if img["frame_id"] != prev["frame_id"] + 1:
                missing = prev["frame_id"] + 1
                raise LrpError(f"{name}: video {vid}: frame {missing} is missing (frames {prev['frame_id']} and {img['frame_id']} are there)")
        for img in frames:
            if (img["width"], img["height"]) != (first["width"], first["height"]):
                raise LrpError(
                    f"{name}: video {vid}: frame {img['frame_id']} (image {img['id']}) is {img['width']}x{img['height']}, "
                    f"frame {first['frame_id']} is {first['width']}x{first['height']}: one video has one resolution"
                )
    return videos


def frame_windows(doc: dict, radius: int, name: str = "document") -> dict[int, list[int]]:
    """image id -> the ids of frames t-radius .. t+radius of its video, clamped at the sequence
    ends (the first frame stands in for the ones before it, as video SR test code pads). An
    image outside any video is its own window, repeated: a temporal model then sees a still."""
    if radius < 0:
        raise UsageError(f"a frame window radius must be >= 0, got {radius}")
    windows = {img["id"]: [img["id"]] * (2 * radius + 1) for img in doc["images"]}
    try:
        videos = sequences(doc, name)
    except LrpError as e:
        shard = (doc.get("lrp") or {}).get("shard")
        if not shard:
            raise
        # A shard holds the images whose id hashes to it, so its videos have gaps by design.
        raise LrpError(
            f"{e}; this document is shard {shard['index']}/{shard['count']}, whose neighbouring frames lie in other shards: "
            "run this step on the whole document with --shard instead"
        ) from None
    for frames in videos.values():
        ids = [img["id"] for img in frames]
        last = len(ids) - 1
        for t, iid in enumerate(ids):
            windows[iid] = [ids[min(max(t + d, 0), last)] for d in range(-radius, radius + 1)]
    return windows


class StackedFrames:
    """The frames of a window (image ids), read and stacked on the channel axis: H x W x 3*len,
    frame t-r first, the way a temporal model in the registry takes them. Neighbouring windows
    share all but one frame, so the last `keep` decoded frames are kept (thread-safe): a video
    is decoded about once, not 2r+1 times."""

    def __init__(self, doc: dict, keep: int = 16):
        import threading
        from collections import OrderedDict

        from lrp.document import images_by_id

        self.doc, self.images, self.keep = doc, images_by_id(doc), keep
        self._frames: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def frame(self, image_id: int):
        from lrp.document import image_path
        from lrp.images import load_rgb

        with self._lock:
            if image_id in self._frames:
                self._frames.move_to_end(image_id)
                return self._frames[image_id]
        img = self.images[image_id]
        arr = load_rgb(image_path(self.doc, img), image_id, (img["width"], img["height"]))
        with self._lock:
            self._frames[image_id] = arr
            while len(self._frames) > self.keep:
                self._frames.popitem(last=False)
        return arr

    def __call__(self, window: list[int], image_id=None):
        """H x W x 3*len(window); a frame that cannot be read is an LrpError naming it and, when
        it is a neighbour of `image_id`, the image whose window needs it."""
        import numpy as np

        arrays = []
        for j in window:
            try:
                arrays.append(self.frame(j))
            except LrpError as e:
                if image_id is None or j == image_id:
                    raise
                raise LrpError(f"image {image_id}: its window of {len(window)} frames needs {e}") from None
        return np.concatenate(arrays, axis=2)


# --------------------------------------------------------------------------------------------
# Making a document


def _frame_ids(video: str, names: list[str]) -> list[int]:
    """Frame numbers from numeric stems (so gaps show), else positions in name order."""
    stems = [Path(n).stem for n in names]
    if not all(s.isdigit() for s in stems):
        return list(range(len(names)))
    ids = [int(s) for s in stems]
    seen: dict[int, str] = {}
    for n, i in zip(names, ids):
        if i in seen:
            raise LrpError(f"video {video}: frame {i} appears twice ({seen[i]} and {n})")
        seen[i] = n
    order = sorted(ids)
    for a, b in zip(order, order[1:]):
        if b != a + 1:
            raise LrpError(f"video {video}: frame {a + 1} is missing ({seen[a]} and {seen[b]} are there)")
    return ids


def _new_document(root: Path, videos: list[tuple[str, list[tuple[str, int, tuple[int, int]]]]], name: str) -> dict:
    """A plain COCO dataset of the frames, adopted with `root` as its image root.
    `videos`: (video name, [(file name relative to root, frame id, (w, h))])."""
    from lrp.document import adopt
    from lrp.sample import PERSON_CATEGORY

    images = []
    for video_id, (video, frames) in enumerate(videos, start=1):
        if not frames:
            raise LrpError(f"video {video}: no frames")
        size0 = frames[0][2]
        for file_name, frame_id, size in sorted(frames, key=lambda f: f[1]):
            if size != size0:
                raise LrpError(f"video {video}: frame {frame_id} ({file_name}) is {size[0]}x{size[1]}, the video's first frame is {size0[0]}x{size0[1]}: one video has one resolution")
            images.append({"id": len(images) + 1, "file_name": file_name, "width": size[0], "height": size[1],
                           "video_id": video_id, "frame_id": frame_id})
    data = {"info": {"description": f"frames of {name}"}, "licenses": [], "images": images, "annotations": [],
            "categories": [dict(PERSON_CATEGORY)]}
    return adopt(data, name, images=root)


def folder_document(root: Path) -> dict:
    """A frame folder: one sub-folder per video (or, without sub-folders, one video), frames in
    name order. The frames are read in place (only their headers, for the sizes)."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if subdirs and loose:
        raise UsageError(f"{root}: holds both frames ({loose[0].name}) and video folders ({subdirs[0].name}); give one layout")
    folders = subdirs or [root]
    videos = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        video = folder.name
        if not files:
            raise LrpError(f"video {video} ({folder}): no frames ({', '.join(sorted(IMAGE_SUFFIXES))})")
        frames = []
        for path, frame_id in zip(files, _frame_ids(video, [p.name for p in files])):
            try:
                with Image.open(path) as im:
                    size = im.size
            except (UnidentifiedImageError, OSError) as e:
                raise LrpError(f"video {video}: frame {frame_id} ({path}): not an image or unreadable ({e})") from None
            frames.append((str(path.relative_to(root)), frame_id, size))
        videos.append((video, frames))
    return _new_document(root, videos, str(root))


def decode_video(path: Path, folder: Path, *, resume: bool = False) -> list[tuple[str, int, tuple[int, int]]]:
    """Decode every frame of a video file into `folder` as 000000.png, 000001.png, ...:
    [(file name relative to the parent of `folder`, frame id, (w, h))]."""
    try:
        import av
    except ImportError:
        raise UsageError("decoding video files needs PyAV: pip install 'lrp[video]' (or a frame folder instead)") from None
    from lrp.outputs import save_png
    from lrp.outputs import finished_png

    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise LrpError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                size = (frame.width, frame.height)
                target = folder / f"{index:06d}.png"
                if not (resume and finished_png(target, size)):
                    save_png(frame.to_ndarray(format="rgb24"), target)
                frames.append((f"{folder.name}/{target.name}", index, size))
    except av.FFmpegError as e:
        raise LrpError(f"{path}: cannot decode: {e}") from None
    if not frames:
        raise LrpError(f"{path}: no frames decoded")
    return frames


def video_document(paths: list[Path], out_dir: Path, *, quiet: bool = False) -> dict:
    """Video files -> their frames as PNG under `out_dir/<file stem>/`, and the document."""
    from lrp.outputs import claim_out_dir

    stems = [p.stem for p in paths]
    for stem in stems:
        if stems.count(stem) > 1:
            raise UsageError(f"two video files are named {stem}: their frames would share {out_dir / stem}")
    contents = {}
    for p in paths:
        try:
            contents[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError as e:
            raise LrpError(f"{p}: cannot read: {e.strerror or e}") from None
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    resume = claim_out_dir(out_dir, "frames", {"videos": contents}, {})
    videos = [(p.stem, decode_video(p, out_dir / p.stem, resume=resume)) for p in paths]
    if not quiet:
        print(f"lrp frames: {sum(len(f) for _, f in videos)} frames of {len(videos)} videos in {out_dir}", file=sys.stderr)
    return _new_document(out_dir, videos, ", ".join(map(str, paths)))


def frames_document(sources: list[Path], out_dir: Optional[Path] = None, *, quiet: bool = False) -> dict:
    """One frame folder, or one or more video files (decoded into `out_dir`) -> the document."""
    from lrp.document import add_history

    if not sources:
        raise UsageError("give a frame folder or one or more video files")
    sources = [Path(s) for s in sources]
    for s in sources:
        if not s.exists():
            raise LrpError(f"{s}: no such file or folder")
    if any(s.is_dir() for s in sources):
        if len(sources) > 1:
            raise UsageError("give one frame folder (one sub-folder per video), or video files, not both or several folders")
        if out_dir is not None:
            raise UsageError("--out-dir is for decoded video files; a frame folder is read where it is")
        doc = folder_document(sources[0])
    else:
        if out_dir is None:
            raise UsageError("decoding video files needs --out-dir DIR for the PNG frames")
        doc = video_document(sources, out_dir, quiet=quiet)
    add_history(doc, "frames", {"sources": [str(s.resolve()) for s in sources]})
    return doc


# --------------------------------------------------------------------------------------------
# CLI


def command(
    sources: Annotated[
        Optional[list[Path]],
        typer.Argument(help="A frame folder (one sub-folder per video) or video files (.mp4, .mkv, ...).", show_default=False),
    ] = None,
    output: Output = None,
    out_dir: Annotated[
        Optional[Path],
        typer.Option("--out-dir", help="Folder for the PNG frames of video files (needed for them; a frame folder is read in place).", show_default=False),
    ] = None,
    quiet: Quiet = False,
):
    """Make a document of video frames (video_id and frame_id on every image, the PoseTrack way).

    From a frame folder (one sub-folder per video, frames ordered by name, read in place) or from
    video files decoded with PyAV into lossless PNG frames in --out-dir. Every command takes the
    result; models that want neighbouring frames read the window they need. A frame missing from
    a numbered sequence, duplicated frames and a video changing resolution are refused.

    Example:

        lrp frames clips/ | lrp degrade --scale 0.25 --kernel gaussian:1.0 | lrp superres --model temporal-sr-x4-random

        lrp frames --out-dir frames/ walk.mp4 run.mp4 -o videos.json
    """
    from lrp.outputs import write_result

    write_result("frames", output, lambda: frames_document(sources or [], out_dir, quiet=quiet))
