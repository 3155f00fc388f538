"""The reconcile engine: reconcile_once, the daemon loop, leader election."""
