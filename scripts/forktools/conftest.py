"""pytest run on ``scripts/`` must not collect the projects: each is copied into a
trial directory and run there, with the environment variables its tool sets."""

from __future__ import annotations


collect_ignore_glob = ["*/projects/*"]
