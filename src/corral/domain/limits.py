"""Bounds that hold everywhere a value enters corral (configuration and API alike)."""

from __future__ import annotations

# The longest lifetime a VM may have, in hours (ten years): a lifetime past it is refused,
# whatever ``max_lifetime_upper_limit`` says, so that every end time can be written as a date.
MAX_LIFETIME_HOURS = 87_600

# The most VMs one checkout may ask of one pool (or alias).
MAX_VMS_PER_POOL = 100
