"""The operator's pages under /admin/backups/: the dashboard and its charts, downloads, the readings export."""
