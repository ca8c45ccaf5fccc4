"""Shop cards (ショップカード / 診察券ポイント): points per visit stamped at the desk, rewards at thresholds."""
