"""Decoded clips of the browser sessions, held on the server under a short key.

A page keeps only the key in its state; the frames stay here. The oldest clips are dropped when
there are more than `capacity` or they hold more than `max_bytes` together (512 MiB by default);
the newest is always kept. An upload decodes to at most about 105 MB of frames
(video_io.MAX_DECODE_PIXELS), so the app's store never holds more than `MAX_BYTES`.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from workbench.video_io import Video

MAX_CLIPS = 16
MAX_BYTES = 512 << 20


class ClipStore:
    def __init__(self, capacity: int = MAX_CLIPS, max_bytes: int = MAX_BYTES):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._clips: OrderedDict[str, Video] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, video: Video) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._clips[key] = video
            while len(self._clips) > 1 and (
                len(self._clips) > self.capacity or self.bytes_held() > self.max_bytes
            ):
                self._clips.popitem(last=False)
        return key

    def get(self, key: str | None) -> Video:
        with self._lock:
            video = self._clips.get(key) if key else None
            if video is not None:
                self._clips.move_to_end(key)
        if video is None:
            raise ValueError(
                "no clip loaded (or it was dropped to free memory): pick an example or upload "
                "a video in the Predict tab"
            )
        return video

    def bytes_held(self) -> int:
        return sum(video.frames.nbytes for video in self._clips.values())
