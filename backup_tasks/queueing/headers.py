"""Message headers our tasks read: who or what sent a run.

Beat's copy of a periodic task carries its schedule slot (the single-flight
key: one backup per slot); a run queued from admin names who asked.
"""

SLOT_HEADER = "backup_slot"
REQUESTED_BY_HEADER = "backup_requested_by"
