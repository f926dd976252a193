"""The Sparkplug tests' fixtures; their helpers are in spb_peers.py (imported by that name:
every test directory has a conftest.py, and `from conftest import` finds whichever was
imported first)."""

from spb_peers import daemon, sparkplug_watch

__all__ = ["daemon", "sparkplug_watch"]
