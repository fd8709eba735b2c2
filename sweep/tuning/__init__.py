"""The Ray layer -- the only package that imports ray: start / connect (cluster.py), the Tuner
(tuner.py), what a trial does (trials.py), store parts as Ray tasks (remote.py), where a run's
state lives (storage.py), the store-sharing probe of the benchmark (probe.py), trackers
(tracking.py), the searches besides the grid (search.py, frontier_plan.py) and the plateau
stop rule (stopping.py)."""
