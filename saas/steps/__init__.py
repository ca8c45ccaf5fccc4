"""Step delivery (ステップ配信): scenarios of timed steps that start on an event and stop at a goal."""
