"""The proxy trainer: mixplan runs small-model trainings itself and writes their losses to the store.

- ``data``:        per-domain text -> memory-mapped token files + held-out validation slices
- ``model``:       a small GPT (pre-norm, scaled_dot_product_attention, tied embeddings), named sizes
- ``loop``:        one run: mixture sampling, AdamW + warmup/cosine, evaluations, checkpoints, resume
- ``aioli``:       Aioli online mixing (Chen et al. 2024): LearnParams + exponentiated-gradient update
- ``design``:      sweep designs (Dirichlet around the token prior, as in RegMix) and budgets
- ``executor``:    sweeps: one worker process per run, locally; ``ray_executor``: as Ray tasks
- ``worker``:      the entry point of one local sweep run (``python -m engine.train.worker``)
- ``records``:     run, target, measurement and job rows
- ``jobs``:        heartbeats; stale running jobs become failed
- ``demo_corpus``: a 3-domain corpus from text every Python installation has
"""
