"""The job behind `python -m esnac_jax.main`: config -> objects, the search
loop with its checkpoints, the scoring path, the final stage, the reports.

The searcher library (`esnac_jax.search`) knows none of this; this package
puts it together with training, data and files.
"""
