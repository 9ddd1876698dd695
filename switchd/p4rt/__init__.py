"""switchd's P4Runtime server: arbitration, pipeline, validation, the entity store."""
