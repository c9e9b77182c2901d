"""The one error a malformed capture raises, with the byte offset where reading went wrong."""

from __future__ import annotations

from falcorules_ci.errors import InputError, Span


class CaptureError(InputError):
    """A ``.scap`` capture could not be read.

    ``span.offset`` is the position in the *uncompressed* capture stream (for a gzip'd capture,
    the offset after decompression) of the block or entry that is wrong; ``str(err)`` reads
    ``path:@offset: message``.
    """

    def __init__(self, message: str, path: str, offset: int) -> None:
        super().__init__(message, Span(path, offset=offset), "CAPTURE_ERR")
        self.offset = offset
