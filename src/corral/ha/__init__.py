"""Control-plane high availability: which corral process runs which pool.

``agent`` is the pure state machine each process runs, ``ownership`` spreads the pools over the
live managers, ``leases`` holds the pools' leases with fencing tokens and the registry of
managers in Redis, ``broker`` does all the I/O and ``loop`` drives them, tick by tick;
``settings`` holds their timings and ``latest`` the writer that publishes a manager's state.

Not to be confused with the "HA restart" of VMs: when a host goes down, the runner starts
the checked-out VMs of pools with ``ha: true`` on another host (``runner/``, ``pools/``).
That keeps users' VMs running; this package keeps corral itself running.
"""
