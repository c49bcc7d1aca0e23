"""The patrol rules: which fixes count, how far apart fixes may be to form a segment, when an
inspector is off post, and the evaluation's deadlines."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PatrolSettings(BaseSettings):
    """Patrol tracks, coverage and off-post detection (巡查, 脱岗)."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    patrol_max_gap_s: float = Field(120.0, gt=0, le=3600)
    """Two consecutive fixes at most this many seconds apart form a segment of the track;
    a longer gap splits it."""
    patrol_max_accuracy_m: float = Field(50.0, gt=0)
    """Fixes whose reported accuracy is worse (larger) than this many metres are stored but
    ignored by coverage, on-duty time, tracks and off-post detection."""
    off_post_minutes: float = Field(15.0, gt=0, le=24 * 60)
    """During a shift, an inspector away from their cells (or with no fix) for longer than
    this is off post (脱岗)."""
    off_post_check_seconds: float = Field(60.0, ge=5, le=3600)
    """How often the server looks for inspectors on shift who are away (no fix comes in
    from an inspector who has left or switched off)."""
    patrol_verify_hours: float = Field(2.0, gt=0)
    """Working hours after a report within which its verification (核实) is on time."""
    patrol_check_hours: float = Field(4.0, gt=0)
    """Working hours after a resolution within which its on-site check (核查) is on time."""

    @property
    def max_gap(self) -> timedelta:
        """``patrol_max_gap_s`` as a duration."""
        return timedelta(seconds=self.patrol_max_gap_s)

    @property
    def off_post(self) -> timedelta:
        """``off_post_minutes`` as a duration."""
        return timedelta(minutes=self.off_post_minutes)


@lru_cache
def patrol_settings() -> PatrolSettings:
    """The process-wide patrol settings."""
    return PatrolSettings()
