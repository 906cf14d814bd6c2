"""artclf: culture, medium and period of ancient artworks from a photo."""

from artclf.labels import CLASSES, TASKS

__version__ = "0.1.0"
