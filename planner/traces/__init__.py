"""Request traces in: streaming readers, prefix-cache replay, statistics and the hit-rate curve.

One job per module: `readers` (Mooncake rows and Weka sessions, gzip, one-line errors), `replay`
(LRU / TTL prefix caches over block ids), `stats` (length quantiles, session shape, arrival rate,
reuse), `curve` (the fixed-shape hit-rate table the cost model interpolates). Nothing here imports
jax, the CLI or the TUI; the cost model never reads a trace file.
"""
