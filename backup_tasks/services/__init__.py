"""One module per operation; the doors (tasks, command, admin and web) call these and hold no backup logic."""
