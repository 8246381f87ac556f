"""YuNet face detector, run by OpenCV 5 (the int8 block-quantized file needs it)."""

from pathlib import Path

import cv2


def load(path: Path) -> cv2.FaceDetectorYN:
    # OpenCV 5's new graph engine warns about targets on every network; nothing for users to act on.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    # Thresholds are set per call in inference.detect; the input size per image.
    return cv2.FaceDetectorYN.create(str(path), "", (320, 320), 0.5, 0.3, 5000)
