"""Drawing on frames: boxes coloured by score, the alarm border, a running score timeline strip."""

from __future__ import annotations

import cv2
import numpy as np

STRIP_HEIGHT = 48  # pixels of the running score timeline under each annotated frame


def score_colour(score: float, threshold: float | None) -> tuple[int, int, int]:
    """BGR colour of a box: red over the threshold, yellow above half of it, green below."""
    if threshold is None:
        return (0, 200, 0)
    if score > threshold:
        return (0, 0, 255)
    if threshold > 0 and score >= 0.5 * threshold:
        return (0, 215, 255)
    return (0, 200, 0)


class Annotator:
    """Draws boxes, the alarm border and a running score timeline strip under each frame."""

    def __init__(self, threshold: float | None):
        self.threshold = threshold
        self._strip: np.ndarray | None = None
        self._lowest, self._highest = 0.0, 0.0  # scores seen, for a strip without a positive threshold

    def draw(self, item: ScoredFrame, alarm: bool) -> np.ndarray:
        frame = item.frame
        image = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.shape[2] == 1 else frame.copy()
        for box, score in zip(item.boxes, item.object_scores):
            x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), score_colour(float(score), self.threshold), 1)
        if alarm:
            cv2.rectangle(image, (0, 0), (image.shape[1] - 1, image.shape[0] - 1), (0, 0, 255), 4)
        return np.vstack([image, self._advance_strip(item, alarm, image.shape[1])])

    def _range(self, score: float) -> tuple[float, float]:
        """Score range of the strip: 0 to twice a positive threshold (a steady scale with the
        threshold at mid-height), else the range of the scores seen so far (minus PSNR is negative)."""
        self._lowest, self._highest = min(self._lowest, score), max(self._highest, score)
        if self.threshold is not None and self.threshold > 0:
            return 0.0, 2 * self.threshold
        extra = [] if self.threshold is None else [self.threshold]
        low, high = min([self._lowest, *extra]), max([self._highest, *extra])
        return low, max(high, low + 1e-12)

    def _advance_strip(self, item: ScoredFrame, alarm: bool, width: int) -> np.ndarray:
        """Shift the timeline one pixel left and draw this frame's score as the newest column."""
        h, room = STRIP_HEIGHT, STRIP_HEIGHT - 14  # 14 pixels on top for the text
        if self._strip is None:
            self._strip = np.full((h, width, 3), 32, np.uint8)
        self._strip[:, :-1] = self._strip[:, 1:]
        self._strip[:, -1] = 32
        low, high = self._range(item.score)

        def height_of(value: float) -> int:
            return int(round(float(np.clip((value - low) / (high - low), 0.0, 1.0)) * room))

        column = height_of(item.score)
        if column:
            self._strip[h - column:, -1] = (60, 60, 230) if alarm else (80, 190, 80)
        out = self._strip.copy()
        if self.threshold is not None:  # dotted line
            out[min(h - height_of(self.threshold), h - 1), ::4] = (0, 0, 255)
        cv2.putText(out, f"frame {item.index}  score {item.score:.4g}", (4, 11), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, (230, 230, 230), 1, cv2.LINE_AA)
        return out


def thumbnail(image: np.ndarray, worst_box: np.ndarray | None, width: int = 480) -> np.ndarray:
    """``image`` with a white outline around the worst object, at most ``width`` pixels wide."""
    image = image.copy()
    if worst_box is not None:
        x1, y1, x2, y2 = (int(round(float(v))) for v in worst_box[:4])
        cv2.rectangle(image, (x1 - 2, y1 - 2), (x2 + 1, y2 + 1), (255, 255, 255), 1)
    if image.shape[1] <= width:
        return image
    height = int(round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
