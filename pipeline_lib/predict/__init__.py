"""`abaw predict`: the trained chain on any video file."""
