"""Reference implementations (exact float64 and rounding recipes)."""
