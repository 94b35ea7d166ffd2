"""corral: pools of ready virtual machines, handed out in milliseconds."""

__version__ = "0.1.0"
