"""医療広告ガイドライン check: rules as data, Japanese-normalised matching, findings with spans."""
