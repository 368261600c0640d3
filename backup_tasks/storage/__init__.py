"""Files on the backup disk: atomic writes, checksums, compression, export formats and the activity log."""
