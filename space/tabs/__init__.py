"""The app's tabs, one builder each: a builder lays out its tab and wires the tab's events."""
