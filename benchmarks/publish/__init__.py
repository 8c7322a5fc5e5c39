"""From results to what readers see: summaries, the README's tables, the tuned presets, plots."""
