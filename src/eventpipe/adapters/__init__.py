"""The ports of `eventpipe.core` implemented for a place: `local` (filesystem, SQLite) and `aws`."""
