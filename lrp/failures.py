"""Per-image failures, handled one way by every command that reads images.

Without `--keep-going` the first failing image ends the command (its LrpError, exit 1). With it,
each failure is recorded and the other images go on; at the end `finish` raises one
PartialFailure listing them in document order, carrying the document to write anyway, and
`lrp.document.write_result` prints one `lrp COMMAND: failed: ...` line per image, writes the
document and exits 1. Safe to use from the worker threads of `lrp.images.parallel_map`.
"""

from __future__ import annotations

import threading

from lrp.errors import LrpError, PartialFailure


class ImageFailures:
    def __init__(self, keep_going: bool):
        self.keep_going = keep_going
        self._messages: dict = {}  # image id -> message (the first one, if an image fails twice)
        self._lock = threading.Lock()

    def guard(self, image_id, work, *args, writing=None):
        """`work(*args)`; if it fails, raise at once or (keep-going) record it and return None.

        Failures are LrpErrors (unreadable images, bad data), and OSErrors when `writing` names
        the file being written (disk full, permissions)."""
        try:
            return work(*args)
        except LrpError as e:
            self.record(image_id, e)
        except OSError as e:
            if writing is None:
                raise
            self.record(image_id, LrpError(f"image {image_id} ({writing}): cannot write: {e.strerror or e}"))
        return None

    def record(self, image_id, error: LrpError, prefix: str = "") -> None:
        """One image failed with `error`: raise it, or (keep-going) remember it, after `prefix`
        (which names the image when the error itself does not, e.g. a failed batch)."""
        if not self.keep_going:
            raise error
        with self._lock:
            self._messages.setdefault(image_id, prefix + str(error))

    @property
    def ids(self) -> set:
        return set(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def messages(self, images: list[dict]) -> list[str]:
        """The failures in the order of `images` (whatever order the threads finished in)."""
        order = [img["id"] for img in images if img["id"] in self._messages]
        order += [iid for iid in self._messages if iid not in set(order)]
        return [self._messages[i] for i in order]

    def finish(self, images: list[dict], doc: dict, consequence: str = "the document leaves them out") -> None:
        """Raise the PartialFailure of the images that failed (`images`: all of them), if any."""
        if self._messages:
            raise PartialFailure(self.messages(images), len(images), doc, consequence)
