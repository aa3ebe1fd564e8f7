"""Load: profiles as pure functions of time, and Locust run as a subprocess."""

from scalelab.load.profiles import PROFILES, level_at, profile_for

__all__ = ["PROFILES", "level_at", "profile_for"]
