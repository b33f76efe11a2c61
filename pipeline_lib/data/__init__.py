"""Official Aff-Wild2 annotation formats, the per-video manifest, and the demo corpus."""
