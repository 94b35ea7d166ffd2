"""Control-plane high availability: the home of the state machine each corral process runs to
gain or lose the lead, and of the broker through which the processes agree which one leads
and runs the pools.

Not to be confused with the "HA restart" of VMs: when a host goes down, the runner starts
the checked-out VMs of pools with ``ha: true`` on another host (``runner/``, ``pools/``).
That keeps users' VMs running; this package keeps corral itself running.
"""
