"""Erasure of a user: every event matched on `user_id` or `anonymous_id` leaves every store.

`erase_user` (run.py) is the flow; target.py says what matches; rewrite.py rewrites stored bytes
without the matching events; journal.py keeps a pending erasure across a crash.
"""

from __future__ import annotations
