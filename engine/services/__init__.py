"""The use-cases the CLI and the dashboard call; one module per area.

- ``engine.services.projects``: create/list/select projects, the demo project
- ``engine.services.ingest``:   import files into a project (all-or-nothing)
- ``engine.services.fits``:     fit, compare, select and reuse laws
- ``engine.services.plans``:    make, sweep, store and export plans; suggest runs
- ``engine.services.training``: prepare data, launch trainings and sweeps, jobs
"""
